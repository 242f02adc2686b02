//! warren's `stats=1` extension of the UAPI: drop counters by reason, for
//! the device and for each peer.
//!
//! `wg(8)` has no place for them, so a warren device answers one more
//! request, [`STATS_REQUEST`], on the same socket. The answer uses the
//! UAPI's `key=value` lines:
//!
//! ```text
//! drop_no_route=2            device-wide counters first
//! public_key=<hex>           then every peer,
//! drop_replayed=1            followed by its own counters
//! errno=0
//! ```
//!
//! Only non-zero counters are listed; every peer is, with or without
//! drops. The codec is generic over the reason type `R` (the mesh's
//! `DropReason`): its `Display` is the name after `drop_`, its `FromStr`
//! reads it back.

use crate::Key;
use std::fmt::{self, Display, Write as _};
use std::str::FromStr;
use warren_wire::PublicKey;

/// The complete `stats=1` request.
pub const STATS_REQUEST: &[u8] = b"stats=1\n\n";

/// Drop counters of one device, as `stats=1` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropReport<R> {
    /// Device-wide counts (every drop, attributed to a peer or not).
    pub device: Vec<(R, u64)>,
    /// Per-peer counts, for every peer (empty when it had no drops).
    pub peers: Vec<PeerDrops<R>>,
}

impl<R> Default for DropReport<R> {
    fn default() -> Self {
        DropReport {
            device: Vec::new(),
            peers: Vec::new(),
        }
    }
}

/// Drop counters of one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerDrops<R> {
    /// The peer.
    pub public_key: PublicKey,
    /// Its non-zero counters.
    pub drops: Vec<(R, u64)>,
}

/// A `stats=1` answer that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsParseError {
    /// The device answered with an error (e.g. it is not a warren device).
    #[error("the device answered errno={0} (is it a warren device?)")]
    Refused(i32),
    /// The answer is not in the format above.
    #[error("malformed stats answer: {0}")]
    Malformed(String),
}

impl<R: PartialEq> DropReport<R> {
    /// The device-wide count for `reason` (0 when absent).
    pub fn device_count(&self, reason: R) -> u64 {
        self.device
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, count)| *count)
    }
}

impl<R> DropReport<R> {
    /// All device-wide drops.
    pub fn device_total(&self) -> u64 {
        self.device.iter().map(|(_, count)| count).sum()
    }
}

impl<R: Display> DropReport<R> {
    /// The whole `stats=1` answer, ending in `errno=0` and a blank line.
    /// Zero counts are left out.
    pub fn format(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let counts = |text: &mut String, drops: &[(R, u64)]| {
            for (reason, count) in drops.iter().filter(|(_, count)| *count > 0) {
                let _ = writeln!(text, "drop_{reason}={count}");
            }
        };
        counts(&mut text, &self.device);
        for peer in &self.peers {
            let _ = writeln!(text, "public_key={}", Key::from(peer.public_key).to_hex());
            counts(&mut text, &peer.drops);
        }
        text.push_str("errno=0\n\n");
        text
    }
}

impl<R: FromStr> DropReport<R> {
    /// Parses a `stats=1` answer. A reason this build does not know, a
    /// count that is not a number or any other key is malformed; a
    /// non-zero `errno` is [`StatsParseError::Refused`].
    pub fn parse(text: &str) -> Result<Self, StatsParseError> {
        let malformed = |what: &str| StatsParseError::Malformed(what.to_owned());
        let mut report = DropReport::default();
        for line in text.lines().filter(|line| !line.is_empty()) {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| malformed(&format!("line without '=': {line:?}")))?;
            if key == "errno" {
                let errno: i32 = value.parse().map_err(|_| malformed("errno"))?;
                if errno != 0 {
                    return Err(StatsParseError::Refused(errno));
                }
            } else if key == "public_key" {
                let key = Key::from_hex(value).map_err(|_| malformed("public_key"))?;
                report.peers.push(PeerDrops {
                    public_key: PublicKey::from_bytes(key.0),
                    drops: Vec::new(),
                });
            } else if let Some(name) = key.strip_prefix("drop_") {
                let reason: R = name.parse().map_err(|_| malformed(key))?;
                let count: u64 = value.parse().map_err(|_| malformed(key))?;
                match report.peers.last_mut() {
                    Some(peer) => peer.drops.push((reason, count)),
                    None => report.device.push((reason, count)),
                }
            } else {
                return Err(malformed(&format!("unexpected key {key:?}")));
            }
        }
        Ok(report)
    }
}

