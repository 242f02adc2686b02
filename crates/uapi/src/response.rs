//! The answer to `get=1`: a device's configuration and statistics.

use crate::Key;
use ip_network::IpNetwork;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

/// A device as `wg show` reports it: what a server fills in to answer `get`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceState {
    /// The interface's private key, if one is set.
    pub private_key: Option<Key>,
    /// The UDP port actually bound (not 0 once the device is up).
    pub listen_port: u16,
    /// The socket mark; 0 for none.
    pub fwmark: u32,
    /// Every peer, in the order to list them.
    pub peers: Vec<PeerState>,
}

/// One peer's configuration and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    /// The peer's public key.
    pub public_key: Key,
    /// The preshared key, if any.
    pub preshared_key: Option<Key>,
    /// The current endpoint, if known.
    pub endpoint: Option<SocketAddr>,
    /// Wall-clock time of the last completed handshake, since the UNIX
    /// epoch; `None` if there has been none.
    pub last_handshake: Option<Duration>,
    /// Bytes received from the peer.
    pub rx_bytes: u64,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
    /// Persistent keepalive interval in seconds; 0 for off.
    pub persistent_keepalive_interval: u16,
    /// The peer's allowed IPs.
    pub allowed_ips: Vec<IpNetwork>,
}

impl PeerState {
    /// A peer with no preshared key, endpoint, handshake, traffic,
    /// keepalive or allowed IPs.
    pub fn new(public_key: Key) -> Self {
        PeerState {
            public_key,
            preshared_key: None,
            endpoint: None,
            last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
            persistent_keepalive_interval: 0,
            allowed_ips: Vec::new(),
        }
    }
}

/// The complete answer to `get=1`, ending with `errno=0` and a blank line.
///
/// Keys come in wireguard-go's order, which `wg show` and `wg showconf`
/// read: `private_key` (if set), `listen_port`, `fwmark` (if non-zero), then
/// per peer `public_key`, `preshared_key` (zeros for none), `protocol_version`,
/// `endpoint` (if known), `last_handshake_time_sec`/`_nsec` (zeros for
/// never), `tx_bytes`, `rx_bytes`, `persistent_keepalive_interval` and one
/// `allowed_ip` each. Private keys are written in full: the socket is the
/// device's owner's, as with every WireGuard implementation.
pub fn format_get_response(state: &DeviceState) -> String {
    let mut out = String::new();
    if let Some(key) = &state.private_key {
        line(&mut out, "private_key", key.to_hex());
    }
    line(&mut out, "listen_port", state.listen_port);
    if state.fwmark != 0 {
        line(&mut out, "fwmark", state.fwmark);
    }
    for peer in &state.peers {
        format_peer(&mut out, peer);
    }
    out.push_str(&crate::format_errno(crate::errno::SUCCESS));
    out
}

fn format_peer(out: &mut String, peer: &PeerState) {
    line(out, "public_key", peer.public_key.to_hex());
    let psk = peer.preshared_key.unwrap_or(Key::ZERO);
    line(out, "preshared_key", psk.to_hex());
    line(out, "protocol_version", 1);
    if let Some(endpoint) = peer.endpoint {
        line(out, "endpoint", endpoint);
    }
    let handshake = peer.last_handshake.unwrap_or(Duration::ZERO);
    line(out, "last_handshake_time_sec", handshake.as_secs());
    line(out, "last_handshake_time_nsec", handshake.subsec_nanos());
    line(out, "tx_bytes", peer.tx_bytes);
    line(out, "rx_bytes", peer.rx_bytes);
    line(
        out,
        "persistent_keepalive_interval",
        peer.persistent_keepalive_interval,
    );
    for net in &peer.allowed_ips {
        line(out, "allowed_ip", net);
    }
}

/// An answer to `get=1` that cannot be read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed get answer at line {line}")]
pub struct GetResponseError {
    /// The first line that does not parse (from 1).
    pub line: usize,
}

