//! Hop-by-hop headers and the forwarding headers.

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

#[test]
fn hop_by_hop_headers_and_those_connection_names_are_removed() {
    let mut map = headers(&[
        ("connection", "keep-alive, x-secret"),
        ("keep-alive", "timeout=5"),
        ("x-secret", "1"),
        ("transfer-encoding", "chunked"),
        ("te", "trailers"),
        ("upgrade", "websocket"),
        ("accept", "*/*"),
    ]);
    assert_eq!(upgrade_of(&map), None, "Connection does not ask for it");
    strip_hop_by_hop(&mut map, None);
    let left: Vec<&str> = map.keys().map(HeaderName::as_str).collect();
    assert_eq!(left, ["accept"]);
}

#[test]
fn an_upgrade_is_kept_as_connection_upgrade() {
    let mut map = headers(&[
        ("connection", "Upgrade, x-hop"),
        ("x-hop", "1"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "abc"),
    ]);
    let upgrade = upgrade_of(&map);
    assert_eq!(
        upgrade.as_ref().map(|v| v.to_str().unwrap()),
        Some("websocket")
    );
    strip_hop_by_hop(&mut map, upgrade);
    assert_eq!(map["connection"], "upgrade");
    assert_eq!(map["upgrade"], "websocket");
    assert_eq!(map["sec-websocket-key"], "abc");
    assert!(!map.contains_key("x-hop"));
}

#[test]
fn forwarding_headers_replace_what_the_client_claimed() {
    let mut map = headers(&[
        ("x-forwarded-for", "10.0.0.1"),
        ("forwarded", "for=10.0.0.1"),
        ("x-forwarded-host", "evil"),
    ]);
    set_forwarded(
        &mut map,
        Forwarding {
            client: "198.51.100.7:40000".parse().unwrap(),
            proto: "http",
            host: "web.example.com",
        },
    );
    assert_eq!(map["x-forwarded-for"], "198.51.100.7");
    assert_eq!(map["x-forwarded-proto"], "http");
    assert_eq!(map["x-forwarded-host"], "web.example.com");
    assert_eq!(
        map["forwarded"],
        "for=198.51.100.7;host=\"web.example.com\";proto=http"
    );
    assert_eq!(map.get_all("x-forwarded-for").iter().count(), 1);

    set_forwarded(
        &mut map,
        Forwarding {
            client: "[2001:db8::1]:40000".parse().unwrap(),
            proto: "https",
            host: "web.example.com",
        },
    );
    assert_eq!(map["x-forwarded-for"], "2001:db8::1");
    assert!(map["forwarded"]
        .to_str()
        .unwrap()
        .starts_with("for=\"[2001:db8::1]\";"));
    // An IPv4 client on a dual-stack socket is told as IPv4.
    set_forwarded(
        &mut map,
        Forwarding {
            client: "[::ffff:198.51.100.7]:1".parse().unwrap(),
            proto: "http",
            host: "h",
        },
    );
    assert_eq!(map["x-forwarded-for"], "198.51.100.7");
}
