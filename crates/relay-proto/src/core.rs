//! The relay's sans-IO core: sessions by authenticated key, forwarding,
//! registration, limits and counters.
//!
//! [`Relay`] owns the session table (node key → source address, the ticket's
//! expiry, the node's rate limiter) and the relay's epoch keys. It never
//! touches a socket or reads a clock: the driver passes every datagram with
//! the monotonic and the wall-clock time ([`Relay::handle_datagram`]), calls
//! [`Relay::handle_timeout`] when [`Relay::poll_timeout`] passes, and sends
//! what [`Relay::poll_transmit`] yields.
//!
//! # Forwarding without allocating
//! A `Send` from a registered source is rewritten **in place** into the
//! `Recv` its destination gets (same length: the type byte and the key
//! change), and `handle_datagram` returns where to send the buffer. Only the
//! rare control replies (challenges, pongs, errors) are queued as owned
//! vectors.
//!
//! # Rules it enforces
//! - No state for unproven senders: a `RegisterRequest` is answered with a
//!   stateless challenge, and only a valid `RegisterProof` creates a session.
//! - A sender's identity comes from its session (looked up by source
//!   address), never from the frame.
//! - Anti-amplification: an answer to a sender without a session is sent
//!   only if it is strictly smaller than the datagram it answers.
//! - A session ends at its ticket's expiry, after [`Config::idle_timeout`] of
//!   silence, or when its key registers from another address (NAT rebinding).
//!
//! Randomness: none after `new`. Epoch keys derive from the secret seed
//! (see [`crate::crypto`]); a restarted relay gets a new seed from its driver.

use crate::crypto::{ControlKey, EpochKeys, Transcript, EPOCH};
use crate::drops::{Counters, DropReason};
use crate::limit::{Limiter, RateLimit};
use crate::transmit::Transmit;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warren_wire::{
    send_to_recv_in_place, Challenge, DecodeError, ErrorCode, Frame, PublicKey, RegisterProof,
    RegisterRequest, Registered,
};

/// How often sessions are swept for expiry and idleness. Expiry is also
/// checked on every use, so this only bounds how long a dead session holds
/// its slot.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Far-future tickets are held to this on the monotonic clock (which a
/// `u64` of seconds could overflow); the node still sees the ticket's expiry.
const MAX_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The relay's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Most sessions at once; a new key beyond it is refused (`capacity`).
    pub max_sessions: usize,
    /// Each node's allowance for `Send` and `Ping` frames.
    pub rate_limit: RateLimit,
    /// A session with no frame from its node for this long ends. Nodes
    /// ping every 10 s, so 3 minutes is many missed keepalives.
    pub idle_timeout: Duration,
}

impl Default for Config {
    /// 10 000 sessions (a few MB of state), [`RateLimit::default`], 3 minutes idle.
    fn default() -> Self {
        Config {
            max_sessions: 10_000,
            rate_limit: RateLimit::default(),
            idle_timeout: Duration::from_secs(180),
        }
    }
}

/// A datagram the relay refused; already counted under `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("datagram dropped: {reason}")]
pub struct Dropped {
    /// Why.
    pub reason: DropReason,
}

/// One registered node, as [`Relay::sessions`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The node's key.
    pub key: PublicKey,
    /// Its registered (reflexive) address.
    pub addr: SocketAddr,
    /// Its ticket's expiry, unix seconds.
    pub expires: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Session {
    addr: SocketAddr,
    /// The ticket's expiry, unix seconds (reported to the node).
    expires_unix: u64,
    /// The same deadline on the monotonic clock, fixed at registration.
    expires_at: Instant,
    last_seen: Instant,
    limiter: Limiter,
}

/// The relay core. See the module docs.
#[derive(Clone)]
pub struct Relay {
    config: Config,
    control_key: ControlKey,
    seed: [u8; 32],
    start: Instant,
    current: EpochKeys,
    previous: Option<EpochKeys>,
    sessions: HashMap<PublicKey, Session>,
    by_addr: HashMap<SocketAddr, PublicKey>,
    queued: VecDeque<Transmit>,
    counters: Counters,
    next_sweep: Instant,
    /// Keys refused until the given time (see [`Relay::revoke`]).
    revoked: HashMap<PublicKey, Instant>,
}

