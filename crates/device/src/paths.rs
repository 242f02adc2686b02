//! What each peer's path looks like from this node, for `warren mesh`:
//! direct or relayed (the device names the relay as the endpoint while a
//! peer is relayed), the last handshake, the bytes, and a round-trip time
//! measured through the mesh with a small UDP echo that every warren node
//! answers on its mesh address ([`ECHO_PORT`]).

use crate::handle::{DeviceHandle, HandleError};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use warren_proto::{PathKind, PathReport};
use warren_wire::PublicKey;

/// The UDP port of the mesh echo, on every node's mesh address.
pub const ECHO_PORT: u16 = 7946;

/// How long a round of probes waits for its echoes.
const PROBE_WAIT: Duration = Duration::from_secs(1);

/// The first bytes of an echo probe.
const MAGIC: &[u8; 4] = b"wrn?";

/// Answers echo probes on `mesh_ip` until the task is dropped or aborted.
pub async fn echo_responder(mesh_ip: Ipv4Addr) -> io::Result<tokio::task::JoinHandle<()>> {
    let socket = UdpSocket::bind((mesh_ip, ECHO_PORT)).await?;
    Ok(tokio::spawn(async move {
        let mut buf = [0u8; 64];
        loop {
            match socket.recv_from(&mut buf).await {
                Ok((len, from)) if buf.get(..4) == Some(MAGIC.as_slice()) => {
                    let _ = socket
                        .send_to(buf.get(..len).unwrap_or_default(), from)
                        .await;
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "mesh echo"),
            }
        }
    }))
}

/// Every peer's path now, as the protocol reports it: the device's view
/// plus one echo round trip per peer in `mesh_ips` (peers not in it get no
/// RTT). `relays` tells relayed endpoints apart.
pub async fn measure(
    device: &DeviceHandle,
    relays: &[SocketAddr],
    mesh_ips: &HashMap<PublicKey, Ipv4Addr>,
) -> Result<Vec<PathReport>, HandleError> {
    let rtts = probe_all(mesh_ips.iter().map(|(key, ip)| (*key, *ip)).collect())
        .await
        .unwrap_or_default();
    let state = device.state().await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Ok(state
        .peers
        .into_iter()
        .map(|peer| {
            let key = PublicKey::from(peer.public_key);
            let kind = match (peer.last_handshake, peer.endpoint) {
                (None, _) => PathKind::None,
                (Some(_), Some(endpoint)) if relays.contains(&endpoint) => PathKind::Relayed,
                (Some(_), _) => PathKind::Direct,
            };
            PathReport {
                public_key: key,
                kind,
                endpoint: peer.endpoint,
                rtt_ms: rtts.get(&key).map(|rtt| rtt.as_secs_f64() * 1000.0),
                last_handshake_secs: peer
                    .last_handshake
                    .map(|at| now.saturating_sub(at).as_secs()),
                tx_bytes: peer.tx_bytes,
                rx_bytes: peer.rx_bytes,
            }
        })
        .collect())
}

/// One echo to each target at once; the round trips of those that came
/// back within [`PROBE_WAIT`].
async fn probe_all(
    targets: Vec<(PublicKey, Ipv4Addr)>,
) -> io::Result<HashMap<PublicKey, Duration>> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    let mut sent = HashMap::new();
    for (index, (key, ip)) in targets.iter().enumerate() {
        let mut probe = [0u8; 16];
        probe[..4].copy_from_slice(MAGIC);
        probe[4..12].copy_from_slice(&(index as u64).to_be_bytes());
        if socket
            .send_to(&probe, (IpAddr::V4(*ip), ECHO_PORT))
            .await
            .is_ok()
        {
            sent.insert(index as u64, (*key, Instant::now()));
        }
    }
    let mut rtts = HashMap::new();
    let deadline = tokio::time::Instant::now() + PROBE_WAIT;
    let mut buf = [0u8; 64];
    while rtts.len() < sent.len() {
        let Ok(Ok((len, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await
        else {
            break;
        };
        let Some(seq) = buf.get(4..12).filter(|_| len == 16) else {
            continue;
        };
        let seq = u64::from_be_bytes(seq.try_into().unwrap_or_default());
        if let Some((key, at)) = sent.get(&seq) {
            rtts.insert(*key, at.elapsed());
        }
    }
    Ok(rtts)
}

/// One echo round trip to `ip` (for `warren ping`), or `None` after `wait`.
pub async fn ping(ip: Ipv4Addr, wait: Duration) -> io::Result<Option<Duration>> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    let mut probe = [0u8; 16];
    probe[..4].copy_from_slice(MAGIC);
    let start = Instant::now();
    socket.send_to(&probe, (IpAddr::V4(ip), ECHO_PORT)).await?;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(Ok(_)) => Ok(Some(start.elapsed())),
        Ok(Err(error)) => Err(error),
        Err(_) => Ok(None),
    }
}
