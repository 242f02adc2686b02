//! warren's `stats=1` extension of the UAPI socket: drop counters by
//! reason, for the device and for each peer.
//!
//! `wg(8)` has no place for them, so warren answers one more request on the
//! same socket. The answer uses the UAPI's `key=value` lines:
//!
//! ```text
//! drop_no_route=2            device-wide counters first
//! public_key=<hex>           then each peer,
//! drop_replayed=1            followed by its own counters
//! errno=0
//! ```
//!
//! Only non-zero counters are listed.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use warren_mesh::{DropReason, Node};
use warren_wire::PublicKey;

/// The complete `stats=1` request.
pub const STATS_REQUEST: &[u8] = b"stats=1\n\n";

/// Drop counters of one device, as `stats=1` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropReport {
    /// Device-wide counts (every drop, attributed to a peer or not).
    pub device: Vec<(DropReason, u64)>,
    /// Per-peer counts, for every peer (empty when it had no drops).
    pub peers: Vec<PeerDrops>,
}

/// Drop counters of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDrops {
    /// The peer.
    pub public_key: PublicKey,
    /// Its non-zero counters.
    pub drops: Vec<(DropReason, u64)>,
}

impl DropReport {
    /// The device-wide count for `reason` (0 when absent).
    pub fn device_count(&self, reason: DropReason) -> u64 {
        self.device
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, count)| *count)
    }

    /// All device-wide drops.
    pub fn device_total(&self) -> u64 {
        self.device.iter().map(|(_, count)| count).sum()
    }
}

/// A `stats=1` exchange that failed.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The socket could not be reached or read.
    #[error("talking to {path}: {source}")]
    Io {
        /// The UAPI socket.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The device answered with an error (e.g. it is not a warren device).
    #[error("the device answered errno={0} (is it a warren device?)")]
    Refused(i32),
    /// The answer is not in the format above.
    #[error("malformed stats answer: {0}")]
    Malformed(String),
}

/// The `stats=1` answer for `node`.
pub fn format_stats(node: &Node) -> String {
    let mut text = String::new();
    for (reason, count) in node.drops().nonzero() {
        text.push_str(&format!("drop_{reason}={count}\n"));
    }
    for peer in node.peers() {
        text.push_str(&format!(
            "public_key={}\n",
            warren_uapi::Key::from(peer.key).to_hex()
        ));
        for (reason, count) in peer.drops.nonzero() {
            text.push_str(&format!("drop_{reason}={count}\n"));
        }
    }
    text.push_str("errno=0\n\n");
    text
}

/// Parses a `stats=1` answer.
pub fn parse_stats(text: &str) -> Result<DropReport, StatsError> {
    let malformed = |what: &str| StatsError::Malformed(what.to_owned());
    let mut report = DropReport::default();
    for line in text.lines().filter(|line| !line.is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| malformed(&format!("line without '=': {line:?}")))?;
        if key == "errno" {
            let errno: i32 = value.parse().map_err(|_| malformed("errno"))?;
            if errno != 0 {
                return Err(StatsError::Refused(errno));
            }
        } else if key == "public_key" {
            let key = warren_uapi::Key::from_hex(value).map_err(|_| malformed("public_key"))?;
            report.peers.push(PeerDrops {
                public_key: PublicKey::from_bytes(key.0),
                drops: Vec::new(),
            });
        } else if let Some(name) = key.strip_prefix("drop_") {
            let reason: DropReason = name.parse().map_err(|_| malformed(key))?;
            let count: u64 = value.parse().map_err(|_| malformed(key))?;
            match report.peers.last_mut() {
                Some(peer) => peer.drops.push((reason, count)),
                None => report.device.push((reason, count)),
            }
        } else {
            return Err(malformed(&format!("unexpected key {key:?}")));
        }
    }
    Ok(report)
}

/// Asks the device behind UAPI socket `path` for its drop counters.
pub fn query_stats(path: &Path) -> Result<DropReport, StatsError> {
    parse_stats(&ask(path, STATS_REQUEST)?)
}

/// Asks the device behind UAPI socket `path` for its state (`get=1`):
/// peers, endpoints, handshakes, bytes.
pub fn query_state(path: &Path) -> Result<warren_uapi::DeviceState, StatsError> {
    let answer = ask(path, b"get=1\n\n")?;
    warren_uapi::parse_get_response(&answer)
        .map_err(|error| StatsError::Malformed(error.to_string()))
}

/// One request on the UAPI socket `path`, and its whole answer.
fn ask(path: &Path, request: &[u8]) -> Result<String, StatsError> {
    let io = |source| StatsError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    stream.write_all(request).map_err(io)?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.ends_with(b"\n\n") {
        let read = stream.read(&mut chunk).map_err(io)?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..read]);
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use warren_mesh::PeerConfig;

    #[test]
    fn the_answer_for_a_node_parses_back() {
        let mut node = Node::new(
            &warren_wire::PrivateKey::from_bytes([1; 32]),
            0,
            Instant::now(),
        );
        let peer = PublicKey::from_bytes([9; 32]);
        node.add_peer(peer, PeerConfig::default()).unwrap();
        let mut out = [0u8; 256];
        let _ = node.send_ip(Instant::now(), &[0x45; 4], &mut out);
        let report = parse_stats(&format_stats(&node)).unwrap();
        assert_eq!(report.device, vec![(DropReason::NotIp, 1)]);
        assert_eq!(report.peers.len(), 1);
        assert_eq!(report.peers[0].public_key, peer);
    }

    #[test]
    fn errors_and_unknown_reasons_are_refused() {
        assert!(matches!(
            parse_stats("errno=-22\n\n"),
            Err(StatsError::Refused(-22))
        ));
        assert!(matches!(
            parse_stats("drop_gremlins=1\nerrno=0\n\n"),
            Err(StatsError::Malformed(_))
        ));
    }
}
