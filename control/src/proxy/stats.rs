//! `warren proxy stats`: per service, over the last minute and since the
//! proxy started, requests by status class, failed attempts at replicas by
//! kind, retries, and latency percentiles.
//!
//! Plain bookkeeping over seconds since the proxy started: each service
//! keeps its totals and one bucket per second of the last minute. Latency
//! goes into a log-scaled histogram (each bucket 20 % wider than the one
//! before, from 0.1 ms to about a minute), so a percentile is exact to
//! within a fifth.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The window `last_minute` covers, seconds.
pub const WINDOW_SECS: u64 = 60;

/// The histogram's first bucket's upper bound, seconds.
const FIRST_BOUND: f64 = 0.000_1;
/// How much wider each bucket is than the one before.
const GROWTH: f64 = 1.2;
/// Buckets: 0.1 ms × 1.2^72 ≈ 50 s; the last one takes everything longer.
const BUCKETS: usize = 73;

/// What went wrong with one attempt at a replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Connecting failed.
    Connect,
    /// The replica closed before its response's headers.
    Closed,
    /// No response headers in time.
    Timeout,
    /// The replica's node went offline while the request waited.
    Offline,
}

impl Failure {
    /// Every kind, in the order they are counted.
    pub const ALL: [Failure; 4] = [
        Failure::Connect,
        Failure::Closed,
        Failure::Timeout,
        Failure::Offline,
    ];

    /// The `kind` label on `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Closed => "closed",
            Failure::Timeout => "timeout",
            Failure::Offline => "offline",
        }
    }
}

/// Counts over a span of time.
#[derive(Debug, Clone)]
struct Tally {
    requests: u64,
    /// 1xx, 2xx, 3xx, 4xx, 5xx.
    classes: [u64; 5],
    failures: [u64; Failure::ALL.len()],
    retries: u64,
    latency: [u32; BUCKETS],
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            requests: 0,
            classes: [0; 5],
            failures: [0; Failure::ALL.len()],
            retries: 0,
            latency: [0; BUCKETS],
        }
    }
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.requests += other.requests;
        for (a, b) in self.classes.iter_mut().zip(other.classes) {
            *a += b;
        }
        for (a, b) in self.failures.iter_mut().zip(other.failures) {
            *a += b;
        }
        self.retries += other.retries;
        for (a, b) in self.latency.iter_mut().zip(other.latency) {
            *a = a.saturating_add(b);
        }
    }

    /// The latency under which `fraction` of the requests were answered,
    /// milliseconds (the bucket's upper bound).
    fn percentile_ms(&self, fraction: f64) -> Option<f64> {
        let total: u64 = self.latency.iter().map(|&n| u64::from(n)).sum();
        if total == 0 {
            return None;
        }
        let rank = ((total as f64) * fraction).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &n) in self.latency.iter().enumerate() {
            seen += u64::from(n);
            if seen >= rank {
                return Some(bound(i) * 1000.0);
            }
        }
        Some(bound(BUCKETS - 1) * 1000.0)
    }

    fn summary(&self, seconds: u64) -> Summary {
        Summary {
            requests: self.requests,
            rps: self.requests as f64 / seconds.max(1) as f64,
            status_1xx: self.classes[0],
            status_2xx: self.classes[1],
            status_3xx: self.classes[2],
            status_4xx: self.classes[3],
            status_5xx: self.classes[4],
            connect_errors: self.failures[Failure::Connect as usize],
            closed_errors: self.failures[Failure::Closed as usize],
            timeouts: self.failures[Failure::Timeout as usize],
            offline_errors: self.failures[Failure::Offline as usize],
            retries: self.retries,
            p50_ms: self.percentile_ms(0.5),
            p99_ms: self.percentile_ms(0.99),
        }
    }
}

/// The upper bound of bucket `i`, seconds.
fn bound(i: usize) -> f64 {
    FIRST_BOUND * GROWTH.powi(i as i32)
}

/// The bucket a latency falls in.
fn bucket(latency: Duration) -> usize {
    let seconds = latency.as_secs_f64();
    if seconds <= FIRST_BOUND {
        return 0;
    }
    let i = ((seconds / FIRST_BOUND).ln() / GROWTH.ln()).ceil() as usize;
    i.min(BUCKETS - 1)
}

/// One service's numbers: since start, and per second of the last minute.
#[derive(Debug, Default)]
struct ServiceStats {
    total: Tally,
    seconds: VecDeque<(u64, Tally)>,
}

impl ServiceStats {
    fn second(&mut self, now: u64) -> &mut Tally {
        while self
            .seconds
            .front()
            .is_some_and(|(at, _)| at + WINDOW_SECS <= now)
        {
            self.seconds.pop_front();
        }
        if self.seconds.back().is_none_or(|(at, _)| *at != now) {
            self.seconds.push_back((now, Tally::default()));
        }
        let last = self.seconds.len() - 1;
        &mut self.seconds[last].1
    }

    fn record(&mut self, now: u64, change: impl Fn(&mut Tally)) {
        change(&mut self.total);
        change(self.second(now));
    }
}

/// Every service's numbers.
#[derive(Debug, Default)]
pub struct Stats {
    services: BTreeMap<String, ServiceStats>,
}

