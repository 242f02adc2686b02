//! The proxy's routing table: which service answers a request, by its host
//! and path prefix, and at which replicas. The cluster's owner thread builds
//! a new table whenever a service, a replica's health or a node's
//! connection changes ([`crate::cluster::ClusterState::routes`]); the proxy
//! reads the latest one for each request, so a change never touches a
//! request already on its way.
//!
//! Matching: an exact host beats a wildcard one (`*.example.com` stands for
//! any one label), and among a host's routes the longest path prefix wins,
//! matched on whole segments (`/api` takes `/api` and `/api/v1`, not `/apix`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use warren_proto::Mode;

/// Where a replica answers: a healthy replica on an online node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The replica (`web.2`), for logs, `warren routes` and sticky cookies.
    pub replica: String,
    /// The node it runs on.
    pub node: String,
    /// Its node's mesh address and the host port of the service's first port.
    pub addr: SocketAddr,
    /// How its node joined (a relayed node may be reached through the relay).
    pub mode: Mode,
}

/// One service's route: the hosts and path it answers, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The service.
    pub service: String,
    /// The host names, lowercase, wildcards as `*.example.com`.
    pub hosts: Vec<String>,
    /// The path prefix (`/` for every path).
    pub path: String,
    /// Whether the prefix is taken off before the request is passed on.
    pub strip_prefix: bool,
    /// Whether clients are kept on one replica by a cookie.
    pub sticky: bool,
    /// Whether the replicas speak HTTP/2 without TLS (h2c).
    pub h2: bool,
    /// The healthy replicas, in replica order.
    pub upstreams: Arc<[Upstream]>,
}

impl Route {
    /// The path and query to send upstream for `path_and_query`: unchanged,
    /// or with the prefix taken off (`/` when nothing is left of the path).
    pub fn upstream_path(&self, path_and_query: &str) -> String {
        if !self.strip_prefix || self.path == "/" {
            return path_and_query.to_owned();
        }
        let rest = path_and_query
            .strip_prefix(self.path.as_str())
            .unwrap_or(path_and_query);
        if rest.is_empty() || rest.starts_with('?') {
            format!("/{rest}")
        } else {
            rest.to_owned()
        }
    }
}

/// Every route, indexed for lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Host (exact, or the part after `*.`) → indices into `routes`,
    /// longest path first.
    exact: HashMap<String, Vec<usize>>,
    wildcard: HashMap<String, Vec<usize>>,
    /// Replicas of routed services whose node is offline: requests
    /// waiting for their answers go elsewhere.
    unreachable: Vec<SocketAddr>,
}

impl RouteTable {
    /// The table over `routes`. Where two routes claim the same host and
    /// path (deploy refuses that), the first one wins.
    pub fn new(routes: Vec<Route>) -> RouteTable {
        let mut exact: HashMap<String, Vec<usize>> = HashMap::new();
        let mut wildcard: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, route) in routes.iter().enumerate() {
            for host in &route.hosts {
                let (map, key) = match host.strip_prefix("*.") {
                    Some(suffix) => (&mut wildcard, suffix),
                    None => (&mut exact, host.as_str()),
                };
                map.entry(key.to_owned()).or_default().push(index);
            }
        }
        for indices in exact.values_mut().chain(wildcard.values_mut()) {
            // Stable: the first of two equal prefixes stays first.
            indices.sort_by_key(|&i| std::cmp::Reverse(routes[i].path.len()));
        }
        RouteTable {
            routes,
            exact,
            wildcard,
            unreachable: Vec::new(),
        }
    }

    /// The table, telling that the replicas at `addrs` are on offline nodes.
    pub fn with_unreachable(mut self, addrs: Vec<SocketAddr>) -> RouteTable {
        self.unreachable = addrs;
        self
    }

    /// The replicas of routed services whose node is offline.
    pub fn unreachable(&self) -> &[SocketAddr] {
        &self.unreachable
    }

    /// Every route, in the order given.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for a request to `host` (a Host header: any case, maybe a
    /// port and a trailing dot) at `path` (the URI's path).
    /// A host with anything after its name but a port matches nothing.
    pub fn find(&self, host: &str, path: &str) -> Option<&Route> {
        let host = normalize_host(host)?;
        let lookup = |map: &HashMap<String, Vec<usize>>, key: &str| {
            map.get(key)?
                .iter()
                .map(|&i| &self.routes[i])
                .find(|route| prefix_matches(&route.path, path))
        };
        lookup(&self.exact, &host).or_else(|| {
            let (_, parent) = host.split_once('.')?;
            lookup(&self.wildcard, parent)
        })
    }
}

/// A Host header's name: lowercase, without the port or a trailing dot;
/// `None` for an empty one or an IPv6 literal (no route names one).
pub fn normalize_host(host: &str) -> Option<String> {
    if host.starts_with('[') {
        return None;
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        Some(_) => return None,
        None => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// Whether `prefix` covers `path` on whole segments.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
