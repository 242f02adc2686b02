//! Rendering a [`SetRequest`] as UAPI text, for clients.

use super::{PeerChange, SetRequest};
use crate::Key;
use std::fmt::Write as _;

/// Renders `request` as a complete `set=1` request, keys in the order
/// wg(8) sends them, ending with the blank line.
///
/// [`crate::parse_request`] gives back an equal request, with two
/// exceptions that the parser would normalise: a `Some(Some(Key::ZERO))`
/// private key comes back as `Some(None)` (both mean "remove"), and a peer
/// with `remove` set is written as `public_key`, `update_only` and `remove`
/// alone, since removal discards any other change.
pub fn format_set_request(request: &SetRequest) -> String {
    let mut out = String::from("set=1\n");
    if let Some(private_key) = &request.private_key {
        line_key(&mut out, "private_key", &private_key.unwrap_or(Key::ZERO));
    }
    if let Some(port) = request.listen_port {
        line(&mut out, "listen_port", port);
    }
    if let Some(mark) = request.fwmark {
        line(&mut out, "fwmark", mark);
    }
    if request.replace_peers {
        line(&mut out, "replace_peers", "true");
    }
    for peer in &request.peers {
        format_peer(&mut out, peer);
    }
    out.push('\n');
    out
}

fn format_peer(out: &mut String, peer: &PeerChange) {
    line_key(out, "public_key", &peer.public_key);
    if peer.update_only {
        line(out, "update_only", "true");
    }
    if peer.remove {
        line(out, "remove", "true");
        return;
    }
    if let Some(psk) = &peer.preshared_key {
        line_key(out, "preshared_key", psk);
    }
    if let Some(endpoint) = peer.endpoint {
        line(out, "endpoint", endpoint);
    }
    if let Some(secs) = peer.persistent_keepalive_interval {
        line(out, "persistent_keepalive_interval", secs);
    }
    if peer.replace_allowed_ips {
        line(out, "replace_allowed_ips", "true");
    }
    for net in &peer.allowed_ips {
        line(out, "allowed_ip", net);
    }
}

fn line(out: &mut String, key: &str, value: impl std::fmt::Display) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{key}={value}");
}

fn line_key(out: &mut String, key: &str, value: &Key) {
    line(out, key, value.to_hex());
}
