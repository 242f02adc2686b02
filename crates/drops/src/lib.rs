//! What a sans-IO core refuses, counted by reason.
//!
//! The mesh core and the relay each refuse different things, so each has
//! its own reason enum; but both name, parse, print and count their
//! reasons the same way, and the names are a format of their own (`wg`-style
//! stats output, Prometheus labels, tests). This crate holds that common
//! part once:
//!
//! - [`reasons!`] declares a reason enum with a stable snake_case name per
//!   variant and generates `ALL`, `as_str`, [`Display`](std::fmt::Display),
//!   [`FromStr`](std::str::FromStr) and the [`Reason`] impl;
//! - [`Counters`] counts drops per reason, in a fixed-size array, without
//!   any indexing that can panic.
//!
//! ```
//! warren_drops::reasons! {
//!     /// Why a toy refused a packet.
//!     pub enum ToyReason {
//!         /// It was too short.
//!         TooShort => "too_short",
//!         /// Nobody asked for it.
//!         Unsolicited => "unsolicited",
//!     }
//! }
//!
//! let mut drops = warren_drops::Counters::<ToyReason>::default();
//! drops.count(ToyReason::Unsolicited);
//! assert_eq!(drops.get(ToyReason::Unsolicited), 1);
//! assert_eq!(ToyReason::ALL, [ToyReason::TooShort, ToyReason::Unsolicited]);
//! assert_eq!("too_short".parse(), Ok(ToyReason::TooShort));
//! assert_eq!(format!("{:<11}|", ToyReason::TooShort), "too_short  |");
//! ```
//!
//! It is its own crate because it is neither a codec (`warren-wire`) nor
//! part of the relay protocol, and both cores, and the `stats=1` codec in
//! `warren-uapi`, need it.

#![forbid(unsafe_code)]

use std::fmt;

/// A drop reason enum, as [`reasons!`] generates it.
pub trait Reason: Copy + Eq + fmt::Debug + fmt::Display + 'static {
    /// One count per reason: `[u64; N]` for `N` reasons.
    type Counts: AsRef<[u64]> + AsMut<[u64]> + Clone + Eq;
    /// Every count zero.
    const ZERO: Self::Counts;
    /// Every reason, in the order counters are reported in.
    const ALL: &'static [Self];

    /// The reason's stable snake_case name.
    fn as_str(self) -> &'static str;

    /// The reason's position in [`Reason::ALL`] (and in [`Reason::Counts`]).
    fn index(self) -> usize;
}

/// A name that is none of a reason enum's [`Reason::as_str`] names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown drop reason {0:?}")]
pub struct UnknownReason(pub String);

/// The reason of `R` named `name`.
pub fn parse_reason<R: Reason>(name: &str) -> Result<R, UnknownReason> {
    R::ALL
        .iter()
        .copied()
        .find(|reason| reason.as_str() == name)
        .ok_or_else(|| UnknownReason(name.to_owned()))
}

/// Monotonic drop counters, one per reason of `R`.
#[derive(Clone, PartialEq, Eq)]
pub struct Counters<R: Reason> {
    counts: R::Counts,
}

impl<R: Reason> Default for Counters<R> {
    fn default() -> Self {
        Counters { counts: R::ZERO }
    }
}

impl<R: Reason> Counters<R> {
    /// Counts one drop.
    pub fn count(&mut self, reason: R) {
        if let Some(count) = self.counts.as_mut().get_mut(reason.index()) {
            *count += 1;
        }
    }

    /// How many were dropped for `reason`.
    pub fn get(&self, reason: R) -> u64 {
        self.counts
            .as_ref()
            .get(reason.index())
            .copied()
            .unwrap_or(0)
    }

    /// All drops, whatever the reason.
    pub fn total(&self) -> u64 {
        self.counts.as_ref().iter().sum()
    }

    /// `(reason, count)` for every reason, zeros included, in [`Reason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (R, u64)> + '_ {
        R::ALL.iter().map(|reason| (*reason, self.get(*reason)))
    }

    /// `(reason, count)` for every reason with a non-zero count, in
    /// [`Reason::ALL`] order.
    pub fn nonzero(&self) -> impl Iterator<Item = (R, u64)> + '_ {
        self.iter().filter(|(_, count)| *count > 0)
    }
}

