//! Asking a device over its UAPI socket: warren's `stats=1` extension
//! (drop counters by reason, for the device and each peer; the format and
//! its codec are [`warren_uapi::stats`]) and `get=1`, and the `stats=1`
//! answer for a [`Node`].

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use warren_mesh::{DropReason, Node};
use warren_uapi::stats::StatsParseError;

pub use warren_uapi::stats::STATS_REQUEST;

/// Drop counters of one device, as `stats=1` reports them.
pub type DropReport = warren_uapi::stats::DropReport<DropReason>;

/// Drop counters of one peer.
pub type PeerDrops = warren_uapi::stats::PeerDrops<DropReason>;

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

impl From<StatsParseError> for StatsError {
    fn from(error: StatsParseError) -> Self {
        match error {
            StatsParseError::Refused(errno) => StatsError::Refused(errno),
            StatsParseError::Malformed(what) => StatsError::Malformed(what),
        }
    }
}

/// The drop counters of `node` and of each of its peers.
pub fn report(node: &Node) -> DropReport {
    DropReport {
        device: node.drops().nonzero().collect(),
        peers: node
            .peers()
            .into_iter()
            .map(|peer| PeerDrops {
                public_key: peer.key,
                drops: peer.drops.nonzero().collect(),
            })
            .collect(),
    }
}

/// The `stats=1` answer for `node`.
pub fn format_stats(node: &Node) -> String {
    report(node).format()
}

/// Parses a `stats=1` answer.
pub fn parse_stats(text: &str) -> Result<DropReport, StatsError> {
    Ok(DropReport::parse(text)?)
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
        answer.extend_from_slice(chunk.get(..read).unwrap_or_default());
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use warren_mesh::PeerConfig;
    use warren_wire::PublicKey;

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
        assert_eq!(report, super::report(&node));
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
