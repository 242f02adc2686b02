//! The agent–control protocol, version 1: what `warren join` and
//! `warren serve` say to each other over QUIC.
//!
//! The agent opens one bidirectional stream per connection and sends a
//! [`Hello`]; the control plane answers [`ControlMessage::Welcome`] or
//! [`ControlMessage::Refused`], and after a welcome keeps sending
//! [`ControlMessage::Peers`] on the same stream as nodes join and leave;
//! the agent sends a [`Report`] of its paths every few seconds. Each message is a frame: a 4-byte
//! big-endian length, then that many bytes of JSON, at most
//! [`MAX_FRAME`]. The TLS layer carries the version too (ALPN [`ALPN`]),
//! and [`Hello::version`] lets a control plane tell an agent of another
//! version exactly what is wrong.
//!
//! Keys, tickets and credentials travel as base64 text; addresses as
//! strings (`"100.96.0.2"`, `"192.0.2.1:51820"`).

#![forbid(unsafe_code)]

pub mod files;

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// The TLS application protocol of version 1.
pub const ALPN: &[u8] = b"warren/1";

/// The QUIC close code with which the control plane tells an agent that
/// its node was removed (`warren node rm`): the agent stops, it does not
/// reconnect.
pub const REMOVED_CODE: u32 = 0x5245;

/// The largest frame either side accepts.
pub const MAX_FRAME: usize = 1 << 20;

/// How an agent proves it may join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Auth {
    /// A first join, with a join token's id and secret (hex, base64url).
    Token {
        /// The token's id, 16 hex digits.
        id: String,
        /// The token's secret, base64url.
        secret: String,
    },
    /// A rejoin, with the credential the first join handed out.
    Credential {
        /// The credential, base64url.
        secret: String,
    },
}

/// The agent's first message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the agent.
    pub version: u32,
    /// Its proof.
    pub auth: Auth,
    /// The name it wants (its hostname by default).
    pub name: String,
    /// Its WireGuard public key, base64.
    pub public_key: String,
    /// `direct` or `relay`.
    pub mode: String,
    /// The private address a direct node is reachable at.
    pub private_address: Option<IpAddr>,
    /// Its WireGuard UDP port.
    pub wg_port: u16,
}

/// A peer in the agent's peer map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The node's name (`control` for the control plane).
    pub name: String,
    /// Its WireGuard public key, base64.
    pub public_key: String,
    /// Its mesh address.
    pub mesh_ip: Ipv4Addr,
    /// `control`, `direct` or `relay`.
    pub mode: String,
    /// Addresses to try directly, likeliest first (empty: relay only).
    pub endpoints: Vec<SocketAddr>,
}

/// What a joined agent gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Its name.
    pub name: String,
    /// Its mesh address.
    pub mesh_ip: Ipv4Addr,
    /// The mesh prefix length (the CIDR's).
    pub mesh_prefix: u8,
    /// The credential to rejoin with, on a first join only.
    pub credential: Option<String>,
    /// The relays to register with, in order of preference.
    pub relays: Vec<SocketAddr>,
    /// The agent's relay ticket, base64.
    pub ticket: String,
    /// Every other node, the control plane first.
    pub peers: Vec<Peer>,
}

/// What the control plane sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMessage {
    /// Joined.
    Welcome(Welcome),
    /// Not joined, and why (one line, for the agent to print).
    Refused {
        /// The reason.
        reason: String,
    },
    /// A fresh relay ticket for the node's key (tickets are short-lived and
    /// renewed while the node is connected; a removed node gets none).
    Ticket {
        /// The ticket, base64.
        ticket: String,
    },
    /// Where a peer could be reached directly, as it last reported (NAT
    /// traversal candidates, passed on by the control plane).
    Candidates {
        /// The peer's public key, base64.
        public_key: String,
        /// Its candidates, likeliest first.
        candidates: Vec<SocketAddr>,
    },
    /// Changes to the peer map since the welcome or the last update.
    Peers {
        /// Nodes that joined (or whose details changed).
        added: Vec<Peer>,
        /// Public keys (base64) of nodes that left.
        removed: Vec<String>,
    },
}

