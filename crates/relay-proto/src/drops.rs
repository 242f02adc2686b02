//! What the relay refused and why, and what it did: counters only grow.
//!
//! Every datagram the relay does not act on is counted under exactly one
//! [`DropReason`]; `/metrics` exports them as
//! `warren_relay_dropped_total{reason="..."}`.

warren_drops::reasons! {
    /// Why the relay dropped a datagram.
    #[non_exhaustive]
    pub enum DropReason {
        /// Not a warren frame at all (no magic byte): never answered.
        NotWarren => "not_warren",
        /// A warren frame that does not parse (truncated, trailing bytes, bad field).
        Malformed => "malformed",
        /// A warren frame of another protocol version.
        UnsupportedVersion => "unsupported_version",
        /// A frame only a relay sends (`Challenge`, `Recv`, …) sent to the relay.
        UnexpectedFrame => "unexpected_frame",
        /// `Send` or `Ping` from an address with no session.
        NotRegistered => "not_registered",
        /// `Send` to a key with no (live) session.
        UnknownDestination => "unknown_destination",
        /// A proof whose ephemeral key is not the current or previous epoch's.
        StaleChallenge => "stale_challenge",
        /// A proof whose cookie is not for its source address and key.
        InvalidCookie => "invalid_cookie",
        /// A proof whose MAC does not verify: the sender does not hold the key.
        InvalidProof => "invalid_proof",
        /// A ticket with a bad signature, or for another key than the one registering.
        InvalidTicket => "invalid_ticket",
        /// A ticket (or a session's ticket) past its expiry.
        ExpiredTicket => "expired_ticket",
        /// Over the sender's byte or packet rate.
        RateLimited => "rate_limited",
        /// A new registration while the relay is at its cap.
        Capacity => "capacity",
        /// A registration for a key the control plane revoked.
        Revoked => "revoked",
    }
}

/// Monotonic drop counters, one per [`DropReason`].
pub type DropCounters = warren_drops::Counters<DropReason>;

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

    /// The names are a format: `/metrics` labels them
    /// `warren_relay_dropped_total{reason="..."}`.
    #[test]
    fn the_names_are_the_documented_ones() {
        let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "not_warren",
                "malformed",
                "unsupported_version",
                "unexpected_frame",
                "not_registered",
                "unknown_destination",
                "stale_challenge",
                "invalid_cookie",
                "invalid_proof",
                "invalid_ticket",
                "expired_ticket",
                "rate_limited",
                "capacity",
                "revoked",
            ]
        );
    }
}
