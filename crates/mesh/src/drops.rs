//! Why packets are dropped, counted per reason.
//!
//! Every packet the core refuses is counted under exactly one reason, both for
//! the whole node and, when the sender or destination peer is known, for that
//! peer. Counters only grow; they are what `warren` reports and what tests
//! assert on. The names, `ALL`, parsing and the counter table come from
//! `warren-drops`, shared with the relay.

use boringtun::noise::errors::WireGuardError;

pub use warren_drops::UnknownReason as UnknownDropReason;

warren_drops::reasons! {
    /// The reason a packet was dropped.
    pub enum DropReason {
        /// Not a well-formed WireGuard message (bad type, bad length).
        Malformed => "malformed",
        /// A handshake whose MAC1 is not for our key: not addressed to us.
        InvalidMac => "invalid_mac",
        /// A message from or for a key or session index this node does not know.
        UnknownPeer => "unknown_peer",
        /// A message that failed authentication (AEAD tag or handshake decryption).
        Unauthenticated => "unauthenticated",
        /// A replayed or too-old message (duplicate counter, stale handshake timestamp).
        Replayed => "replayed",
        /// A handshake message that does not fit the handshake state (e.g. an unsolicited response).
        Unexpected => "unexpected",
        /// Data for a session that does not exist (expired or never established).
        NoSession => "no_session",
        /// A handshake refused because the node is under load and the sender has no valid cookie.
        UnderLoad => "under_load",
        /// A decrypted packet whose source address is outside the sender's allowed IPs.
        SourceNotAllowed => "source_not_allowed",
        /// A packet from the TUN whose destination no peer's allowed IPs contain.
        NoRoute => "no_route",
        /// A packet for a peer with no known endpoint to send to.
        NoEndpoint => "no_endpoint",
        /// A packet from the TUN that is not a well-formed IPv4 or IPv6 packet.
        NotIp => "not_ip",
        /// A packet too large for the buffers the driver supplied.
        TooLarge => "too_large",
    }
}

/// Monotonic drop counters, one per [`DropReason`].
pub type DropCounters = warren_drops::Counters<DropReason>;

impl DropReason {
    /// Classifies an error boringtun returned for an incoming datagram.
    pub(crate) fn from_wireguard(error: &WireGuardError) -> Self {
        match error {
            WireGuardError::InvalidMac => DropReason::InvalidMac,
            WireGuardError::WrongKey | WireGuardError::WrongIndex => DropReason::UnknownPeer,
            WireGuardError::InvalidAeadTag => DropReason::Unauthenticated,
            WireGuardError::InvalidCounter
            | WireGuardError::DuplicateCounter
            | WireGuardError::WrongTai64nTimestamp
            | WireGuardError::InvalidTai64nTimestamp => DropReason::Replayed,
            WireGuardError::UnexpectedPacket => DropReason::Unexpected,
            WireGuardError::NoCurrentSession | WireGuardError::ConnectionExpired => {
                DropReason::NoSession
            }
            WireGuardError::UnderLoad => DropReason::UnderLoad,
            WireGuardError::DestinationBufferTooSmall => DropReason::TooLarge,
            WireGuardError::IncorrectPacketLength
            | WireGuardError::WrongPacketType
            | WireGuardError::InvalidPacket
            | WireGuardError::LockFailed => DropReason::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are a format: `warren device stats`, `stats=1` and the
    /// end-to-end tests read them.
    #[test]
    fn the_names_are_the_documented_ones() {
        let names: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            names,
            [
                "malformed",
                "invalid_mac",
                "unknown_peer",
                "unauthenticated",
                "replayed",
                "unexpected",
                "no_session",
                "under_load",
                "source_not_allowed",
                "no_route",
                "no_endpoint",
                "not_ip",
                "too_large",
            ]
        );
    }
}
