//! The pause between batches of a rollout (`warren deploy --update-delay`),
//! timed without I/O: when a new replica of a rolling-out service turns
//! healthy while older ones still serve, the rollout pauses for the delay;
//! the reconciler begins no new batch while it is paused
//! ([`crate::reconcile`]).
//!
//! [`UpdateDelays::batch_done`] starts (or starts again) a service's
//! pause; the next [`UpdateDelays::poll`] sets its end from the time it is
//! given, and a later one ends it and returns the service, to converge.
//! Nothing here is stored: a control plane that restarts knows no replica's
//! health, and pauses again as the new ones report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Each paused service's pause (see the module doc).
#[derive(Debug, Default)]
pub struct UpdateDelays {
    paused: BTreeMap<String, Pause>,
}

#[derive(Debug)]
struct Pause {
    delay: Duration,
    /// When it ends, once a poll has seen it.
    until: Option<Instant>,
}

impl UpdateDelays {
    /// A batch of `service`'s rollout is done: it pauses for `delay`
    /// (from the next poll), even if it was paused already.
    pub fn batch_done(&mut self, service: &str, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        self.paused
            .insert(service.to_owned(), Pause { delay, until: None });
    }

    /// Whether `service`'s rollout is paused.
    pub fn is_paused(&self, service: &str) -> bool {
        self.paused.contains_key(service)
    }

    /// Forgets `service`'s pause (it was removed, or its rollout ended).
    pub fn forget(&mut self, service: &str) {
        self.paused.remove(service);
    }

    /// The services whose pause is over at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<String> {
        let mut over = Vec::new();
        for (service, pause) in &mut self.paused {
            if now >= *pause.until.get_or_insert(now + pause.delay) {
                over.push(service.clone());
            }
        }
        for service in &over {
            self.paused.remove(service);
        }
        over
    }

    /// When the next pause ends, if one is timed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.paused.values().filter_map(|p| p.until).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_lasts_its_delay_from_the_poll_that_first_sees_it() {
        let mut delays = UpdateDelays::default();
        let start = Instant::now();
        let delay = Duration::from_secs(5);
        delays.batch_done("web", Duration::ZERO);
        assert!(!delays.is_paused("web"), "no delay, no pause");
        delays.batch_done("web", delay);
        assert!(delays.is_paused("web"));
        assert_eq!(delays.poll_timeout(), None, "not timed before a poll");
        assert_eq!(delays.poll(start), Vec::<String>::new());
        assert_eq!(delays.poll_timeout(), Some(start + delay));
        // Another batch done meanwhile starts the pause again.
        delays.batch_done("web", delay);
        assert_eq!(
            delays.poll(start + Duration::from_secs(4)),
            Vec::<String>::new()
        );
        assert_eq!(delays.poll(start + delay), Vec::<String>::new());
        assert_eq!(
            delays.poll(start + Duration::from_secs(9)),
            vec!["web".to_owned()]
        );
        assert!(!delays.is_paused("web"));
    }
}
