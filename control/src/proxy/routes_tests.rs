//! Route lookup: exact before wildcard, longest prefix on whole segments.

use super::*;
use proptest::prelude::*;

fn route(service: &str, hosts: &[&str], path: &str) -> Route {
    Route {
        service: service.to_owned(),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        path: path.to_owned(),
        strip_prefix: false,
        sticky: false,
        h2: false,
        upstreams: Arc::from(Vec::new()),
    }
}

fn found(table: &RouteTable, host: &str, path: &str) -> Option<String> {
    table.find(host, path).map(|r| r.service.clone())
}

#[test]
fn hosts_match_exactly_then_by_wildcard_and_paths_by_longest_segment_prefix() {
    let table = RouteTable::new(vec![
        route("site", &["example.com", "www.example.com"], "/"),
        route("api", &["example.com"], "/api"),
        route("v2", &["example.com"], "/api/v2"),
        route("tenants", &["*.example.com"], "/"),
    ]);
    assert_eq!(found(&table, "example.com", "/").as_deref(), Some("site"));
    assert_eq!(
        found(&table, "Example.COM:8080", "/api").as_deref(),
        Some("api")
    );
    assert_eq!(
        found(&table, "example.com.", "/api/x").as_deref(),
        Some("api")
    );
    assert_eq!(
        found(&table, "example.com", "/api/v2/x").as_deref(),
        Some("v2")
    );
    assert_eq!(
        found(&table, "example.com", "/apix").as_deref(),
        Some("site")
    );
    assert_eq!(
        found(&table, "www.example.com", "/api").as_deref(),
        Some("site")
    );
    assert_eq!(
        found(&table, "a.example.com", "/api").as_deref(),
        Some("tenants")
    );
    // A wildcard stands for one label only.
    assert_eq!(found(&table, "a.b.example.com", "/"), None);
    assert_eq!(found(&table, "other.org", "/"), None);
    assert_eq!(found(&table, "", "/"), None);
    assert_eq!(found(&table, "[::1]:80", "/"), None);
    assert_eq!(found(&table, "example.com:80\"", "/"), None);
}

#[test]
fn an_exact_host_without_a_matching_path_falls_back_to_the_wildcard() {
    let table = RouteTable::new(vec![
        route("api", &["a.example.com"], "/api"),
        route("tenants", &["*.example.com"], "/"),
    ]);
    assert_eq!(
        found(&table, "a.example.com", "/").as_deref(),
        Some("tenants")
    );
    assert_eq!(
        found(&table, "a.example.com", "/api").as_deref(),
        Some("api")
    );
}

#[test]
fn a_stripped_prefix_leaves_the_rest_of_the_path_and_the_query() {
    let mut api = route("api", &["example.com"], "/api");
    assert_eq!(api.upstream_path("/api/users?id=1"), "/api/users?id=1");
    api.strip_prefix = true;
    assert_eq!(api.upstream_path("/api/users?id=1"), "/users?id=1");
    assert_eq!(api.upstream_path("/api"), "/");
    assert_eq!(api.upstream_path("/api?x=1"), "/?x=1");
    let root = Route {
        strip_prefix: true,
        ..route("site", &["example.com"], "/")
    };
    assert_eq!(root.upstream_path("/index.html"), "/index.html");
}

fn segment() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "ab", "api", "v1"]).prop_map(str::to_owned)
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(segment(), 0..4).prop_map(|s| format!("/{}", s.join("/")))
}

fn host() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "x.test",
        "y.test",
        "a.x.test",
        "b.x.test",
        "a.b.x.test",
    ])
    .prop_map(str::to_owned)
}

fn pattern() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "x.test",
        "y.test",
        "a.x.test",
        "*.x.test",
        "*.b.x.test",
    ])
    .prop_map(str::to_owned)
}

fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(_, parent)| parent == suffix),
        None => pattern == host,
    }
}

proptest! {
    /// The route found is one that covers the request, and no route that
    /// covers it is more specific: an exact host over a wildcard, then a
    /// longer prefix.
    #[test]
    fn the_most_specific_covering_route_is_found(
        specs in prop::collection::vec((pattern(), path()), 0..8),
        host in host(),
        request in path(),
    ) {
        let routes: Vec<Route> = specs
            .iter()
            .enumerate()
            .map(|(i, (pattern, path))| route(&format!("s{i}"), &[pattern.as_str()], path))
            .collect();
        let table = RouteTable::new(routes.clone());
        let covering: Vec<&Route> = routes
            .iter()
            .filter(|r| host_matches(&r.hosts[0], &host) && prefix_matches(&r.path, &request))
            .collect();
        let rank = |r: &Route| (!r.hosts[0].starts_with("*."), r.path.len());
        match table.find(&host, &request) {
            None => prop_assert!(covering.is_empty()),
            Some(found) => {
                prop_assert!(covering.iter().any(|r| r.service == found.service));
                let best = covering.iter().map(|r| rank(r)).max();
                prop_assert_eq!(Some(rank(found)), best);
            }
        }
    }
}