/// Reads an answer to `get=1` (as [`format_get_response`] writes it, or
/// another implementation answers) back into a [`DeviceState`]. Unknown
/// keys are skipped, as `wg` does; a non-zero `errno` is an error.
pub fn parse_get_response(text: &str) -> Result<DeviceState, GetResponseError> {
    let mut state = DeviceState::default();
    for (index, raw) in text.lines().enumerate() {
        let error = GetResponseError { line: index + 1 };
        if raw.is_empty() {
            break;
        }
        let (key, value) = raw.split_once('=').ok_or(error)?;
        let number = || crate::value::decimal::<u64>(value).ok_or(error);
        if key == "public_key" {
            let key = Key::from_hex(value).map_err(|_| error)?;
            state.peers.push(PeerState::new(key));
            continue;
        }
        match (key, state.peers.last_mut()) {
            ("private_key", None) => {
                state.private_key = Some(Key::from_hex(value).map_err(|_| error)?)
            }
            ("listen_port", None) => {
                state.listen_port = u16::try_from(number()?).map_err(|_| error)?
            }
            ("fwmark", None) => state.fwmark = u32::try_from(number()?).map_err(|_| error)?,
            ("errno", _) if value != "0" => return Err(error),
            ("preshared_key", Some(peer)) => {
                let psk = Key::from_hex(value).map_err(|_| error)?;
                peer.preshared_key = (!psk.is_zero()).then_some(psk);
            }
            ("endpoint", Some(peer)) => {
                peer.endpoint = Some(crate::value::endpoint(value).ok_or(error)?)
            }
            ("last_handshake_time_sec", Some(peer)) => {
                let nanos = peer.last_handshake.map_or(0, |t| t.subsec_nanos());
                peer.last_handshake = Some(Duration::new(number()?, nanos));
            }
            ("last_handshake_time_nsec", Some(peer)) => {
                let secs = peer.last_handshake.map_or(0, |t| t.as_secs());
                let nanos = u32::try_from(number()?).map_err(|_| error)?;
                peer.last_handshake = Some(Duration::new(secs, nanos));
            }
            ("rx_bytes", Some(peer)) => peer.rx_bytes = number()?,
            ("tx_bytes", Some(peer)) => peer.tx_bytes = number()?,
            ("persistent_keepalive_interval", Some(peer)) => {
                peer.persistent_keepalive_interval = u16::try_from(number()?).map_err(|_| error)?;
            }
            ("allowed_ip", Some(peer)) => peer
                .allowed_ips
                .push(crate::value::prefix(value).ok_or(error)?),
            _ => {}
        }
    }
    for peer in &mut state.peers {
        if peer.last_handshake == Some(Duration::ZERO) {
            peer.last_handshake = None;
        }
    }
    Ok(state)
}

fn line(out: &mut String, key: &str, value: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{key}={value}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn key(byte: u8) -> Key {
        Key([byte; 32])
    }

    fn net(text: &str) -> IpNetwork {
        crate::value::prefix(text).expect("test prefix")
    }

    fn example() -> DeviceState {
        let mut first = PeerState::new(key(0x22));
        first.preshared_key = Some(key(0x33));
        first.endpoint = Some(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 51820)));
        first.last_handshake = Some(Duration::new(1_700_000_000, 123_456_789));
        first.rx_bytes = 1024;
        first.tx_bytes = 2048;
        first.persistent_keepalive_interval = 25;
        first.allowed_ips = vec![net("10.0.0.2/32"), net("fd00::/64")];
        let mut second = PeerState::new(key(0x44));
        second.endpoint = Some(SocketAddr::from((Ipv6Addr::LOCALHOST, 51821)));
        DeviceState {
            private_key: Some(key(0x11)),
            listen_port: 51820,
            fwmark: 0x10,
            peers: vec![first, second],
        }
    }

    #[test]
    fn formats_exactly_what_wg_reads() {
        let expected = [
            "private_key=1111111111111111111111111111111111111111111111111111111111111111",
            "listen_port=51820",
            "fwmark=16",
            "public_key=2222222222222222222222222222222222222222222222222222222222222222",
            "preshared_key=3333333333333333333333333333333333333333333333333333333333333333",
            "protocol_version=1",
            "endpoint=192.0.2.1:51820",
            "last_handshake_time_sec=1700000000",
            "last_handshake_time_nsec=123456789",
            "tx_bytes=2048",
            "rx_bytes=1024",
            "persistent_keepalive_interval=25",
            "allowed_ip=10.0.0.2/32",
            "allowed_ip=fd00::/64",
            "public_key=4444444444444444444444444444444444444444444444444444444444444444",
            "preshared_key=0000000000000000000000000000000000000000000000000000000000000000",
            "protocol_version=1",
            "endpoint=[::1]:51821",
            "last_handshake_time_sec=0",
            "last_handshake_time_nsec=0",
            "tx_bytes=0",
            "rx_bytes=0",
            "persistent_keepalive_interval=0",
            "errno=0",
            "",
            "",
        ]
        .join("\n");
        assert_eq!(format_get_response(&example()), expected);
    }

    #[test]
    fn empty_device_omits_private_key_and_fwmark() {
        let text = format_get_response(&DeviceState::default());
        assert_eq!(text, "listen_port=0\nerrno=0\n\n");
    }

    #[test]
    fn answers_read_back_into_the_state_they_came_from() {
        assert_eq!(
            parse_get_response(&format_get_response(&example())),
            Ok(example())
        );
        assert_eq!(
            parse_get_response(&format_get_response(&DeviceState::default())),
            Ok(DeviceState::default())
        );
        assert_eq!(
            parse_get_response("listen_port=x\nerrno=0\n\n"),
            Err(GetResponseError { line: 1 })
        );
        assert_eq!(
            parse_get_response("errno=-22\n\n"),
            Err(GetResponseError { line: 1 })
        );
    }
}
