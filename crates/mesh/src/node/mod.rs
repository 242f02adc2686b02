//! The mesh node: a sans-IO WireGuard interface.
//!
//! [`Node`] owns the peer table, the cryptokey routing table (allowed IPs →
//! peer) and one boringtun `Tunn` per peer. It never touches a socket, a TUN
//! device or the clock: the driver feeds it datagrams from the UDP socket
//! ([`Node::handle_datagram`]), IP packets from the TUN ([`Node::send_ip`]) and
//! the current time ([`Node::handle_timeout`]), and sends what it returns.
//!
//! # Driving it
//! After every input, drain [`Node::poll_transmit`] and send each datagram,
//! then sleep until [`Node::poll_timeout`] and call [`Node::handle_timeout`].
//! The data path returns its output in the caller's buffer (no allocation
//! per packet); protocol traffic — handshakes, keepalives, cookie replies,
//! direct probes, relay frames and disco calls — is queued.
//!
//! boringtun's `Tunn` reads the monotonic clock itself for handshake and
//! rekey timers; everything decided here (keepalives, ticks, paths, roaming)
//! uses the `now` it is given.

mod receive;
mod send;

use crate::disco::{self, DiscoKeys};
use crate::drops::{DropCounters, DropReason};
use crate::peer::{Path, Peer, PeerConfig, PeerStats};
use crate::relays::{framed, Relays};
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::StaticSecret;
use ip_network::IpNetwork;
use ip_network_table::IpNetworkTable;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warren_relay_proto::Transmit;
use warren_wire::frame::{is_warren_frame, send_header, SEND_HEADER_LEN};
use warren_wire::Ticket;
use warren_wire::{PrivateKey, PublicKey};

/// How often WireGuard's timers are checked (boringtun's own device uses 250 ms).
pub const TIMER_TICK: Duration = Duration::from_millis(250);

/// How often the handshake rate limiter's window restarts (as in boringtun's device).
const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(1);

/// Handshakes per second the node accepts from unknown addresses before it
/// answers with cookies instead (boringtun's device default).
const HANDSHAKE_RATE_LIMIT: u64 = 100;

/// Session indexes are 24 bits: boringtun puts its own counter in the low byte.
const INDEX_MASK: u32 = 0x00ff_ffff;

/// Smallest buffer boringtun can write a handshake initiation into.
const MIN_OUT_BUFFER: usize = 148;

/// WireGuard's per-data-packet overhead: header, counter and AEAD tag.
pub const DATA_OVERHEAD: usize = 32;

/// The most bytes a packet grows by on its way out: WireGuard's overhead
/// plus the relay's `Send` header when the peer is reached through a relay.
pub const MAX_OVERHEAD: usize = DATA_OVERHEAD + SEND_HEADER_LEN;

/// A packet the node refused; it has already been counted under `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("packet dropped: {reason}")]
pub struct Dropped {
    /// Why the packet was dropped.
    pub reason: DropReason,
}

/// A configuration change the node could not apply; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The change names a peer the node does not have.
    #[error("no peer with public key {0}")]
    UnknownPeer(PublicKey),
    /// A peer with this key already exists.
    #[error("peer {0} already exists")]
    DuplicatePeer(PublicKey),
    /// The key is the node's own public key; a node cannot be its own peer.
    #[error("peer {0} is this node's own public key")]
    OwnKey(PublicKey),
}

/// The per-run disco nonce prefix: a hash of the seed, so it shares no bits
/// with the session indexes the seed also picks.
fn disco_prefix(seed: u64) -> [u8; 8] {
    use blake2::{Blake2s256, Digest};
    let digest = Blake2s256::new()
        .chain_update(b"warren disco nonce prefix")
        .chain_update(seed.to_be_bytes())
        .finalize();
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    prefix
}

/// A `Tunn` for one peer. Its own handshake rate limiter never trips: the
/// node's limiter, checked before any peer is looked up, is the only one
/// that answers with cookies. (A per-peer limiter would answer an
/// unauthenticated flood with cookie replies that look, to the caller, like
/// authenticated protocol traffic.)
fn new_session(
    private_key: &PrivateKey,
    peer: PublicKey,
    preshared_key: Option<[u8; 32]>,
    index: u32,
) -> Tunn {
    let unlimited = Arc::new(RateLimiter::new(&private_key.public_key().into(), u64::MAX));
    Tunn::new(
        StaticSecret::from(private_key),
        peer.into(),
        preshared_key,
        None,
        index,
        Some(unlimited),
    )
}