impl Stats {
    /// A request for `service` answered `status` after `latency`, at `now`
    /// (seconds since the proxy started).
    pub fn request(&mut self, service: &str, status: u16, latency: Duration, now: u64) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        let bucket = bucket(latency);
        self.entry(service).record(now, |tally| {
            tally.requests += 1;
            tally.classes[class] += 1;
            tally.latency[bucket] = tally.latency[bucket].saturating_add(1);
        });
    }

    /// An attempt at a replica of `service` failed with `failure` at `now`.
    pub fn failure(&mut self, service: &str, failure: Failure, now: u64) {
        let i = failure as usize;
        self.entry(service)
            .record(now, |tally| tally.failures[i] += 1);
    }

    /// A request of `service` went to another replica at `now`.
    pub fn retry(&mut self, service: &str, now: u64) {
        self.entry(service).record(now, |tally| tally.retries += 1);
    }

    /// Each service's summary at `now` (seconds since the proxy started).
    pub fn summaries(&self, now: u64) -> Vec<ServiceSummary> {
        self.services
            .iter()
            .map(|(service, stats)| {
                let mut minute = Tally::default();
                for (_, tally) in stats
                    .seconds
                    .iter()
                    .filter(|(at, _)| at + WINDOW_SECS > now)
                {
                    minute.add(tally);
                }
                ServiceSummary {
                    service: service.clone(),
                    last_minute: minute.summary(WINDOW_SECS.min(now + 1)),
                    since_start: stats.total.summary(now + 1),
                }
            })
            .collect()
    }

    /// Each service's failed attempts by kind (in [`Failure::ALL`]'s order)
    /// and retries since start.
    pub fn totals(&self) -> impl Iterator<Item = (&str, [u64; Failure::ALL.len()], u64)> {
        self.services
            .iter()
            .map(|(service, stats)| (service.as_str(), stats.total.failures, stats.total.retries))
    }

    fn entry(&mut self, service: &str) -> &mut ServiceStats {
        slot(&mut self.services, service)
    }
}

/// `map[key]`, made if missing: the key is copied only then (this runs for
/// every request).
pub(super) fn slot<'a, V: Default>(map: &'a mut BTreeMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    match map.get_mut(key) {
        Some(value) => value,
        None => unreachable!("inserted above"),
    }
}

/// One service's numbers, as `warren proxy stats` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceSummary {
    /// The service (empty: requests that matched no route).
    pub service: String,
    /// Over the last 60 seconds.
    pub last_minute: Summary,
    /// Since the proxy started.
    pub since_start: Summary,
}

/// Counts and latency over a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests answered.
    pub requests: u64,
    /// Requests per second over the span.
    pub rps: f64,
    /// Answers by status class.
    pub status_1xx: u64,
    /// 2xx answers.
    pub status_2xx: u64,
    /// 3xx answers.
    pub status_3xx: u64,
    /// 4xx answers.
    pub status_4xx: u64,
    /// 5xx answers.
    pub status_5xx: u64,
    /// Attempts whose connection to a replica failed.
    pub connect_errors: u64,
    /// Attempts whose replica closed before answering.
    pub closed_errors: u64,
    /// Attempts whose replica did not answer in time.
    pub timeouts: u64,
    /// Attempts whose replica's node went offline while they waited.
    pub offline_errors: u64,
    /// Requests sent to another replica after a failure.
    pub retries: u64,
    /// Half the requests were answered within this, milliseconds.
    pub p50_ms: Option<f64>,
    /// 99 in 100 were, milliseconds.
    pub p99_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_last_minute_forgets_and_since_start_keeps() {
        let mut stats = Stats::default();
        for i in 0..100 {
            stats.request("web", 200, Duration::from_millis(2), i % 10);
        }
        stats.request("web", 502, Duration::from_millis(40), 5);
        stats.failure("web", Failure::Connect, 5);
        stats.retry("web", 5);
        let now = stats.summaries(9);
        let web = &now[0];
        assert_eq!(web.service, "web");
        assert_eq!(web.last_minute.requests, 101);
        assert_eq!(
            (web.last_minute.status_2xx, web.last_minute.status_5xx),
            (100, 1)
        );
        assert_eq!(
            (web.last_minute.connect_errors, web.last_minute.retries),
            (1, 1)
        );
        let p50 = web.last_minute.p50_ms.unwrap();
        assert!((2.0..=2.4).contains(&p50), "{p50}");
        let p99 = web.last_minute.p99_ms.unwrap();
        assert!((2.0..=2.4).contains(&p99), "{p99}");
        assert!((web.last_minute.rps - 101.0 / 10.0).abs() < 1e-9);
        // A minute and more later: nothing in the window, all since start.
        stats.request("web", 200, Duration::from_millis(1), 100);
        let later = stats.summaries(100);
        assert_eq!(later[0].last_minute.requests, 1);
        assert_eq!(later[0].since_start.requests, 102);
        assert_eq!(later[0].since_start.connect_errors, 1);
    }

    proptest! {
        /// A latency's bucket bound is at least the latency and within a
        /// fifth of it (above the first bucket, below the last).
        #[test]
        fn a_bucket_bounds_its_latency_within_a_fifth(micros in 100u64..40_000_000) {
            let latency = Duration::from_micros(micros);
            let upper = bound(bucket(latency));
            let seconds = latency.as_secs_f64();
            prop_assert!(upper >= seconds * 0.999_999);
            prop_assert!(upper <= seconds * GROWTH * 1.000_001);
        }
    }
}
