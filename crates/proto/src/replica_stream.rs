//! Replica streams: `warren logs` and `warren exec` between the control
//! plane and a node, each on a QUIC bidirectional stream of its own beside
//! the control stream.
//!
//! The control plane opens the stream (only to agents that list
//! [`STREAMS_KIND`]) and writes one [`StreamRequest`] frame (at most
//! [`MAX_REQUEST`] bytes); the agent answers with [`StreamFrame`]s: output
//! lines, then [`StreamFrame::End`] (logs, image) or [`StreamFrame::Exit`]
//! (exec), or a single [`StreamFrame::Error`] instead, and finishes the
//! stream. A stream that ends without one of those three was cut short (the
//! connection was lost). The control plane stops following by stopping the
//! stream; the agent then stops reading the container's logs. Frames are the
//! protocol's usual ones ([`crate::frame`]): a 4-byte length, then JSON.
//!
//! ```json
//! {"type":"logs","replica":"web-3","follow":true,"tail":20,"since_secs":null,"previous":false}
//! {"type":"exec","replica":"web-3","command":["sh","-c","echo hi; exit 3"]}
//! {"type":"image","image":"registry.example/app:2"}
//! {"type":"line","stream":"stdout","text":"hi"}
//! {"type":"exit","code":3}
//! {"type":"error","code":"no_previous","reason":"web-3 has no exited container"}
//! ```
//!
//! Both sides decode a newer peer's additions as `Unknown`: an agent
//! answers an unknown request with [`StreamErrorCode::Unsupported`], and the
//! control plane skips unknown frames.

use crate::assignment::ReplicaId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The capability an agent lists in its hello when it serves replica
/// streams (it runs replicas: `warren join --docker-host`).
pub const STREAMS_KIND: &str = "replica_streams";

/// The largest request an agent reads: an exec command line, with room.
pub const MAX_REQUEST: usize = 64 * 1024;

/// What the control plane asks of a node on a replica stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamRequest {
    /// A replica's output, as `docker logs` gives it.
    Logs {
        /// Which replica (one of the node's own).
        replica: ReplicaId,
        /// Keep sending new output until the container stops.
        #[serde(default)]
        follow: bool,
        /// Only the last this many lines of what is there already.
        #[serde(default)]
        tail: Option<u64>,
        /// Only output of the last this many seconds (by the node's clock).
        #[serde(default)]
        since_secs: Option<u64>,
        /// The replica's last exited container instead of its current one.
        #[serde(default)]
        previous: bool,
    },
    /// A command run in the replica's running container (no shell, no TTY,
    /// no stdin), its output and exit code.
    Exec {
        /// Which replica.
        replica: ReplicaId,
        /// The program and its arguments.
        command: Vec<String>,
    },
    /// Whether the node can run `image`: it has it, or its registry knows
    /// it (nothing is downloaded). Answered with [`StreamFrame::End`], or
    /// an [`StreamErrorCode::Image`] error with the daemon's reason; what
    /// `warren deploy` asks of the nodes it would place on before it
    /// stores anything.
    Image {
        /// The image reference.
        image: String,
    },
    /// A kind this build does not know (from a newer control plane).
    #[serde(other)]
    Unknown,
}

/// Which of a process's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// The word the protocol and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

impl fmt::Display for OutputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a node sends back on a replica stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamFrame {
    /// One line of output, without its newline.
    Line {
        /// Where it came from.
        stream: OutputStream,
        /// The text (invalid UTF-8 replaced).
        text: String,
    },
    /// The logs asked for are all sent (or the followed container stopped).
    End,
    /// The exec's command exited with this code.
    Exit {
        /// The exit code.
        code: i64,
    },
    /// The request cannot be served; nothing else follows.
    Error {
        /// Why, for programs.
        #[serde(default)]
        code: StreamErrorCode,
        /// Why, in one line.
        reason: String,
    },
    /// A kind this build does not know (from a newer agent): skipped.
    #[serde(other)]
    Unknown,
}

impl StreamFrame {
    /// An error frame.
    pub fn error(code: StreamErrorCode, reason: impl Into<String>) -> StreamFrame {
        StreamFrame::Error {
            code,
            reason: reason.into(),
        }
    }

    /// Whether nothing follows this frame on its stream.
    pub fn is_last(&self) -> bool {
        matches!(
            self,
            StreamFrame::End | StreamFrame::Exit { .. } | StreamFrame::Error { .. }
        )
    }
}

