//! One replica's health, without I/O: when to probe next, and what the
//! probes' results mean.
//!
//! Create a [`HealthState`] when the replica's container starts; probe it
//! (HTTP, TCP or a command, as its [`HealthCheck`] says) when
//! [`HealthState::next_probe`] passes and feed each result to
//! [`HealthState::handle_probe`]; call [`HealthState::handle_timeout`] at
//! [`HealthState::next_probe`] too. Each returns the new [`Health`] when it
//! changed, which the agent pushes to the control plane at once.
//!
//! A replica is `starting` until its probes have passed for the service's
//! minimum healthy time (`warren deploy --min-healthy-time`, 2 s by
//! default; a failure in between starts it again); failures within the
//! start period do not count; `retries` failures in a row after it make it
//! `unhealthy` (the converger then replaces it), and one pass makes it
//! `healthy` again. A replica without a check is `healthy` once it has run
//! [`NO_CHECK_GRACE`] or the minimum healthy time, whichever is longer. A
//! container the agent adopts after its own restart has been running all
//! along: it has no minimum healthy time to wait.

use std::time::{Duration, Instant};
use warren_proto::assignment::Health;
use warren_proto::HealthCheck;

/// How long a replica without a health check runs before it is healthy.
pub const NO_CHECK_GRACE: Duration = Duration::from_secs(1);

/// How soon a probe that failed while the replica is starting (within its
/// start period, before any pass) runs again, when the check's interval is
/// longer: a replica is healthy within a moment of answering, not an
/// interval later.
pub const START_RETRY: Duration = Duration::from_millis(250);

/// One replica's health (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthState {
    check: Option<HealthCheck>,
    started: Instant,
    min_healthy: Duration,
    /// Since when the probes of a starting replica have passed.
    passing_since: Option<Instant>,
    failures: u32,
    health: Health,
    next: Option<Instant>,
}

impl HealthState {
    /// The health of a replica whose container started at `started` and
    /// counts as healthy once its probes have passed for `min_healthy`.
    pub fn new(check: Option<HealthCheck>, started: Instant, min_healthy: Duration) -> HealthState {
        let next = Some(match &check {
            Some(_) => started,
            None => started + NO_CHECK_GRACE.max(min_healthy),
        });
        HealthState {
            check,
            started,
            min_healthy,
            passing_since: None,
            failures: 0,
            health: Health::Starting,
            next,
        }
    }

    /// What the probes say now.
    pub fn health(&self) -> Health {
        self.health
    }

    /// When to probe (or, without a check, to call
    /// [`HealthState::handle_timeout`]) next.
    pub fn next_probe(&self) -> Option<Instant> {
        self.next
    }

    /// How long a probe may take.
    pub fn probe_timeout(&self) -> Option<Duration> {
        self.check
            .as_ref()
            .map(|check| Duration::from_millis(check.timeout_ms))
    }