impl Relay {
    /// A relay with no sessions. `secret_seed` must be fresh random bytes at
    /// every start: every challenge key derives from it.
    pub fn new(
        config: Config,
        control_key: ControlKey,
        secret_seed: [u8; 32],
        now: Instant,
    ) -> Self {
        Relay {
            config,
            control_key,
            current: EpochKeys::derive(&secret_seed, 0),
            previous: None,
            seed: secret_seed,
            start: now,
            sessions: HashMap::new(),
            by_addr: HashMap::new(),
            queued: VecDeque::new(),
            counters: Counters::default(),
            next_sweep: now + SWEEP_INTERVAL,
            revoked: HashMap::new(),
        }
    }

    /// Handles one datagram that arrived from `from`.
    ///
    /// Returns `Ok(Some(dst))` when `datagram` was a `Send` and has been
    /// rewritten in place into a `Recv`: send the buffer, unchanged in
    /// length, to `dst`. `Ok(None)` means the datagram was handled and any
    /// answer is queued for [`Relay::poll_transmit`]. A refused datagram is
    /// counted and changes no session.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        wall: SystemTime,
        from: SocketAddr,
        datagram: &mut [u8],
    ) -> Result<Option<SocketAddr>, Dropped> {
        // One node, one address, whichever socket family saw it: an
        // IPv4-mapped source (from a dual-stack socket) as plain IPv4.
        let mut from = from;
        from.set_ip(from.ip().to_canonical());
        self.advance_epoch(now);
        let request_len = datagram.len();
        let frame = match Frame::decode(datagram) {
            Ok(frame) => frame,
            Err(DecodeError::NotWarren) => return Err(self.drop(DropReason::NotWarren)),
            Err(DecodeError::UnsupportedVersion(_)) => {
                self.refuse(from, request_len, ErrorCode::UNSUPPORTED_VERSION);
                return Err(self.drop(DropReason::UnsupportedVersion));
            }
            Err(_) => {
                self.refuse(from, request_len, ErrorCode::MALFORMED);
                return Err(self.drop(DropReason::Malformed));
            }
        };
        match frame {
            Frame::Send { dst, .. } => self.forward(now, from, dst, datagram),
            Frame::Ping { txid } => {
                self.session_of(now, from, request_len)?;
                // A `Pong` is never larger than its `Ping` (the padding's job).
                self.queue_if_smaller(
                    from,
                    request_len,
                    Frame::Pong {
                        txid,
                        observed: from,
                    },
                );
                self.counters.pongs += 1;
                Ok(None)
            }
            Frame::RegisterRequest(request) => {
                self.challenge(wall, from, request_len, &request)?;
                Ok(None)
            }
            Frame::RegisterProof(proof) => {
                self.register(now, wall, from, request_len, &proof)?;
                Ok(None)
            }
            _ => Err(self.drop(DropReason::UnexpectedFrame)),
        }
    }

    /// Advances time: rotates epoch keys and ends expired and idle sessions.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance_epoch(now);
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + SWEEP_INTERVAL;
        self.revoked.retain(|_, until| now < *until);
        let idle_timeout = self.config.idle_timeout;
        let mut ended = Vec::new();
        for (key, session) in &self.sessions {
            if now >= session.expires_at {
                ended.push((*key, true));
            } else if now.saturating_duration_since(session.last_seen) >= idle_timeout {
                ended.push((*key, false));
            }
        }
        for (key, expired) in ended {
            if expired {
                self.counters.expired += 1;
            } else {
                self.counters.idled_out += 1;
            }
            tracing::debug!(node = ?key, expired, "session ended");
            self.remove_session(&key);
        }
    }

    /// Ends `key`'s session and refuses it (`revoked`) until `until`: the
    /// control plane removed the node, whose ticket may still be valid, so
    /// `until` should be past that ticket's expiry.
    pub fn revoke(&mut self, key: PublicKey, until: Instant) {
        if self.sessions.contains_key(&key) {
            self.remove_session(&key);
        }
        self.revoked.insert(key, until);
        self.counters.revocations += 1;
        tracing::info!(node = ?key, "key revoked");
    }

    /// The next answer to send (challenges, registrations, pongs, errors).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.queued.pop_front()
    }

    /// When [`Relay::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Instant {
        self.next_sweep
    }

    /// The counters.
    pub fn metrics(&self) -> &Counters {
        &self.counters
    }

    /// How many sessions exist now.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Every session, ordered by key.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut all: Vec<SessionInfo> = self
            .sessions
            .iter()
            .map(|(key, session)| SessionInfo {
                key: *key,
                addr: session.addr,
                expires: session.expires_unix,
            })
            .collect();
        all.sort_by_key(|info| info.key);
        all
    }

    fn forward(
        &mut self,
        now: Instant,
        from: SocketAddr,
        dst: PublicKey,
        datagram: &mut [u8],
    ) -> Result<Option<SocketAddr>, Dropped> {
        let src = self.session_of(now, from, datagram.len())?;
        let Some(destination) = self.sessions.get(&dst) else {
            self.refuse(from, datagram.len(), ErrorCode::UNKNOWN_DESTINATION);
            return Err(self.drop(DropReason::UnknownDestination));
        };
        if now >= destination.expires_at {
            self.counters.expired += 1;
            self.remove_session(&dst);
            self.refuse(from, datagram.len(), ErrorCode::UNKNOWN_DESTINATION);
            return Err(self.drop(DropReason::UnknownDestination));
        }
        let dst_addr = destination.addr;
        if send_to_recv_in_place(datagram, &src).is_none() {
            // Unreachable: the frame decoded as a `Send`, which is longer.
            return Err(self.drop(DropReason::Malformed));
        }
        self.counters.forwarded_frames += 1;
        self.counters.forwarded_bytes += datagram.len() as u64;
        Ok(Some(dst_addr))
    }

    /// The key of the live session at `from`, charging the frame to its
    /// rate limit and marking it seen. Refuses (and answers, when smaller)
    /// senders without a session.
    fn session_of(
        &mut self,
        now: Instant,
        from: SocketAddr,
        len: usize,
    ) -> Result<PublicKey, Dropped> {
        let Some(key) = self.by_addr.get(&from).copied() else {
            self.refuse(from, len, ErrorCode::NOT_REGISTERED);
            return Err(self.drop(DropReason::NotRegistered));
        };
        let Some(session) = self.sessions.get_mut(&key) else {
            self.by_addr.remove(&from);
            return Err(self.drop(DropReason::NotRegistered));
        };
        if now >= session.expires_at {
            self.counters.expired += 1;
            self.remove_session(&key);
            self.refuse(from, len, ErrorCode::TICKET_EXPIRED);
            return Err(self.drop(DropReason::ExpiredTicket));
        }
        if !session.limiter.allow(now, len) {
            return Err(self.drop(DropReason::RateLimited));
        }
        session.last_seen = now;
        Ok(key)
    }

    fn challenge(
        &mut self,
        wall: SystemTime,
        from: SocketAddr,
        request_len: usize,
        request: &RegisterRequest,
    ) -> Result<(), Dropped> {
        if request.ticket.node_key != request.node_key {
            self.refuse(from, request_len, ErrorCode::UNAUTHORIZED);
            return Err(self.drop(DropReason::InvalidTicket));
        }
        if unix_seconds(wall) >= request.ticket.expires {
            self.refuse(from, request_len, ErrorCode::TICKET_EXPIRED);
            return Err(self.drop(DropReason::ExpiredTicket));
        }
        let challenge = Frame::Challenge(Challenge {
            ephemeral: self.current.ephemeral_public,
            cookie: self.current.cookie(&from, &request.node_key),
            observed: from,
        });
        self.queue_if_smaller(from, request_len, challenge);
        self.counters.challenges += 1;
        Ok(())
    }

    /// Checks a proof, cheapest checks first (cookie, key, expiry, then the
    /// Diffie-Hellman MAC, then the signature), and creates or refreshes
    /// the session. Nothing changes unless every check passes.
    fn register(
        &mut self,
        now: Instant,
        wall: SystemTime,
        from: SocketAddr,
        request_len: usize,
        proof: &RegisterProof,
    ) -> Result<(), Dropped> {
        if let Err((reason, code)) = self.check_proof(wall, from, proof) {
            self.refuse(from, request_len, code);
            return Err(self.drop(reason));
        }
        if self
            .revoked
            .get(&proof.node_key)
            .is_some_and(|until| now < *until)
        {
            self.refuse(from, request_len, ErrorCode::UNAUTHORIZED);
            return Err(self.drop(DropReason::Revoked));
        }
        let wall_now = unix_seconds(wall);
        let key = proof.node_key;
        if !self.sessions.contains_key(&key) && self.sessions.len() >= self.config.max_sessions {
            self.refuse(from, request_len, ErrorCode::CAPACITY);
            return Err(self.drop(DropReason::Capacity));
        }

        // Every check passed: create, refresh or move the session.
        let lifetime = Duration::from_secs(proof.ticket.expires.saturating_sub(wall_now));
        let expires_at = now + lifetime.min(MAX_LIFETIME);
        if let Some(other) = self.by_addr.get(&from).copied().filter(|k| *k != key) {
            // Another key registered from this address before: it is gone
            // (the address now belongs to whoever proved this key).
            tracing::debug!(node = ?other, %from, "session replaced by another key");
            self.remove_session(&other);
        }
        match self.sessions.get_mut(&key) {
            Some(session) => {
                self.counters.refreshes += 1;
                if session.addr != from {
                    self.counters.moves += 1;
                    tracing::debug!(node = ?key, old = %session.addr, new = %from, "session moved");
                    self.by_addr.remove(&session.addr);
                    session.addr = from;
                }
                session.expires_unix = proof.ticket.expires;
                session.expires_at = expires_at;
                session.last_seen = now;
            }
            None => {
                self.counters.registrations += 1;
                tracing::debug!(node = ?key, %from, "session registered");
                self.sessions.insert(
                    key,
                    Session {
                        addr: from,
                        expires_unix: proof.ticket.expires,
                        expires_at,
                        last_seen: now,
                        limiter: Limiter::new(&self.config.rate_limit, now),
                    },
                );
            }
        }
        self.by_addr.insert(from, key);
        self.queue_if_smaller(
            from,
            request_len,
            Frame::Registered(Registered {
                observed: from,
                expires: proof.ticket.expires,
            }),
        );
        Ok(())
    }

    /// Every check of a proof, without changing anything: the epoch, the
    /// cookie, the ticket's key and expiry, the MAC (a Diffie-Hellman), and
    /// the ticket's signature, cheapest first.
    fn check_proof(
        &self,
        wall: SystemTime,
        from: SocketAddr,
        proof: &RegisterProof,
    ) -> Result<(), (DropReason, ErrorCode)> {
        let keys = if proof.ephemeral == self.current.ephemeral_public {
            &self.current
        } else {
            self.previous
                .as_ref()
                .filter(|keys| keys.ephemeral_public == proof.ephemeral)
                .ok_or((DropReason::StaleChallenge, ErrorCode::STALE_CHALLENGE))?
        };
        if !keys.cookie_is_valid(&proof.cookie, &from, &proof.node_key) {
            return Err((DropReason::InvalidCookie, ErrorCode::STALE_CHALLENGE));
        }
        if proof.ticket.node_key != proof.node_key {
            return Err((DropReason::InvalidTicket, ErrorCode::UNAUTHORIZED));
        }
        if unix_seconds(wall) >= proof.ticket.expires {
            return Err((DropReason::ExpiredTicket, ErrorCode::TICKET_EXPIRED));
        }
        let transcript = Transcript {
            node_key: &proof.node_key,
            ticket: &proof.ticket,
            ephemeral: &proof.ephemeral,
            cookie: &proof.cookie,
            observed: &from,
        };
        if !transcript.relay_verifies(&keys.ephemeral, &proof.mac) {
            return Err((DropReason::InvalidProof, ErrorCode::UNAUTHORIZED));
        }
        if self.control_key.verify(&proof.ticket).is_err() {
            return Err((DropReason::InvalidTicket, ErrorCode::UNAUTHORIZED));
        }
        Ok(())
    }

    fn advance_epoch(&mut self, now: Instant) {
        let epoch = now.saturating_duration_since(self.start).as_secs() / EPOCH.as_secs();
        if epoch == self.current.epoch {
            return;
        }
        let previous = if epoch == self.current.epoch + 1 {
            self.current.clone()
        } else {
            EpochKeys::derive(&self.seed, epoch.saturating_sub(1))
        };
        self.current = EpochKeys::derive(&self.seed, epoch);
        self.previous = Some(previous);
    }

    fn remove_session(&mut self, key: &PublicKey) {
        if let Some(session) = self.sessions.remove(key) {
            if self.by_addr.get(&session.addr) == Some(key) {
                self.by_addr.remove(&session.addr);
            }
        }
    }

    fn drop(&mut self, reason: DropReason) -> Dropped {
        self.counters.drops.count(reason);
        Dropped { reason }
    }

    /// Answers with an `Error`, which is only ever sent when smaller than
    /// the request.
    fn refuse(&mut self, to: SocketAddr, request_len: usize, code: ErrorCode) {
        if self.queue_if_smaller(to, request_len, Frame::Error { code }) {
            self.counters.errors_sent += 1;
        }
    }

    /// The anti-amplification rule, in one place: every answer goes through here.
    fn queue_if_smaller(&mut self, to: SocketAddr, request_len: usize, frame: Frame<'_>) -> bool {
        if frame.encoded_len() >= request_len {
            return false;
        }
        self.queued.push_back(Transmit::udp(to, frame.to_vec()));
        true
    }
}

/// Seconds since the unix epoch (0 for times before it).
fn unix_seconds(wall: SystemTime) -> u64 {
    wall.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