impl<R: Display> fmt::Display for DropReport<R> {
    /// [`DropReport::format`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A stand-in for the mesh's reasons.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Reason {
        NoRoute,
        Replayed,
    }

    impl Display for Reason {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(match self {
                Reason::NoRoute => "no_route",
                Reason::Replayed => "replayed",
            })
        }
    }

    impl FromStr for Reason {
        type Err = ();

        fn from_str(name: &str) -> Result<Self, ()> {
            match name {
                "no_route" => Ok(Reason::NoRoute),
                "replayed" => Ok(Reason::Replayed),
                _ => Err(()),
            }
        }
    }

    fn peer(n: u8, drops: Vec<(Reason, u64)>) -> PeerDrops<Reason> {
        PeerDrops {
            public_key: PublicKey::from_bytes([n; 32]),
            drops,
        }
    }

    #[test]
    fn the_answer_is_the_documented_text_and_parses_back() {
        let report = DropReport {
            device: vec![(Reason::NoRoute, 2), (Reason::Replayed, 0)],
            peers: vec![peer(9, vec![(Reason::Replayed, 1)]), peer(1, vec![])],
        };
        let text = report.format();
        assert_eq!(
            text,
            format!(
                "drop_no_route=2\npublic_key={}\ndrop_replayed=1\npublic_key={}\nerrno=0\n\n",
                "09".repeat(32),
                "01".repeat(32)
            )
        );
        assert_eq!(report.to_string(), text);
        let parsed = DropReport::<Reason>::parse(&text).unwrap();
        assert_eq!(parsed.device, vec![(Reason::NoRoute, 2)]);
        assert_eq!(parsed.peers, report.peers);
        assert_eq!(parsed.device_count(Reason::NoRoute), 2);
        assert_eq!(parsed.device_count(Reason::Replayed), 0);
        assert_eq!(parsed.device_total(), 2);
    }

    #[test]
    fn errors_and_unknown_reasons_are_refused() {
        assert_eq!(
            DropReport::<Reason>::parse("errno=-22\n\n"),
            Err(StatsParseError::Refused(-22))
        );
        for bad in [
            "drop_gremlins=1\nerrno=0\n\n",
            "drop_replayed=many\nerrno=0\n\n",
            "public_key=zz\nerrno=0\n\n",
            "errno=x\n\n",
            "listen_port=1\nerrno=0\n\n",
            "drop_replayed\n\n",
        ] {
            assert!(
                matches!(
                    DropReport::<Reason>::parse(bad),
                    Err(StatsParseError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    fn arb_drops() -> impl Strategy<Value = Vec<(Reason, u64)>> {
        proptest::collection::vec(
            (
                prop_oneof![Just(Reason::NoRoute), Just(Reason::Replayed)],
                1..u64::MAX,
            ),
            0..3,
        )
    }

    proptest! {
        /// Whatever a device reports (non-zero counts) parses back as itself.
        #[test]
        fn every_report_round_trips(
            device in arb_drops(),
            peers in proptest::collection::vec((any::<u8>(), arb_drops()), 0..4),
        ) {
            let report = DropReport {
                device,
                peers: peers.into_iter().map(|(n, drops)| peer(n, drops)).collect(),
            };
            prop_assert_eq!(DropReport::parse(&report.format()), Ok(report));
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = DropReport::<Reason>::parse(&text);
        }
    }
}
