//! Replica streams on the node: `warren logs`, `warren exec` and image
//! checks, which the control plane asks for on bidirectional streams
//! beside the control stream ([`warren_proto::replica_stream`]): QUIC
//! streams on an agent's connection, an in-process pipe on the control
//! plane's own host.
//!
//! [`Streams::handle`] answers one stream: it reads the request, finds the
//! replica's container among the node's own (by label: a replica of
//! another node, or a container warren did not make, is never reached),
//! and sends the container's output through the runtime. Bad requests get
//! an error frame; nothing read from the stream can make the node panic.
//! A followed log stops when the asker stops the stream.

use crate::runtime::{ContainerStatus, LogLine, LogOptions, LogStream, OurContainer, Runtime};
use futures::StreamExt;
use std::future::Future;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use warren_proto::assignment::ReplicaId;
use warren_proto::{
    frame, stream, write_frame, OutputStream, StreamError, StreamErrorCode, StreamFrame,
    StreamRequest, MAX_REQUEST,
};

/// How long the control plane may take to send its request once it has
/// opened a stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What answers replica streams: the node's runtime. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Streams {
    runtime: Runtime,
}

/// Which of a replica's containers a request means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The running one, or else the newest (logs).
    Current,
    /// The newest that exited (`logs --previous`).
    Previous,
    /// The running one, and no other (exec).
    Running,
}

impl Streams {
    /// Streams answered from `runtime`.
    pub fn new(runtime: Runtime) -> Streams {
        Streams { runtime }
    }

    /// Answers one stream, read from `recv` and answered on `send`: the
    /// request, then frames until the answer is complete or `stopped`
    /// completes (the asker stopped the stream), and then shuts `send`
    /// down (a QUIC stream is finished).
    pub async fn handle<W, R>(
        self,
        mut send: W,
        mut recv: R,
        stopped: impl Future<Output = ()> + Send,
    ) where
        W: AsyncWrite + Unpin + Send,
        R: AsyncRead + Unpin + Send,
    {
        let outcome = match read_request(&mut recv, REQUEST_TIMEOUT).await {
            Ok(request) => self.answer(&mut send, request, stopped).await,
            Err(refusal) => Err(refusal),
        };
        if let Err(refusal) = outcome {
            tracing::debug!(?refusal, "a replica stream refused");
            if let Err(error) = write_frame(&mut send, &refusal).await {
                tracing::debug!(%error, "answering a replica stream");
            }
        }
        let _ = send.shutdown().await;
    }

    async fn answer<W: AsyncWrite + Unpin + Send>(
        &self,
        send: &mut W,
        request: StreamRequest,
        stopped: impl Future<Output = ()> + Send,
    ) -> Result<(), StreamFrame> {
        match request {
            StreamRequest::Logs {
                replica,
                follow,
                tail,
                since_secs,
                previous,
            } => {
                let which = if previous {
                    Which::Previous
                } else {
                    Which::Current
                };
                let id = self.container(&replica, which).await?;
                let options = LogOptions {
                    follow,
                    tail: tail.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                    since: since_secs.map(|secs| {
                        SystemTime::now()
                            .checked_sub(Duration::from_secs(secs))
                            .unwrap_or(SystemTime::UNIX_EPOCH)
                    }),
                };
                let lines = self
                    .runtime
                    .logs(&id, options)
                    .await
                    .map_err(runtime_error)?;
                relay_logs(send, lines, stopped).await
            }
            StreamRequest::Exec { replica, command } => {
                if command.first().is_none_or(String::is_empty) {
                    return Err(StreamFrame::error(
                        StreamErrorCode::Malformed,
                        "an exec needs a command",
                    ));
                }
                let id = self.container(&replica, Which::Running).await?;
                let mut session = self
                    .runtime
                    .exec(&id, &command)
                    .await
                    .map_err(runtime_error)?;
                while let Some(line) = session.next_line().await {
                    let line = line.map_err(runtime_error)?;
                    if write_frame(send, &line_frame(line)).await.is_err() {
                        // The control plane went away; the command runs on.
                        return Ok(());
                    }
                }
                let code = session.exit_code().await.map_err(runtime_error)?;
                let _ = write_frame(send, &StreamFrame::Exit { code }).await;
                Ok(())
            }
            StreamRequest::Image { image } => match self.runtime.image_obtainable(&image).await {
                Ok(()) => {
                    let _ = write_frame(send, &StreamFrame::End).await;
                    Ok(())
                }
                Err(error) => Err(StreamFrame::error(
                    StreamErrorCode::Image,
                    error.to_string(),
                )),
            },
            _ => Err(StreamFrame::error(
                StreamErrorCode::Unsupported,
                "this node's agent does not know that request; upgrade it",
            )),
        }
    }

