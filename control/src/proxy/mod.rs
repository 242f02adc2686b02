//! The ingress proxy: HTTP from the internet to a service's healthy
//! replicas, wherever they run, through the WireGuard mesh (the control
//! plane's own device routes the mesh addresses). No overlay network: a
//! replica is `mesh-ip:host-port`.
//!
//! - [`routes`]: the routing table (host, path prefix → replicas), built by
//!   the cluster's owner thread and read per request.
//! - [`balance`]: which replica (power of two choices on outstanding
//!   requests) and passive health.
//! - [`headers`]: hop-by-hop headers out, forwarding headers in.
//! - [`upstream`]: each replica's keep-alive pool.
//! - `forward`: one request, with its retries; `listener`: the sockets and
//!   the HTTP/1.1 server on them; `body`, `pages`: what goes back.
//! - [`metrics`]: the numbers `/metrics` shows.
//!
//! hyper 1 is the HTTP stack (`docs/architecture.md` says why).

pub mod balance;
mod body;
pub mod certs;
mod forward;
pub mod headers;
mod listener;
pub mod metrics;
mod pages;
mod respond;
pub mod routes;
pub mod stats;
pub mod upstream;
mod x509;

pub use listener::{bind, tls_config, Bound, ListenError, Listeners, ALPN};
pub use routes::{Route, RouteTable, Upstream};

use crate::acme::Challenges;
use metrics::ProxyMetrics;
use std::collections::HashSet;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use upstream::Upstreams;

/// The proxy's limits and timeouts, and its threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyLimits {
    /// How many worker threads serve it ([`Listeners`]).
    pub workers: usize,
    /// The largest request body passed on, bytes (413 beyond).
    pub max_body: u64,
    /// How long a client may take to send a request's headers, and how
    /// long an idle keep-alive connection is kept.
    pub header_timeout: Duration,
    /// The largest request head, bytes (431 beyond).
    pub max_head: usize,
    /// How long connecting to a replica may take before another is tried.
    pub connect_timeout: Duration,
    /// How long a replica may take to send its response's headers (504
    /// beyond).
    pub response_timeout: Duration,
}

impl Default for ProxyLimits {
    fn default() -> ProxyLimits {
        ProxyLimits {
            workers: workers(),
            max_body: 1 << 30,
            header_timeout: Duration::from_secs(30),
            max_head: 64 << 10,
            connect_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(60),
        }
    }
}

/// The proxy's worker threads by default: one per core.
pub fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// `warren proxy stats`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProxyStats {
    /// Client connections open now.
    pub open_connections: i64,
    /// By service.
    pub services: Vec<ServiceStats>,
}

/// One service's numbers and its requests in flight.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceStats {
    /// Requests sent to its replicas and not finished.
    pub in_flight: u32,
    /// Its numbers.
    #[serde(flatten)]
    pub summary: stats::ServiceSummary,
}

/// Plain HTTP requests for hosts that have a certificate are redirected
/// to HTTPS on this port.
#[derive(Debug, Clone)]
pub struct HttpsRedirect {
    /// The certificates the HTTPS listener serves.
    pub certs: watch::Receiver<Arc<certs::CertTable>>,
    /// The HTTPS listener's port.
    pub port: u16,
}

/// The proxy's shared state: the routing table it follows, its replicas'
/// pools and its numbers.
#[derive(Debug)]
pub struct Proxy {
    routes: watch::Receiver<Arc<RouteTable>>,
    redirect: Option<HttpsRedirect>,
    challenges: Challenges,
    /// Each worker thread's replicas (pools are per thread, so a
    /// connection's I/O stays on the thread that made it).
    upstreams: Vec<Upstreams>,
    metrics: ProxyMetrics,
    limits: ProxyLimits,
    random: std::collections::hash_map::RandomState,
    draws: AtomicU64,
}