/// How the reporting node reaches one peer (see `docs/mesh.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathReport {
    /// The peer's WireGuard public key, base64.
    pub public_key: String,
    /// `direct`, `relayed` or `none`.
    pub kind: String,
    /// Where the node sends to it (the relay while relayed).
    pub endpoint: Option<SocketAddr>,
    /// Round trip through the mesh, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Seconds since the last handshake.
    pub last_handshake_secs: Option<u64>,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
    /// Bytes received from it.
    pub rx_bytes: u64,
}

/// What a joined agent sends after its hello, every few seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Its view of every peer.
    pub paths: Vec<PathReport>,
    /// Where peers could reach it directly (the relays' view of it, then its
    /// own addresses), passed on to the other nodes for NAT traversal.
    #[serde(default)]
    pub candidates: Vec<SocketAddr>,
}

/// A node's own view, written to its data directory every few seconds
/// for `warren status` (which needs no admin credential).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The node's name (`control` for the control plane).
    pub name: String,
    /// Its mesh address.
    pub mesh_ip: Ipv4Addr,
    /// `control`, `direct` or `relay`.
    pub mode: String,
    /// Its mesh interface.
    pub iface: String,
    /// Whether it is connected to the control plane.
    pub control_connected: bool,
    /// When this was written, unix seconds.
    pub updated: u64,
    /// Every peer.
    pub peers: Vec<PeerStatus>,
}

/// One peer in a [`Status`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The peer's name.
    pub name: String,
    /// Its mesh address.
    pub mesh_ip: Ipv4Addr,
    /// How this node reaches it.
    #[serde(flatten)]
    pub path: PathReport,
}

/// The file a [`Status`] is kept in, in the data directory (the agent's
/// is under `agent/`).
pub const STATUS_FILE: &str = "status.json";

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Longer than [`MAX_FRAME`].
    #[error("a {0}-byte message is over the {MAX_FRAME}-byte limit")]
    TooLong(usize),
    /// Not the JSON of the expected message.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

/// `message` as a frame: length, then JSON.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let json = serde_json::to_vec(message)?;
    if json.len() > MAX_FRAME {
        return Err(FrameError::TooLong(json.len()));
    }
    let mut frame = Vec::with_capacity(4 + json.len());
    frame.extend_from_slice(&(json.len() as u32).to_be_bytes());
    frame.extend_from_slice(&json);
    Ok(frame)
}

/// The length a frame header announces, refused over [`MAX_FRAME`].
pub fn frame_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    Ok(len)
}

/// Decodes a frame's body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    Ok(serde_json::from_slice(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello() -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            auth: Auth::Token {
                id: "0102030405060708".to_owned(),
                secret: "c2VjcmV0".to_owned(),
            },
            name: "pi".to_owned(),
            public_key: "a2V5".to_owned(),
            mode: "relay".to_owned(),
            private_address: None,
            wg_port: 51820,
        }
    }

    #[test]
    fn messages_round_trip_through_frames() {
        let frame = encode(&hello()).unwrap();
        let len = frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        assert_eq!(decode::<Hello>(&frame[4..]).unwrap(), hello());
        let refused = ControlMessage::Refused {
            reason: "no".to_owned(),
        };
        let frame = encode(&refused).unwrap();
        assert_eq!(decode::<ControlMessage>(&frame[4..]).unwrap(), refused);
        assert!(String::from_utf8_lossy(&frame[4..]).contains(r#""type":"refused""#));
    }

    #[test]
    fn oversized_and_malformed_frames_are_refused() {
        assert!(matches!(
            frame_len(((MAX_FRAME + 1) as u32).to_be_bytes()),
            Err(FrameError::TooLong(_))
        ));
        assert!(matches!(
            decode::<Hello>(b"{\"version\":1}"),
            Err(FrameError::Json(_))
        ));
        assert!(matches!(decode::<Hello>(b"\xff"), Err(FrameError::Json(_))));
    }
}