/// A userspace WireGuard interface without I/O. See the module docs.
pub struct Node {
    private_key: PrivateKey,
    public_key: PublicKey,
    peers: HashMap<u32, Peer>,
    index_by_key: HashMap<PublicKey, u32>,
    routes: IpNetworkTable<u32>,
    next_index: u32,
    rate_limiter: Arc<RateLimiter>,
    queued: VecDeque<Transmit>,
    drops: DropCounters,
    next_tick: Instant,
    next_rate_limit_reset: Instant,
    scratch: Box<[u8; MIN_OUT_BUFFER]>,
    relays: Relays,
    /// The latest time any input brought, for snapshots (`peer`, `peers`).
    now: Instant,
    /// Disco nonces: a per-run prefix (from the seed) and a counter.
    disco_prefix: [u8; 8],
    disco_counter: u32,
    /// This host's own addresses with the device's port (see
    /// [`Node::set_local_candidates`]).
    local_candidates: Vec<SocketAddr>,
}

impl Node {
    /// A node with `private_key` and no peers. `seed` picks the first session
    /// index (use a random value so indexes are not predictable across restarts).
    pub fn new(private_key: &PrivateKey, seed: u64, now: Instant) -> Self {
        let public_key = private_key.public_key();
        Node {
            rate_limiter: Arc::new(RateLimiter::new(&public_key.into(), HANDSHAKE_RATE_LIMIT)),
            private_key: private_key.clone(),
            public_key,
            peers: HashMap::new(),
            index_by_key: HashMap::new(),
            routes: IpNetworkTable::new(),
            next_index: (seed as u32) & INDEX_MASK,
            queued: VecDeque::new(),
            drops: DropCounters::default(),
            next_tick: now,
            next_rate_limit_reset: now + RATE_LIMIT_WINDOW,
            scratch: Box::new([0; MIN_OUT_BUFFER]),
            relays: Relays::default(),
            now,
            disco_prefix: disco_prefix(seed),
            disco_counter: 0,
            local_candidates: Vec::new(),
        }
    }

    /// The node's public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// The node's private key (for the UAPI `get`, which reports it).
    pub fn private_key(&self) -> PrivateKey {
        self.private_key.clone()
    }

    /// Replaces the node's private key. Every session is dropped (they were
    /// keyed to the old identity); a peer whose key is the new public key is
    /// removed, as a node cannot be its own peer.
    pub fn set_private_key(&mut self, private_key: &PrivateKey) {
        if *private_key == self.private_key {
            // `wg setconf` and friends resend the key: keep the sessions.
            return;
        }
        self.private_key = private_key.clone();
        self.public_key = private_key.public_key();
        self.rate_limiter = Arc::new(RateLimiter::new(
            &self.public_key.into(),
            HANDSHAKE_RATE_LIMIT,
        ));
        let own = self.public_key();
        self.remove_peer(&own);
        self.relays.rekey(private_key, self.now);
        for peer in self.peers.values_mut() {
            peer.disco = DiscoKeys::new(&self.private_key, peer.key);
            peer.tunn = new_session(&self.private_key, peer.key, peer.preshared_key, peer.index);
        }
    }

