//! What the proxy changes in headers on the way through: hop-by-hop
//! headers are removed (RFC 9110 §7.6.1), and the client's address, the
//! scheme and the host it asked for are set in `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host` and `Forwarded` (RFC 7239).
//!
//! The proxy is the cluster's edge: what a client sends in those four is
//! dropped and replaced, so an upstream can trust them.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::net::{IpAddr, SocketAddr};

/// The hop-by-hop headers every hop removes, besides those `Connection`
/// names.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
];

/// The request's `Upgrade` protocol when it asks for one (`websocket`).
pub fn upgrade_of(headers: &HeaderMap) -> Option<HeaderValue> {
    let asks = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    asks.then(|| headers.get(header::UPGRADE).cloned())
        .flatten()
}

/// Removes the hop-by-hop headers; an upgrade (`upgrade`: the protocol the
/// request asks for, or the response agrees to) is kept as
/// `Connection: upgrade` and `Upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// Where a request came from and what it asked for, as the upstream is told.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// The client's address.
    pub client: SocketAddr,
    /// `http` or `https`.
    pub proto: &'a str,
    /// The Host the client asked for, as it sent it.
    pub host: &'a str,
}

/// Sets the forwarding headers, replacing any the client sent.
pub fn set_forwarded(headers: &mut HeaderMap, forwarding: Forwarding<'_>) {
    let ip = forwarding.client.ip();
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    let node = match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("\"[{v6}]\""),
    };
    let set =
        |headers: &mut HeaderMap, name: &'static str, value: String| match HeaderValue::from_str(
            &value,
        ) {
            Ok(value) => {
                headers.insert(name, value);
            }
            Err(_) => {
                headers.remove(name);
            }
        };
    set(headers, "x-forwarded-for", ip.to_string());
    set(headers, "x-forwarded-proto", forwarding.proto.to_owned());
    set(headers, "x-forwarded-host", forwarding.host.to_owned());
    set(
        headers,
        "forwarded",
        format!(
            "for={node};host=\"{}\";proto={}",
            forwarding.host, forwarding.proto
        ),
    );
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
