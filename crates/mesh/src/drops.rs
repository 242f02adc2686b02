//! Why packets are dropped, counted per reason.
//!
//! Every packet the core refuses is counted under exactly one reason, both for
//! the whole node and, when the sender or destination peer is known, for that
//! peer. Counters only grow; they are what `warren` reports and what tests
//! assert on.

use boringtun::noise::errors::WireGuardError;
use std::fmt;

/// The reason a packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not a well-formed WireGuard message (bad type, bad length).
    Malformed,
    /// A handshake whose MAC1 is not for our key: not addressed to us.
    InvalidMac,
    /// A message from or for a key or session index this node does not know.
    UnknownPeer,
    /// A message that failed authentication (AEAD tag or handshake decryption).
    Unauthenticated,
    /// A replayed or too-old message (duplicate counter, stale handshake timestamp).
    Replayed,
    /// A handshake message that does not fit the handshake state (e.g. an unsolicited response).
    Unexpected,
    /// Data for a session that does not exist (expired or never established).
    NoSession,
    /// A handshake refused because the node is under load and the sender has no valid cookie.
    UnderLoad,
    /// A decrypted packet whose source address is outside the sender's allowed IPs.
    SourceNotAllowed,
    /// A packet from the TUN whose destination no peer's allowed IPs contain.
    NoRoute,
    /// A packet for a peer with no known endpoint to send to.
    NoEndpoint,
    /// A packet from the TUN that is not a well-formed IPv4 or IPv6 packet.
    NotIp,
    /// A packet too large for the buffers the driver supplied.
    TooLarge,
}

impl DropReason {
    /// Every reason, in a fixed order (the order counters are reported in).
    pub const ALL: [DropReason; 13] = [
        DropReason::Malformed,
        DropReason::InvalidMac,
        DropReason::UnknownPeer,
        DropReason::Unauthenticated,
        DropReason::Replayed,
        DropReason::Unexpected,
        DropReason::NoSession,
        DropReason::UnderLoad,
        DropReason::SourceNotAllowed,
        DropReason::NoRoute,
        DropReason::NoEndpoint,
        DropReason::NotIp,
        DropReason::TooLarge,
    ];

    /// A stable snake_case name, used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::InvalidMac => "invalid_mac",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::Unauthenticated => "unauthenticated",
            DropReason::Replayed => "replayed",
            DropReason::Unexpected => "unexpected",
            DropReason::NoSession => "no_session",
            DropReason::UnderLoad => "under_load",
            DropReason::SourceNotAllowed => "source_not_allowed",
            DropReason::NoRoute => "no_route",
            DropReason::NoEndpoint => "no_endpoint",
            DropReason::NotIp => "not_ip",
            DropReason::TooLarge => "too_large",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }

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

/// A drop reason name that is not one of [`DropReason::as_str`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown drop reason {0:?}")]
pub struct UnknownDropReason(pub String);

impl std::str::FromStr for DropReason {
    type Err = UnknownDropReason;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        DropReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == name)
            .ok_or_else(|| UnknownDropReason(name.to_owned()))
    }
}

impl fmt::Display for DropReason {
    /// The snake_case name; honours width and alignment (`{:<20}`).
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
        self.0[reason.slot()] += 1;
    }

    /// How many packets were dropped for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.slot()]
    }

    /// All drops, whatever the reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// `(reason, count)` for every reason with a non-zero count.
    pub fn nonzero(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|reason| (*reason, self.get(*reason)))
            .filter(|(_, count)| *count > 0)
    }
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
    fn names_parse_back() {
        for reason in DropReason::ALL {
            assert_eq!(reason.as_str().parse::<DropReason>(), Ok(reason));
        }
        assert!("nonsense".parse::<DropReason>().is_err());
    }

    #[test]
    fn counters_count_per_reason() {
        let mut counters = DropCounters::default();
        counters.count(DropReason::Replayed);
        counters.count(DropReason::Replayed);
        counters.count(DropReason::NoRoute);
        assert_eq!(counters.get(DropReason::Replayed), 2);
        assert_eq!(counters.total(), 3);
        assert_eq!(
            counters.nonzero().collect::<Vec<_>>(),
            vec![(DropReason::Replayed, 2), (DropReason::NoRoute, 1)]
        );
    }
}
