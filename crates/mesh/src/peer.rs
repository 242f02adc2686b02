//! One WireGuard peer: its session (a boringtun `Tunn`), where to send its
//! packets, and its counters.

use crate::disco::{DiscoKeys, DiscoNonce};
use crate::drops::{DropCounters, DropReason};
use boringtun::noise::Tunn;
use ip_network::IpNetwork;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use warren_wire::PublicKey;

/// Where a peer's encrypted packets are sent.
///
/// This is the seam that path selection works through: changing a peer's
/// path changes only where datagrams go, never the WireGuard session, so a
/// transfer in flight survives the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// No way to reach the peer is known yet (it may still reach us).
    Unknown,
    /// Straight to the peer's UDP endpoint.
    Direct(SocketAddr),
    /// Through the relay at this address, framed for the peer's key.
    Relay(SocketAddr),
}

impl Path {
    /// The UDP address datagrams for this path are sent to, if any.
    pub fn destination(&self) -> Option<SocketAddr> {
        match self {
            Path::Unknown => None,
            Path::Direct(addr) | Path::Relay(addr) => Some(*addr),
        }
    }
}

/// How long a direct path stays trusted after the last authenticated
/// datagram that came straight from the peer. Past it, and with a relay to
/// fall back on, traffic goes through the relay until the direct path
/// proves itself again. Longer than WireGuard's 10 s passive keepalive, so
/// a tunnel with traffic in only one direction does not flap between paths
/// (the receiving end answers at least that often).
pub const DIRECT_TRUST: Duration = Duration::from_secs(15);

/// A direct path that has brought nothing back for this long since this
/// node last sent on it is abandoned for the relay at once, without
/// waiting out [`DIRECT_TRUST`]: a TCP flow hears acknowledgements all the
/// time, so an unanswered send this old means the path broke. (A flow
/// whose other end is silent by nature moves to the relay between the
/// peer's 10 s keepalives and back: its packets are delivered either way.)
pub const DIRECT_SILENCE: Duration = Duration::from_secs(5);

/// Candidates a peer sent are probed for this long after its last call
/// (three calls' worth), then forgotten.
pub const CANDIDATE_LIFETIME: Duration = Duration::from_secs(30);

/// Most candidates of one peer probed at once: its reflexive address and a
/// few of its own addresses.
pub const MAX_PROBED_CANDIDATES: usize = 4;

/// While a peer with a known endpoint is reached through a relay, a
/// keepalive goes straight to the endpoint this often: when it gets
/// through, the peer's answer proves the direct path and traffic moves
/// there. (Tailscale's heartbeat is 3 s.)
pub const DIRECT_PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// While a peer is reached through a relay, this node sends it its
/// candidate addresses (a disco `CallMeMaybe`, through the relay) this
/// often, so both ends probe each other at once and punch through NATs
/// that allow it.
pub const CALL_ME_MAYBE_INTERVAL: Duration = Duration::from_secs(10);

/// The configuration of a peer, as `wg set` or a config file gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerConfig {
    /// Optional pre-shared key mixed into the handshake.
    pub preshared_key: Option<[u8; 32]>,
    /// The peer's UDP endpoint, if known in advance.
    pub endpoint: Option<SocketAddr>,
    /// Send a keepalive after this many seconds without sending anything (0 = off).
    pub persistent_keepalive: u16,
    /// The inner addresses this peer may use as a source and is routed for.
    pub allowed_ips: Vec<IpNetwork>,
}

/// A snapshot of one peer's state, for `wg show`, metrics and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStats {
    /// The peer's public key.
    pub key: PublicKey,
    /// The pre-shared key, if one is set.
    pub preshared_key: Option<[u8; 32]>,
    /// The current path to the peer.
    pub path: Path,
    /// The peer's direct UDP endpoint, configured or learned, trusted or not.
    pub endpoint: Option<SocketAddr>,
    /// Time since the last completed handshake (`None` if never).
    pub last_handshake: Option<Duration>,
    /// Bytes of WireGuard datagrams received from the peer and accepted.
    pub rx_bytes: u64,
    /// Bytes of WireGuard datagrams sent to the peer.
    pub tx_bytes: u64,
    /// Persistent keepalive interval in seconds (0 = off).
    pub persistent_keepalive: u16,
    /// The peer's allowed IPs, sorted.
    pub allowed_ips: Vec<IpNetwork>,
    /// Packets to or from this peer that were dropped, by reason.
    pub drops: DropCounters,
}