    /// The id of `replica`'s container that `which` means.
    async fn container(&self, replica: &ReplicaId, which: Which) -> Result<String, StreamFrame> {
        let containers = self.runtime.list_ours().await.map_err(runtime_error)?;
        pick(&containers, replica, which).map(|c| c.id.clone())
    }
}

/// Reads a stream's request; the error frame to answer with if it cannot
/// be read within `timeout` ([`REQUEST_TIMEOUT`]) or is not a request.
pub async fn read_request<R: AsyncRead + Unpin>(
    recv: &mut R,
    timeout: Duration,
) -> Result<StreamRequest, StreamFrame> {
    let malformed = |reason: String| StreamFrame::error(StreamErrorCode::Malformed, reason);
    let body = tokio::time::timeout(timeout, stream::read_body(recv, MAX_REQUEST))
        .await
        .map_err(|_| malformed(format!("no request within {timeout:?}")))?
        .map_err(|error| match error {
            StreamError::Frame(error) => malformed(error.to_string()),
            _ => malformed("the request ended early".to_owned()),
        })?;
    frame::decode(&body).map_err(|error| malformed(error.to_string()))
}

/// Of `containers` (the node's own), the one of `replica` that `which`
/// means, newest first by generation and attempt; the error frame if there
/// is none (its reason leaves out the replica: the control plane's record
/// names it, and the CLI prints it in front).
pub fn pick<'a>(
    containers: &'a [OurContainer],
    replica: &ReplicaId,
    which: Which,
) -> Result<&'a OurContainer, StreamFrame> {
    let mut mine: Vec<&OurContainer> = containers
        .iter()
        .filter(|c| &c.labels.replica == replica)
        .collect();
    mine.sort_by_key(|c| std::cmp::Reverse((c.labels.generation, c.labels.attempt)));
    let running = mine
        .iter()
        .copied()
        .find(|c| c.status == ContainerStatus::Running);
    let picked = match which {
        Which::Current => running.or(mine.first().copied()),
        Which::Running => running,
        Which::Previous => mine
            .iter()
            .copied()
            .find(|c| matches!(c.status, ContainerStatus::Exited | ContainerStatus::Dead)),
    };
    picked.ok_or_else(|| match which {
        _ if mine.is_empty() => StreamFrame::error(
            StreamErrorCode::NoContainer,
            "no container on this node (yet)",
        ),
        Which::Previous => StreamFrame::error(
            StreamErrorCode::NoPrevious,
            "no exited container: it has not crashed or been restarted",
        ),
        _ => StreamFrame::error(StreamErrorCode::NotRunning, "not running"),
    })
}

/// Sends `lines` until they end or the asker stops the stream.
async fn relay_logs<W: AsyncWrite + Unpin>(
    send: &mut W,
    mut lines: crate::runtime::LogLines,
    stopped: impl Future<Output = ()>,
) -> Result<(), StreamFrame> {
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            line = lines.next() => match line {
                Some(Ok(line)) => {
                    if write_frame(send, &line_frame(line)).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Err(error)) => return Err(runtime_error(error)),
                None => {
                    let _ = write_frame(send, &StreamFrame::End).await;
                    return Ok(());
                }
            },
            () = &mut stopped => return Ok(()),
        }
    }
}

fn line_frame(line: LogLine) -> StreamFrame {
    StreamFrame::Line {
        stream: match line.stream {
            LogStream::Stdout => OutputStream::Stdout,
            LogStream::Stderr => OutputStream::Stderr,
        },
        text: line.text,
    }
}