impl Proxy {
    /// A proxy that follows `routes` (redirecting to HTTPS as `redirect`
    /// says, answering ACME's HTTP-01 challenges from `challenges`); it
    /// forgets the pools of replicas no route has any more as new tables
    /// come.
    pub fn new(
        routes: watch::Receiver<Arc<RouteTable>>,
        limits: ProxyLimits,
        redirect: Option<HttpsRedirect>,
        challenges: Challenges,
    ) -> Arc<Proxy> {
        let proxy = Arc::new(Proxy {
            routes: routes.clone(),
            redirect,
            challenges,
            upstreams: (0..limits.workers.max(1))
                .map(|_| Upstreams::default())
                .collect(),
            metrics: ProxyMetrics::default(),
            limits,
            random: std::collections::hash_map::RandomState::new(),
            draws: AtomicU64::new(0),
        });
        let weak = Arc::downgrade(&proxy);
        let mut changes = routes;
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let Some(proxy) = weak.upgrade() else { break };
                let table = Arc::clone(&changes.borrow_and_update());
                for addr in table.unreachable() {
                    for upstreams in &proxy.upstreams {
                        if let Some(upstream) = upstreams.existing(*addr) {
                            upstream.node_offline();
                        }
                    }
                }
                let live: HashSet<_> = table
                    .routes()
                    .iter()
                    .flat_map(|route| route.upstreams.iter().map(|u| u.addr))
                    .collect();
                for upstreams in &proxy.upstreams {
                    upstreams.retain(&live);
                }
            }
        });
        proxy
    }

    /// The Prometheus text of the proxy's numbers.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(&self.pools())
    }

    /// The replicas it has requests in flight to, by address: a draining
    /// replica is stopped once it is not among them.
    pub fn busy_upstreams(&self) -> std::collections::HashSet<std::net::SocketAddr> {
        self.upstreams
            .iter()
            .flat_map(Upstreams::pools)
            .filter(|(_, _, outstanding)| *outstanding > 0)
            .map(|(addr, _, _)| addr)
            .collect()
    }

    /// How many worker threads serve it.
    pub fn workers(&self) -> usize {
        self.upstreams.len()
    }

    /// Each replica's idle and outstanding counts, over every worker.
    fn pools(&self) -> Vec<(std::net::SocketAddr, usize, u32)> {
        let mut merged: std::collections::BTreeMap<std::net::SocketAddr, (usize, u32)> =
            std::collections::BTreeMap::new();
        for (addr, idle, outstanding) in self.upstreams.iter().flat_map(Upstreams::pools) {
            let entry = merged.entry(addr).or_default();
            entry.0 += idle;
            entry.1 += outstanding;
        }
        merged
            .into_iter()
            .map(|(addr, (idle, outstanding))| (addr, idle, outstanding))
            .collect()
    }

    /// What `warren proxy stats` shows: each service's numbers, with the
    /// requests in flight to its replicas, and the open client connections.
    pub fn stats(&self) -> ProxyStats {
        let routes = Arc::clone(&self.routes.borrow());
        let pools = self.pools();
        let in_flight = |service: &str| -> u32 {
            routes
                .routes()
                .iter()
                .filter(|r| r.service == service)
                .flat_map(|r| r.upstreams.iter())
                .filter_map(|u| pools.iter().find(|(addr, _, _)| *addr == u.addr))
                .map(|(_, _, outstanding)| *outstanding)
                .sum()
        };
        ProxyStats {
            open_connections: self.metrics.open_connections(),
            services: self
                .metrics
                .summaries()
                .into_iter()
                .map(|summary| ServiceStats {
                    in_flight: in_flight(&summary.service),
                    summary,
                })
                .collect(),
        }
    }

    /// Two random numbers for the balancer.
    fn random_pair(&self) -> (u64, u64) {
        let draw = self.draws.fetch_add(2, Ordering::Relaxed);
        (
            self.random.hash_one(draw),
            self.random.hash_one(draw.wrapping_add(1)),
        )
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "tls_tests.rs"]
mod tls_tests;