/// A peer inside the node. Owned and driven by [`crate::Node`].
pub(crate) struct Peer {
    pub(crate) key: PublicKey,
    pub(crate) index: u32,
    pub(crate) tunn: Tunn,
    pub(crate) preshared_key: Option<[u8; 32]>,
    /// The direct endpoint (configured, or where the peer last roamed to).
    pub(crate) endpoint: Option<SocketAddr>,
    /// When an authenticated datagram last came straight from `endpoint`.
    pub(crate) last_direct_rx: Option<Instant>,
    /// When keepalives last went straight to the endpoint and candidates to probe them.
    pub(crate) last_direct_probe: Option<Instant>,
    /// Addresses the peer said it might be reachable at (disco `CallMeMaybe`).
    pub(crate) candidates: Vec<SocketAddr>,
    /// When the candidates arrived (they expire after [`CANDIDATE_LIFETIME`]).
    pub(crate) candidates_at: Option<Instant>,
    /// The nonce of the last disco message accepted from the peer.
    pub(crate) last_disco: Option<DiscoNonce>,
    /// When this node last sent the peer its own candidates.
    pub(crate) last_call: Option<Instant>,
    /// Keys for disco messages with this peer.
    pub(crate) disco: DiscoKeys,
    pub(crate) persistent_keepalive: u16,
    pub(crate) last_sent: Option<Instant>,
    pub(crate) rx_bytes: u64,
    pub(crate) tx_bytes: u64,
    pub(crate) drops: DropCounters,
}

impl Peer {
    /// Records a datagram sent to this peer.
    pub(crate) fn note_sent(&mut self, now: Instant, bytes: usize) {
        self.tx_bytes += bytes as u64;
        self.last_sent = Some(now);
    }

    /// Records a drop attributed to this peer.
    pub(crate) fn note_drop(&mut self, reason: DropReason) {
        self.drops.count(reason);
    }

    /// The path to use at `now`, given the relay this node would use (the
    /// first it is registered with): direct when there is an endpoint and
    /// either no relay to fall back on or a direct datagram was authenticated
    /// within [`DIRECT_TRUST`]; else the relay; else nothing.
    pub(crate) fn path(&self, now: Instant, relay: Option<SocketAddr>) -> Path {
        // Sent something since the peer was last heard directly, and no
        // answer for a while: the direct path is suspect even before its
        // trust runs out.
        let trusted = self.last_direct_rx.is_some_and(|heard| {
            let ago = now.saturating_duration_since(heard);
            let unanswered = self.last_sent.is_some_and(|sent| sent > heard);
            ago < DIRECT_TRUST && !(unanswered && ago >= DIRECT_SILENCE)
        });
        match (self.endpoint, relay) {
            (Some(endpoint), None) => Path::Direct(endpoint),
            (Some(endpoint), Some(_)) if trusted => Path::Direct(endpoint),
            (_, Some(relay)) => Path::Relay(relay),
            (None, None) => Path::Unknown,
        }
    }

    /// Whether the direct endpoint should be probed at `now` (see
    /// [`DIRECT_PROBE_INTERVAL`]): it is known but the relay carries the traffic.
    pub(crate) fn direct_probe_due(&self, now: Instant, path: Path) -> bool {
        matches!(path, Path::Relay(_))
            && !self.probe_targets(now).is_empty()
            && self
                .last_direct_probe
                .is_none_or(|at| now.saturating_duration_since(at) >= DIRECT_PROBE_INTERVAL)
    }

    /// Where direct probes go: the endpoint and the live candidates, once each.
    pub(crate) fn probe_targets(&self, now: Instant) -> Vec<SocketAddr> {
        let mut targets: Vec<SocketAddr> = self.endpoint.into_iter().collect();
        let live = self
            .candidates_at
            .is_some_and(|at| now.saturating_duration_since(at) < CANDIDATE_LIFETIME);
        for candidate in self.candidates.iter().filter(|_| live) {
            if !targets.contains(candidate) {
                targets.push(*candidate);
            }
        }
        targets
    }

    /// Takes `candidates` (already filtered) as probe targets for the next
    /// [`CANDIDATE_LIFETIME`]. Returns whether to probe at the next tick:
    /// they changed, and no probe went out in the last second.
    pub(crate) fn take_candidates(&mut self, candidates: Vec<SocketAddr>, now: Instant) -> bool {
        let changed = self.candidates != candidates;
        self.candidates = candidates;
        self.candidates_at = Some(now);
        let probed_lately = self
            .last_direct_probe
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
        if changed && !probed_lately {
            self.last_direct_probe = None;
            return true;
        }
        false
    }

    /// Whether this node should send the peer its candidates at `now`.
    pub(crate) fn call_due(&self, now: Instant, path: Path) -> bool {
        matches!(path, Path::Relay(_))
            && self
                .last_call
                .is_none_or(|at| now.saturating_duration_since(at) >= CALL_ME_MAYBE_INTERVAL)
    }

    /// Whether a persistent keepalive is due at `now`.
    pub(crate) fn keepalive_due(&self, now: Instant) -> bool {
        if self.persistent_keepalive == 0 {
            return false;
        }
        let interval = Duration::from_secs(u64::from(self.persistent_keepalive));
        match self.last_sent {
            None => true,
            Some(sent) => now.saturating_duration_since(sent) >= interval,
        }
    }
}