fn runtime_error(error: crate::runtime::RuntimeError) -> StreamFrame {
    StreamFrame::error(StreamErrorCode::Runtime, error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ReplicaLabels;

    fn container(id: &str, replica: &str, attempt: u32, status: ContainerStatus) -> OurContainer {
        OurContainer {
            id: id.to_owned(),
            labels: ReplicaLabels {
                service: "web".to_owned(),
                replica: ReplicaId(replica.to_owned()),
                generation: 1,
                attempt,
            },
            image: "local/busybox:1".to_owned(),
            status,
        }
    }

    fn code(result: Result<&OurContainer, StreamFrame>) -> StreamErrorCode {
        match result {
            Err(StreamFrame::Error { code, .. }) => code,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_current_previous_and_running_containers_of_a_replica() {
        use ContainerStatus::{Exited, Running};
        let web1 = ReplicaId("web-1".to_owned());
        // Restarted once: attempt 0 exited and kept, attempt 1 runs; web-2
        // is another replica.
        let node = [
            container("old", "web-1", 0, Exited),
            container("new", "web-1", 1, Running),
            container("other", "web-2", 5, Exited),
        ];
        assert_eq!(pick(&node, &web1, Which::Current).unwrap().id, "new");
        assert_eq!(pick(&node, &web1, Which::Running).unwrap().id, "new");
        assert_eq!(pick(&node, &web1, Which::Previous).unwrap().id, "old");
        // Crashed and waiting out its backoff: the crashed one is both the
        // current and the previous; nothing runs.
        let waiting = [container("crashed", "web-1", 3, Exited)];
        assert_eq!(pick(&waiting, &web1, Which::Current).unwrap().id, "crashed");
        assert_eq!(
            pick(&waiting, &web1, Which::Previous).unwrap().id,
            "crashed"
        );
        assert_eq!(
            code(pick(&waiting, &web1, Which::Running)),
            StreamErrorCode::NotRunning
        );
        // Never crashed.
        let fresh = [container("only", "web-1", 0, Running)];
        assert_eq!(
            code(pick(&fresh, &web1, Which::Previous)),
            StreamErrorCode::NoPrevious
        );
        // Not this node's replica.
        let web9 = ReplicaId("web-9".to_owned());
        for which in [Which::Current, Which::Previous, Which::Running] {
            assert_eq!(
                code(pick(&node, &web9, which)),
                StreamErrorCode::NoContainer
            );
        }
    }

    async fn request_from(bytes: &[u8]) -> Result<StreamRequest, StreamFrame> {
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        a.write_all(bytes).await.unwrap();
        drop(a);
        read_request(&mut b, REQUEST_TIMEOUT).await
    }

    fn malformed(result: Result<StreamRequest, StreamFrame>) -> bool {
        matches!(
            result,
            Err(StreamFrame::Error {
                code: StreamErrorCode::Malformed,
                ..
            })
        )
    }

    #[tokio::test]
    async fn requests_are_read_and_junk_is_answered_with_an_error_frame() {
        let request = StreamRequest::Exec {
            replica: ReplicaId("web-1".to_owned()),
            command: vec!["true".to_owned()],
        };
        let encoded = frame::encode(&request).unwrap();
        assert_eq!(request_from(&encoded).await.unwrap(), request);
        // Cut anywhere: an error frame, never a panic.
        for cut in 0..encoded.len() {
            assert!(malformed(request_from(&encoded[..cut]).await), "{cut}");
        }
        // Over the limit: refused from the header alone.
        let huge = u32::try_from(MAX_REQUEST + 1).unwrap().to_be_bytes();
        assert!(malformed(request_from(&huge).await));
        // Framed junk.
        for junk in [&b"\xff\xfe"[..], b"{}", b"{\"type\":\"logs\"}", b"null"] {
            let mut framed = u32::try_from(junk.len()).unwrap().to_be_bytes().to_vec();
            framed.extend_from_slice(junk);
            assert!(malformed(request_from(&framed).await), "{junk:?}");
        }
        // A newer control plane's request decodes, to be refused as
        // unsupported by the answer.
        let newer =
            frame::encode(&serde_json::json!({"type": "attach", "replica": "web-1"})).unwrap();
        assert_eq!(request_from(&newer).await.unwrap(), StreamRequest::Unknown);
    }

    #[tokio::test]
    async fn a_request_that_never_comes_times_out() {
        let (_a, mut b) = tokio::io::duplex(64);
        let waited = read_request(&mut b, Duration::from_millis(20)).await;
        assert!(malformed(waited));
    }
}
