//! What the relay refused and why, and what it did: counters only grow.
//!
//! Every datagram the relay does not act on is counted under exactly one
//! [`DropReason`]; `/metrics` exports them as
//! `warren_relay_dropped_total{reason="..."}`.

use std::fmt;

/// Why the relay dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a warren frame at all (no magic byte): never answered.
    NotWarren,
    /// A warren frame that does not parse (truncated, trailing bytes, bad field).
    Malformed,
    /// A warren frame of another protocol version.
    UnsupportedVersion,
    /// A frame only a relay sends (`Challenge`, `Recv`, …) sent to the relay.
    UnexpectedFrame,
    /// `Send` or `Ping` from an address with no session.
    NotRegistered,
    /// `Send` to a key with no (live) session.
    UnknownDestination,
    /// A proof whose ephemeral key is not the current or previous epoch's.
    StaleChallenge,
    /// A proof whose cookie is not for its source address and key.
    InvalidCookie,
    /// A proof whose MAC does not verify: the sender does not hold the key.
    InvalidProof,
    /// A ticket with a bad signature, or for another key than the one registering.
    InvalidTicket,
    /// A ticket (or a session's ticket) past its expiry.
    ExpiredTicket,
    /// Over the sender's byte or packet rate.
    RateLimited,
    /// A new registration while the relay is at its cap.
    Capacity,
    /// A registration for a key the control plane revoked.
    Revoked,
}

impl DropReason {
    /// Every reason, in a fixed order (the order counters are reported in).
    pub const ALL: [DropReason; 14] = [
        DropReason::NotWarren,
        DropReason::Malformed,
        DropReason::UnsupportedVersion,
        DropReason::UnexpectedFrame,
        DropReason::NotRegistered,
        DropReason::UnknownDestination,
        DropReason::StaleChallenge,
        DropReason::InvalidCookie,
        DropReason::InvalidProof,
        DropReason::InvalidTicket,
        DropReason::ExpiredTicket,
        DropReason::RateLimited,
        DropReason::Capacity,
        DropReason::Revoked,
    ];

    /// A stable snake_case name, used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NotWarren => "not_warren",
            DropReason::Malformed => "malformed",
            DropReason::UnsupportedVersion => "unsupported_version",
            DropReason::UnexpectedFrame => "unexpected_frame",
            DropReason::NotRegistered => "not_registered",
            DropReason::UnknownDestination => "unknown_destination",
            DropReason::StaleChallenge => "stale_challenge",
            DropReason::InvalidCookie => "invalid_cookie",
            DropReason::InvalidProof => "invalid_proof",
            DropReason::InvalidTicket => "invalid_ticket",
            DropReason::ExpiredTicket => "expired_ticket",
            DropReason::RateLimited => "rate_limited",
            DropReason::Capacity => "capacity",
            DropReason::Revoked => "revoked",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    /// The snake_case name; honours width and alignment.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Monotonic drop counters, one per [`DropReason`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    /// Counts one drop.
    pub fn count(&mut self, reason: DropReason) {
        if let Some(slot) = self.0.get_mut(reason.slot()) {
            *slot += 1;
        }
    }

    /// How many datagrams were dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(reason.slot()).copied().unwrap_or(0)
    }

    /// All drops, whatever the reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason, zeros included, in [`DropReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|reason| (*reason, self.get(*reason)))
    }
}

/// Everything the relay counts. All counters only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Challenges sent (answers to `RegisterRequest`).
    pub challenges: u64,
    /// Sessions created by a successful registration.
    pub registrations: u64,
    /// Successful registrations of a key that already had a session
    /// (refreshes, including moves).
    pub refreshes: u64,
    /// Registrations that moved a key's session to a new source address.
    pub moves: u64,
    /// Sessions ended because their ticket expired.
    pub expired: u64,
    /// Sessions ended because the node fell silent.
    pub idled_out: u64,
    /// Keys revoked by the control plane.
    pub revocations: u64,
    /// Datagrams forwarded (`Send` in, `Recv` out).
    pub forwarded_frames: u64,
    /// Bytes of forwarded frames.
    pub forwarded_bytes: u64,
    /// Pongs sent.
    pub pongs: u64,
    /// `Error` frames sent.
    pub errors_sent: u64,
    /// Drops by reason.
    pub drops: DropCounters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_every_reason_in_slot_order() {
        for (index, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.slot(), index);
        }
    }

    #[test]
    fn counters_count_per_reason() {
        let mut counters = DropCounters::default();
        counters.count(DropReason::RateLimited);
        counters.count(DropReason::RateLimited);
        counters.count(DropReason::Malformed);
        assert_eq!(counters.get(DropReason::RateLimited), 2);
        assert_eq!(counters.total(), 3);
        assert_eq!(counters.iter().count(), DropReason::ALL.len());
    }
}