/// Why a node could not serve a replica stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamErrorCode {
    /// The request could not be read or parsed.
    Malformed,
    /// A request kind the agent does not know.
    Unsupported,
    /// The node has no container of this replica (not one of its own, or
    /// not created yet).
    NoContainer,
    /// `--previous`, and the replica has no exited container.
    NoPrevious,
    /// An exec, and the replica's container is not running.
    NotRunning,
    /// The node's Docker daemon failed or refused.
    Runtime,
    /// The image is not on the node and cannot be pulled.
    Image,
    /// A code this build does not know (from a newer agent).
    #[default]
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;

    fn requests() -> Vec<StreamRequest> {
        vec![
            StreamRequest::Logs {
                replica: ReplicaId("web-3".to_owned()),
                follow: true,
                tail: Some(20),
                since_secs: Some(600),
                previous: false,
            },
            StreamRequest::Logs {
                replica: ReplicaId("web-1".to_owned()),
                follow: false,
                tail: None,
                since_secs: None,
                previous: true,
            },
            StreamRequest::Exec {
                replica: ReplicaId("web-3".to_owned()),
                command: vec![
                    "sh".to_owned(),
                    "-c".to_owned(),
                    "echo hi; exit 3".to_owned(),
                ],
            },
            StreamRequest::Image {
                image: "registry.example/app:2".to_owned(),
            },
        ]
    }

    fn frames() -> Vec<StreamFrame> {
        vec![
            StreamFrame::Line {
                stream: OutputStream::Stdout,
                text: "hi".to_owned(),
            },
            StreamFrame::Line {
                stream: OutputStream::Stderr,
                text: "oops \u{fffd}".to_owned(),
            },
            StreamFrame::End,
            StreamFrame::Exit { code: 3 },
            StreamFrame::error(StreamErrorCode::NoPrevious, "web-3 has no exited container"),
        ]
    }

    #[test]
    fn requests_and_frames_round_trip_through_frames() {
        for request in requests() {
            let encoded = frame::encode(&request).unwrap();
            assert!(encoded.len() <= MAX_REQUEST);
            assert_eq!(
                frame::decode::<StreamRequest>(&encoded[4..]).unwrap(),
                request
            );
        }
        for message in frames() {
            let encoded = frame::encode(&message).unwrap();
            assert_eq!(
                frame::decode::<StreamFrame>(&encoded[4..]).unwrap(),
                message
            );
        }
    }

    #[test]
    fn the_wire_shape_is_tagged_and_optional_fields_default() {
        let json = serde_json::to_string(&StreamFrame::Exit { code: 3 }).unwrap();
        assert_eq!(json, r#"{"type":"exit","code":3}"#);
        let json = serde_json::to_string(&StreamFrame::Line {
            stream: OutputStream::Stderr,
            text: "x".to_owned(),
        })
        .unwrap();
        assert_eq!(json, r#"{"type":"line","stream":"stderr","text":"x"}"#);
        assert_eq!(
            serde_json::from_str::<StreamRequest>(r#"{"type":"logs","replica":"web-1"}"#).unwrap(),
            StreamRequest::Logs {
                replica: ReplicaId("web-1".to_owned()),
                follow: false,
                tail: None,
                since_secs: None,
                previous: false,
            }
        );
    }

    #[test]
    fn a_newer_peers_kinds_decode_as_unknown() {
        assert_eq!(
            serde_json::from_str::<StreamRequest>(r#"{"type":"attach","replica":"web-1"}"#)
                .unwrap(),
            StreamRequest::Unknown
        );
        assert_eq!(
            serde_json::from_str::<StreamFrame>(r#"{"type":"progress","pct":5}"#).unwrap(),
            StreamFrame::Unknown
        );
        assert_eq!(
            serde_json::from_str::<StreamFrame>(r#"{"type":"error","code":"quota","reason":"x"}"#)
                .unwrap(),
            StreamFrame::error(StreamErrorCode::Unknown, "x")
        );
    }

    #[test]
    fn malformed_requests_and_frames_are_refused() {
        let bad_requests: &[&[u8]] = &[
            b"",
            b"\xff",
            b"[]",
            br#"{"replica":"web-1"}"#,
            br#"{"type":"logs"}"#,
            br#"{"type":"logs","replica":3}"#,
            br#"{"type":"logs","replica":"web-1","tail":-1}"#,
            br#"{"type":"logs","replica":"web-1","follow":"yes"}"#,
            br#"{"type":"exec","replica":"web-1"}"#,
            br#"{"type":"exec","replica":"web-1","command":"ls"}"#,
        ];
        for body in bad_requests {
            assert!(
                frame::decode::<StreamRequest>(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let bad_frames: &[&[u8]] = &[
            br#"{"type":"line","stream":"stdin","text":"x"}"#,
            br#"{"type":"line","text":"x"}"#,
            br#"{"type":"exit"}"#,
            br#"{"type":"exit","code":"3"}"#,
            br#"{"type":"error"}"#,
        ];
        for body in bad_frames {
            assert!(
                frame::decode::<StreamFrame>(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Every truncation of a valid request is refused.
        for request in requests() {
            let encoded = frame::encode(&request).unwrap();
            let body = &encoded[4..];
            for cut in 0..body.len() {
                assert!(
                    frame::decode::<StreamRequest>(&body[..cut]).is_err(),
                    "{cut}"
                );
            }
        }
    }

    #[test]
    fn only_end_exit_and_error_are_last() {
        let last: Vec<bool> = frames().iter().map(StreamFrame::is_last).collect();
        assert_eq!(last, [false, false, true, true, true]);
        assert!(!StreamFrame::Unknown.is_last());
    }
}