    /// Sets this host's own addresses, each with the device's UDP port: LAN
    /// addresses, and IPv6 addresses when the socket takes IPv6. Peers get
    /// them after the relays' reflexive addresses in every `CallMeMaybe`, so
    /// two nodes on one network find each other even behind a NAT that
    /// does not hairpin. IPv6 candidates of peers are probed only when this
    /// list holds an IPv6 address (both ends have IPv6). The device keeps
    /// it current; tests set what they like.
    pub fn set_local_candidates(&mut self, candidates: Vec<SocketAddr>) {
        let mut unique = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            if !unique.contains(&candidate) {
                unique.push(candidate);
            }
        }
        self.local_candidates = unique;
    }

    /// Candidates for `key` learned another way than a `CallMeMaybe` (the
    /// control plane relays each node's candidates too): filtered and
    /// probed the same way. Returns false for an unknown peer.
    pub fn set_peer_candidates(
        &mut self,
        key: &PublicKey,
        candidates: Vec<SocketAddr>,
        now: Instant,
    ) -> bool {
        let candidates = self.probeable(candidates);
        let Some(peer) = self
            .index_by_key
            .get(key)
            .and_then(|index| self.peers.get_mut(index))
        else {
            return false;
        };
        if peer.take_candidates(candidates, now) {
            self.next_tick = self.next_tick.min(now);
        }
        true
    }

    /// Everything this node tells peers to probe: the relays' view of it
    /// first (what works across NATs), then its own addresses, at most
    /// [`disco::MAX_CANDIDATES`].
    pub fn own_candidates(&self) -> Vec<SocketAddr> {
        let mut candidates = self.relays.reflexives();
        for local in &self.local_candidates {
            if !candidates.contains(local) {
                candidates.push(*local);
            }
        }
        candidates.truncate(disco::MAX_CANDIDATES);
        candidates
    }

    /// Adds a peer. Its allowed IPs are taken from any peer that had them.
    pub fn add_peer(&mut self, key: PublicKey, config: PeerConfig) -> Result<(), ConfigError> {
        if key == self.public_key() {
            return Err(ConfigError::OwnKey(key));
        }
        if self.index_by_key.contains_key(&key) {
            return Err(ConfigError::DuplicatePeer(key));
        }
        let index = self.allocate_index();
        let peer = Peer {
            key,
            index,
            tunn: new_session(&self.private_key, key, config.preshared_key, index),
            preshared_key: config.preshared_key,
            endpoint: config.endpoint,
            last_direct_rx: None,
            last_direct_probe: None,
            candidates: Vec::new(),
            candidates_at: None,
            last_disco: None,
            last_call: None,
            disco: DiscoKeys::new(&self.private_key, key),
            persistent_keepalive: config.persistent_keepalive,
            last_sent: None,
            rx_bytes: 0,
            tx_bytes: 0,
            drops: DropCounters::default(),
        };
        self.peers.insert(index, peer);
        self.index_by_key.insert(key, index);
        for network in config.allowed_ips {
            self.routes.insert(network, index);
        }
        tracing::debug!(peer = ?key, index, "peer added");
        Ok(())
    }

    /// Whether the node has a peer with this key.
    pub fn has_peer(&self, key: &PublicKey) -> bool {
        self.index_by_key.contains_key(key)
    }

    /// Removes a peer, its session and its allowed IPs. Returns whether it existed.
    pub fn remove_peer(&mut self, key: &PublicKey) -> bool {
        let Some(index) = self.index_by_key.remove(key) else {
            return false;
        };
        self.peers.remove(&index);
        self.routes.retain(|_, owner| *owner != index);
        tracing::debug!(peer = ?key, "peer removed");
        true
    }

    /// Removes every peer.
    pub fn remove_all_peers(&mut self) {
        self.peers.clear();
        self.index_by_key.clear();
        self.routes = IpNetworkTable::new();
    }

    /// Sets (or forgets) the peer's direct endpoint. The WireGuard session
    /// is kept; until a datagram from the new endpoint authenticates, a
    /// relay (if any) carries the traffic.
    pub fn set_endpoint(
        &mut self,
        key: &PublicKey,
        endpoint: Option<SocketAddr>,
    ) -> Result<(), ConfigError> {
        let peer = self.peer_mut(key)?;
        if peer.endpoint != endpoint {
            peer.endpoint = endpoint;
            peer.last_direct_rx = None;
        }
        Ok(())
    }

    /// Registers with the relay at `relay` using `ticket` (issued for this
    /// node's key), after any relays added before (the preference order).
    pub fn add_relay(&mut self, relay: SocketAddr, ticket: Ticket, now: Instant) {
        self.relays.add(relay, &self.private_key, ticket, now);
        self.relays.handle_timeout(now, &mut self.queued);
    }

    /// Each relay this node uses and whether it is registered there now.
    pub fn relay_registrations(&self) -> Vec<(SocketAddr, bool)> {
        self.relays.registrations()
    }

    /// Hands every relay a fresh ticket for this node's key (the control
    /// plane renews short-lived tickets), keeping the registrations up.
    pub fn renew_relay_ticket(&mut self, ticket: Ticket, now: Instant) {
        self.relays.renew(ticket, now);
        self.relays.handle_timeout(now, &mut self.queued);
    }

    /// Sets the persistent keepalive interval in seconds (0 turns it off).
    pub fn set_persistent_keepalive(
        &mut self,
        key: &PublicKey,
        seconds: u16,
    ) -> Result<(), ConfigError> {
        self.peer_mut(key)?.persistent_keepalive = seconds;
        Ok(())
    }

    /// Sets or clears the pre-shared key. A changed key restarts the session,
    /// since the current one was keyed without it.
    pub fn set_preshared_key(
        &mut self,
        key: &PublicKey,
        preshared_key: Option<[u8; 32]>,
    ) -> Result<(), ConfigError> {
        let private_key = self.private_key.clone();
        let peer = self.peer_mut(key)?;
        if peer.preshared_key != preshared_key {
            peer.preshared_key = preshared_key;
            peer.tunn = new_session(&private_key, peer.key, preshared_key, peer.index);
        }
        Ok(())
    }

    /// Replaces the peer's allowed IPs.
    pub fn set_allowed_ips(
        &mut self,
        key: &PublicKey,
        networks: Vec<IpNetwork>,
    ) -> Result<(), ConfigError> {
        let index = self.index_of(key)?;
        self.routes.retain(|_, owner| *owner != index);
        for network in networks {
            self.routes.insert(network, index);
        }
        Ok(())
    }

    /// Adds one allowed IP network to the peer, taking it from any other peer.
    pub fn add_allowed_ip(
        &mut self,
        key: &PublicKey,
        network: IpNetwork,
    ) -> Result<(), ConfigError> {
        let index = self.index_of(key)?;
        self.routes.insert(network, index);
        Ok(())
    }

    /// A snapshot of one peer.
    pub fn peer(&self, key: &PublicKey) -> Option<PeerStats> {
        let index = self.index_by_key.get(key)?;
        self.peers.get(index).map(|peer| self.stats_of(peer))
    }

    /// Snapshots of every peer, ordered by public key.
    pub fn peers(&self) -> Vec<PeerStats> {
        let mut all: Vec<PeerStats> = self.peers.values().map(|p| self.stats_of(p)).collect();
        all.sort_by_key(|peer| peer.key);
        all
    }

    /// Drops counted for the whole node, by reason.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// The next queued datagram to send (protocol traffic: handshakes,
    /// keepalives, cookie replies, probes, relay frames, disco calls).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.queued.pop_front()
    }

    /// When [`Node::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Instant {
        let own = self.next_tick.min(self.next_rate_limit_reset);
        self.relays
            .poll_timeout()
            .map_or(own, |relays| relays.min(own))
    }

    fn drop_unattributed(&mut self, reason: DropReason) -> Dropped {
        self.drops.count(reason);
        Dropped { reason }
    }

    fn index_of(&self, key: &PublicKey) -> Result<u32, ConfigError> {
        self.index_by_key
            .get(key)
            .copied()
            .ok_or(ConfigError::UnknownPeer(*key))
    }

    fn peer_mut(&mut self, key: &PublicKey) -> Result<&mut Peer, ConfigError> {
        let index = self.index_of(key)?;
        self.peers
            .get_mut(&index)
            .ok_or(ConfigError::UnknownPeer(*key))
    }

    fn allocate_index(&mut self) -> u32 {
        loop {
            let candidate = self.next_index;
            self.next_index = (self.next_index + 1) & INDEX_MASK;
            if !self.peers.contains_key(&candidate) {
                return candidate;
            }
        }
    }

    fn stats_of(&self, peer: &Peer) -> PeerStats {
        let mut allowed_ips: Vec<IpNetwork> = self
            .routes
            .iter()
            .filter(|(_, owner)| **owner == peer.index)
            .map(|(network, _)| network)
            .collect();
        allowed_ips.sort();
        PeerStats {
            key: peer.key,
            preshared_key: peer.preshared_key,
            path: peer.path(self.now, self.relays.preferred()),
            endpoint: peer.endpoint,
            last_handshake: peer.tunn.time_since_last_handshake(),
            rx_bytes: peer.rx_bytes,
            tx_bytes: peer.tx_bytes,
            persistent_keepalive: peer.persistent_keepalive,
            allowed_ips,
            drops: peer.drops.clone(),
        }
    }
}
