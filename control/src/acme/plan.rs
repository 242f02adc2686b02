//! When to ask the ACME directory for a certificate: a pure decision over
//! the hosts that want one, what each has, past failures and the time.
//!
//! A host gets its first certificate as soon as it wants one, and a new
//! one once two thirds of the current one's lifetime have passed (30 days
//! before expiry for a 90-day certificate). A host with a certificate set
//! by hand is never asked for. After a failure, a host waits 30 s, then
//! twice as long after each further failure, up to an hour.

use crate::store::CertSource;
use std::collections::HashMap;

/// A host that wants an ACME certificate, and the one it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// The host.
    pub host: String,
    /// Its current certificate, if any.
    pub current: Option<Held>,
}

/// A certificate a host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Where it came from.
    pub source: CertSource,
    /// When it was stored, unix seconds.
    pub issued: u64,
    /// When it expires, unix seconds.
    pub not_after: u64,
}

/// The first wait after a failure, seconds.
pub const FIRST_RETRY_SECS: u64 = 30;

/// The longest wait after failures, seconds.
pub const MAX_RETRY_SECS: u64 = 3600;

/// When a certificate issued at `issued` and expiring at `not_after` is
/// renewed: with a third of its lifetime left.
pub fn renew_at(issued: u64, not_after: u64) -> u64 {
    not_after.saturating_sub(not_after.saturating_sub(issued) / 3)
}

/// The failures so far, by host.
#[derive(Debug, Clone, Default)]
pub struct Planner {
    failures: HashMap<String, (u32, u64)>,
}

impl Planner {
    /// The hosts to order a certificate for at `now`.
    pub fn due(&self, wanted: &[Wanted], now: u64) -> Vec<String> {
        wanted
            .iter()
            .filter(|w| self.when(w).is_some_and(|at| at <= now))
            .map(|w| w.host.clone())
            .collect()
    }

    /// When anything of `wanted` is next due (`None`: never, as things are).
    pub fn next_due(&self, wanted: &[Wanted]) -> Option<u64> {
        wanted.iter().filter_map(|w| self.when(w)).min()
    }

    /// Ordering for `host` failed at `now`.
    pub fn failed(&mut self, host: &str, now: u64) {
        let failures = self.failures.get(host).map_or(0, |(n, _)| *n) + 1;
        let wait = FIRST_RETRY_SECS
            .saturating_mul(1 << (failures - 1).min(16))
            .min(MAX_RETRY_SECS);
        self.failures
            .insert(host.to_owned(), (failures, now.saturating_add(wait)));
    }

    /// `host` got its certificate.
    pub fn succeeded(&mut self, host: &str) {
        self.failures.remove(host);
    }

    /// When `wanted` is due: its renewal time (now, without a certificate),
    /// but not before its retry time; never for one set by hand.
    fn when(&self, wanted: &Wanted) -> Option<u64> {
        let due = match wanted.current {
            Some(held) if held.source == CertSource::Manual => return None,
            Some(held) => renew_at(held.issued, held.not_after),
            None => 0,
        };
        let retry = self.failures.get(&wanted.host).map_or(0, |(_, at)| *at);
        Some(due.max(retry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: u64 = 86_400;

    fn wanted(host: &str, current: Option<Held>) -> Wanted {
        Wanted {
            host: host.to_owned(),
            current,
        }
    }

    #[test]
    fn new_hosts_now_renewals_at_two_thirds_manual_never() {
        let now = 1_000 * DAY;
        let acme = |issued, not_after| Held {
            source: CertSource::Acme,
            issued,
            not_after,
        };
        let hosts = [
            wanted("new.test", None),
            wanted("fresh.test", Some(acme(now - DAY, now + 89 * DAY))),
            wanted("old.test", Some(acme(now - 61 * DAY, now + 29 * DAY))),
            wanted(
                "manual.test",
                Some(Held {
                    source: CertSource::Manual,
                    issued: now - 89 * DAY,
                    not_after: now + DAY,
                }),
            ),
        ];
        let planner = Planner::default();
        assert_eq!(planner.due(&hosts, now), ["new.test", "old.test"]);
        assert_eq!(renew_at(0, 90 * DAY), 60 * DAY);
        assert_eq!(planner.next_due(&hosts[1..2]), Some(now + 59 * DAY));
    }

    #[test]
    fn failures_back_off_doubling_up_to_an_hour_and_a_success_clears_them() {
        let mut planner = Planner::default();
        let hosts = [wanted("a.test", None)];
        planner.failed("a.test", 100);
        assert!(planner.due(&hosts, 129).is_empty());
        assert_eq!(planner.due(&hosts, 130), ["a.test"]);
        planner.failed("a.test", 130);
        assert_eq!(planner.next_due(&hosts), Some(190));
        for _ in 0..20 {
            planner.failed("a.test", 1000);
        }
        assert_eq!(planner.next_due(&hosts), Some(1000 + MAX_RETRY_SECS));
        planner.succeeded("a.test");
        assert_eq!(planner.next_due(&hosts), Some(0));
    }

    proptest! {
        /// A manual certificate is never due; an ACME one is due only once
        /// a third of its life is left, and always before it expires.
        #[test]
        fn renewal_comes_before_expiry_and_never_replaces_a_manual_certificate(
            issued in 0u64..1 << 40,
            life in 1u64..400 * DAY,
            now in 0u64..1 << 41,
            manual in any::<bool>(),
        ) {
            let held = Held {
                source: if manual { CertSource::Manual } else { CertSource::Acme },
                issued,
                not_after: issued + life,
            };
            let due = !Planner::default().due(&[wanted("h.test", Some(held))], now).is_empty();
            if manual {
                prop_assert!(!due);
            } else {
                let at = renew_at(held.issued, held.not_after);
                prop_assert!(at < held.not_after || life < 3);
                prop_assert!(at >= issued + life - life / 3 - 1);
                prop_assert_eq!(due, now >= at);
            }
        }
    }
}
