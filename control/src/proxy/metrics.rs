//! The proxy's numbers for the control plane's `/metrics`: requests by
//! service and status, latency to the response's headers, upstream errors
//! by kind, open client connections and pool sizes.

use super::stats::{slot, Failure, ServiceSummary, Stats};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The latency histogram's upper bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Counters {
    /// By service, then status.
    requests: BTreeMap<String, BTreeMap<u16, u64>>,
    latency: BTreeMap<String, Histogram>,
    stats: Stats,
}

/// The proxy's counters.
#[derive(Debug)]
pub struct ProxyMetrics {
    counters: Mutex<Counters>,
    open_connections: AtomicI64,
    started: Instant,
}

impl Default for ProxyMetrics {
    fn default() -> ProxyMetrics {
        ProxyMetrics {
            counters: Mutex::default(),
            open_connections: AtomicI64::new(0),
            started: Instant::now(),
        }
    }
}

impl ProxyMetrics {
    /// A request for `service` (empty: none matched) was answered `status`
    /// after `latency`.
    pub fn request(&self, service: &str, status: u16, latency: Duration) {
        let now = self.seconds();
        let mut counters = self.lock();
        *slot(&mut counters.requests, service)
            .entry(status)
            .or_default() += 1;
        counters.stats.request(service, status, latency, now);
        let histogram = slot(&mut counters.latency, service);
        let seconds = latency.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            histogram.counts[i] += 1;
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// A request to a replica of `service` failed with `kind`.
    pub fn upstream_error(&self, service: &str, kind: Failure) {
        let now = self.seconds();
        self.lock().stats.failure(service, kind, now);
    }

    /// A request of `service` went to another replica after a failure.
    pub fn retry(&self, service: &str) {
        let now = self.seconds();
        self.lock().stats.retry(service, now);
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> i64 {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// Each service's numbers over the last minute and since start.
    pub fn summaries(&self) -> Vec<ServiceSummary> {
        let now = self.seconds();
        self.lock().stats.summaries(now)
    }

    fn seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// A client connection opened (`1`) or closed (`-1`).
    pub fn connections(&self, delta: i64) {
        self.open_connections.fetch_add(delta, Ordering::Relaxed);
    }

    /// The Prometheus text of every counter, with `pools` (each replica's
    /// address, idle and outstanding counts).
    pub fn render(&self, pools: &[(SocketAddr, usize, u32)]) -> String {
        let counters = self.lock();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP warren_proxy_requests_total Requests answered, by service (empty: no route) and status.\n\
             # TYPE warren_proxy_requests_total counter"
        );
        for (service, statuses) in &counters.requests {
            for (status, n) in statuses {
                let _ = writeln!(
                    out,
                    "warren_proxy_requests_total{{service=\"{service}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP warren_proxy_request_duration_seconds Time to the response's headers, by service.\n\
             # TYPE warren_proxy_request_duration_seconds histogram"
        );
        for (service, histogram) in &counters.latency {
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "warren_proxy_request_duration_seconds_bucket{{service=\"{service}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "warren_proxy_request_duration_seconds_bucket{{service=\"{service}\",le=\"+Inf\"}} {}\n\
                 warren_proxy_request_duration_seconds_sum{{service=\"{service}\"}} {}\n\
                 warren_proxy_request_duration_seconds_count{{service=\"{service}\"}} {}",
                histogram.count, histogram.sum, histogram.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP warren_proxy_upstream_errors_total Failed attempts at a replica, by service and kind.\n\
             # TYPE warren_proxy_upstream_errors_total counter"
        );
        for (service, failures, _) in counters.stats.totals() {
            for (kind, n) in Failure::ALL.iter().zip(failures).filter(|(_, n)| *n > 0) {
                let _ = writeln!(
                    out,
                    "warren_proxy_upstream_errors_total{{service=\"{service}\",kind=\"{}\"}} {n}",
                    kind.label()
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP warren_proxy_retries_total Requests sent to another replica after a failure, by service.\n\
             # TYPE warren_proxy_retries_total counter"
        );
        for (service, _, n) in counters.stats.totals().filter(|(_, _, n)| *n > 0) {
            let _ = writeln!(
                out,
                "warren_proxy_retries_total{{service=\"{service}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP warren_proxy_open_connections Client connections open now.\n\
             # TYPE warren_proxy_open_connections gauge\n\
             warren_proxy_open_connections {}",
            self.open_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP warren_proxy_pool_idle_connections Idle keep-alive connections, by replica address.\n\
             # TYPE warren_proxy_pool_idle_connections gauge"
        );
        for (addr, idle, _) in pools {
            let _ = writeln!(
                out,
                "warren_proxy_pool_idle_connections{{upstream=\"{addr}\"}} {idle}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP warren_proxy_outstanding_requests Requests in flight, by replica address.\n\
             # TYPE warren_proxy_outstanding_requests gauge"
        );
        for (addr, _, outstanding) in pools {
            let _ = writeln!(
                out,
                "warren_proxy_outstanding_requests{{upstream=\"{addr}\"}} {outstanding}"
            );
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.counters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_errors_and_latency_come_out_as_prometheus_text() {
        let metrics = ProxyMetrics::default();
        metrics.request("web", 200, Duration::from_millis(3));
        metrics.request("web", 200, Duration::from_millis(30));
        metrics.request("", 404, Duration::from_micros(100));
        metrics.upstream_error("web", Failure::Connect);
        metrics.retry("web");
        metrics.connections(1);
        let text = metrics.render(&[("100.96.0.2:30000".parse().unwrap(), 2, 1)]);
        for line in [
            "warren_proxy_requests_total{service=\"web\",status=\"200\"} 2",
            "warren_proxy_requests_total{service=\"\",status=\"404\"} 1",
            "warren_proxy_request_duration_seconds_bucket{service=\"web\",le=\"0.005\"} 1",
            "warren_proxy_request_duration_seconds_bucket{service=\"web\",le=\"0.05\"} 2",
            "warren_proxy_request_duration_seconds_count{service=\"web\"} 2",
            "warren_proxy_upstream_errors_total{service=\"web\",kind=\"connect\"} 1",
            "warren_proxy_retries_total{service=\"web\"} 1",
            "warren_proxy_open_connections 1",
            "warren_proxy_pool_idle_connections{upstream=\"100.96.0.2:30000\"} 2",
            "warren_proxy_outstanding_requests{upstream=\"100.96.0.2:30000\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