impl<R: Reason> fmt::Debug for Counters<R> {
    /// The non-zero counts by name: `{"replayed": 2}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(
                self.nonzero()
                    .map(|(reason, count)| (reason.as_str(), count)),
            )
            .finish()
    }
}

/// Declares a drop reason enum: each variant with its doc comment and its
/// stable snake_case name (`Variant => "name"`). Generates the enum (with
/// `Debug, Clone, Copy, PartialEq, Eq, Hash`), `ALL` (every reason in
/// declaration order), `as_str`, `Display` (the name, honouring width and
/// alignment), `FromStr` (the name back, else [`UnknownReason`]) and the
/// [`Reason`] impl [`Counters`] needs. Attributes on the enum (docs,
/// `#[non_exhaustive]`) are kept. Variants take no explicit discriminant:
/// declaration order is the counters' order.
#[macro_export]
macro_rules! reasons {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident => $text:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $(
                $(#[$variant_meta])*
                $variant,
            )+
        }

        impl $name {
            /// Every reason, in a fixed order (the order counters are reported in).
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// A stable snake_case name, used in metrics, stats and logs.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl $crate::Reason for $name {
            type Counts = [u64; [$($text),+].len()];
            const ZERO: Self::Counts = [0; [$($text),+].len()];
            const ALL: &'static [Self] = &$name::ALL;

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }

            fn index(self) -> usize {
                self as usize
            }
        }

        impl ::std::fmt::Display for $name {
            /// The snake_case name; honours width and alignment (`{:<20}`).
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownReason;

            fn from_str(name: &str) -> ::std::result::Result<Self, Self::Err> {
                $crate::parse_reason(name)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    reasons! {
        /// A test enum.
        #[non_exhaustive]
        pub enum TestReason {
            /// First.
            Alpha => "alpha",
            /// Second.
            Beta => "beta_two",
            /// Third.
            Gamma => "gamma",
        }
    }

    #[test]
    fn all_lists_every_reason_in_index_order() {
        assert_eq!(TestReason::ALL.len(), 3);
        assert_eq!(<TestReason as Reason>::ALL, &TestReason::ALL[..]);
        for (index, reason) in TestReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), index);
            assert_eq!(Reason::as_str(*reason), reason.as_str());
        }
    }

    #[test]
    fn names_print_and_parse_back() {
        for reason in TestReason::ALL {
            assert_eq!(reason.as_str().parse::<TestReason>(), Ok(reason));
            assert_eq!(reason.to_string(), reason.as_str());
        }
        assert_eq!(TestReason::Beta.as_str(), "beta_two");
        assert_eq!(format!("{:>9}", TestReason::Alpha), "    alpha");
        assert_eq!(
            "Beta".parse::<TestReason>(),
            Err(UnknownReason("Beta".into()))
        );
        assert_eq!(
            UnknownReason("x".into()).to_string(),
            "unknown drop reason \"x\""
        );
    }

    #[test]
    fn counters_count_per_reason() {
        let mut counters = Counters::<TestReason>::default();
        assert_eq!(counters.total(), 0);
        counters.count(TestReason::Gamma);
        counters.count(TestReason::Gamma);
        counters.count(TestReason::Alpha);
        assert_eq!(counters.get(TestReason::Gamma), 2);
        assert_eq!(counters.get(TestReason::Beta), 0);
        assert_eq!(counters.total(), 3);
        assert_eq!(
            counters.nonzero().collect::<Vec<_>>(),
            vec![(TestReason::Alpha, 1), (TestReason::Gamma, 2)]
        );
        assert_eq!(
            counters.iter().collect::<Vec<_>>(),
            vec![
                (TestReason::Alpha, 1),
                (TestReason::Beta, 0),
                (TestReason::Gamma, 2)
            ]
        );
        assert_eq!(format!("{counters:?}"), r#"{"alpha": 1, "gamma": 2}"#);
        let copy = counters.clone();
        counters.count(TestReason::Beta);
        assert_ne!(copy, counters);
    }
}