    /// The time passed `now`: a replica without a check becomes healthy.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Health> {
        if self.check.is_some() || now < self.started + NO_CHECK_GRACE.max(self.min_healthy) {
            return None;
        }
        self.next = None;
        self.set(Health::Healthy)
    }

    /// A probe that ran at `now` passed or failed.
    pub fn handle_probe(&mut self, passed: bool, now: Instant) -> Option<Health> {
        let check = self.check.as_ref()?;
        let interval = Duration::from_millis(check.interval_ms);
        self.next = Some(now + interval);
        if passed {
            self.failures = 0;
            if self.health != Health::Starting {
                return self.set(Health::Healthy);
            }
            let since = *self.passing_since.get_or_insert(now);
            let settled = since + self.min_healthy;
            if now < settled {
                self.next = Some(settled.min(now + interval));
                return None;
            }
            return self.set(Health::Healthy);
        }
        self.passing_since = None;
        let in_start_period = now < self.started + Duration::from_millis(check.start_period_ms);
        if in_start_period && self.health == Health::Starting {
            self.next = Some(now + interval.min(START_RETRY));
            return None;
        }
        self.failures += 1;
        if self.failures >= check.retries {
            return self.set(Health::Unhealthy);
        }
        None
    }

    fn set(&mut self, health: Health) -> Option<Health> {
        (self.health != health).then(|| {
            self.health = health;
            health
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::Probe;

    fn check() -> HealthCheck {
        HealthCheck::new(Probe::Tcp)
    }

    #[test]
    fn without_a_check_a_replica_is_healthy_after_a_second() {
        let start = Instant::now();
        let mut state = HealthState::new(None, start, Duration::ZERO);
        assert_eq!(state.handle_timeout(start), None);
        assert_eq!(state.next_probe(), Some(start + NO_CHECK_GRACE));
        assert_eq!(
            state.handle_timeout(start + NO_CHECK_GRACE),
            Some(Health::Healthy)
        );
        assert_eq!(state.next_probe(), None);
    }

    #[test]
    fn failures_count_after_the_start_period_and_retries_in_a_row_make_it_unhealthy() {
        let start = Instant::now();
        let mut state = HealthState::new(Some(check()), start, Duration::ZERO);
        let at = |ms| start + Duration::from_millis(ms);
        // Failing within the 10 s start period changes nothing, and the
        // probe is retried soon.
        for ms in [0, 2000, 4000, 8000] {
            assert_eq!(state.handle_probe(false, at(ms)), None);
            assert_eq!(state.next_probe(), Some(at(ms) + START_RETRY));
        }
        assert_eq!(state.health(), Health::Starting);
        assert_eq!(state.handle_probe(true, at(9000)), Some(Health::Healthy));
        assert_eq!(state.next_probe(), Some(at(11_000)));
        // Two failures, a pass, then three failures: unhealthy on the third.
        assert_eq!(state.handle_probe(false, at(11_000)), None);
        assert_eq!(state.handle_probe(false, at(13_000)), None);
        assert_eq!(state.handle_probe(true, at(15_000)), None);
        assert_eq!(state.handle_probe(false, at(17_000)), None);
        assert_eq!(state.handle_probe(false, at(19_000)), None);
        assert_eq!(
            state.handle_probe(false, at(21_000)),
            Some(Health::Unhealthy)
        );
        assert_eq!(state.handle_probe(false, at(23_000)), None, "reported once");
        assert_eq!(state.handle_probe(true, at(25_000)), Some(Health::Healthy));
    }

    #[test]
    fn a_replica_failing_from_the_start_turns_unhealthy_once_the_start_period_ends() {
        let start = Instant::now();
        let mut state = HealthState::new(Some(check()), start, Duration::ZERO);
        let mut changes = Vec::new();
        for ms in (0..20_000).step_by(2000) {
            if let Some(change) = state.handle_probe(false, start + Duration::from_millis(ms)) {
                changes.push((ms, change));
            }
        }
        assert_eq!(changes, vec![(14_000, Health::Unhealthy)]);
    }

    #[test]
    fn a_starting_replica_is_healthy_once_its_probes_passed_for_the_minimum_time() {
        let start = Instant::now();
        let min_healthy = Duration::from_secs(2);
        let mut state = HealthState::new(Some(check()), start, min_healthy);
        let at = |ms| start + Duration::from_millis(ms);
        // A pass, then a failure: the wait starts again at the next pass.
        assert_eq!(state.handle_probe(true, at(1000)), None);
        assert_eq!(state.next_probe(), Some(at(3000)));
        assert_eq!(state.handle_probe(false, at(3000)), None);
        assert_eq!(state.handle_probe(true, at(3250)), None);
        assert_eq!(state.handle_probe(true, at(5000)), None, "only 1.75 s");
        assert_eq!(state.next_probe(), Some(at(5250)));
        assert_eq!(state.handle_probe(true, at(5250)), Some(Health::Healthy));
        // Once healthy, one pass after failures is enough again.
        for ms in [7250, 9250, 11_250] {
            state.handle_probe(false, at(ms));
        }
        assert_eq!(state.health(), Health::Unhealthy);
        assert_eq!(state.handle_probe(true, at(13_250)), Some(Health::Healthy));
    }

    #[test]
    fn without_a_check_the_minimum_healthy_time_is_the_grace_when_longer() {
        let start = Instant::now();
        let mut state = HealthState::new(None, start, Duration::from_secs(3));
        assert_eq!(state.next_probe(), Some(start + Duration::from_secs(3)));
        assert_eq!(state.handle_timeout(start + NO_CHECK_GRACE), None);
        assert_eq!(
            state.handle_timeout(start + Duration::from_secs(3)),
            Some(Health::Healthy)
        );
    }
}
