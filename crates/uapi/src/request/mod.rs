//! UAPI requests: what `wg`, `wg-quick` and other clients send.
//!
//! A request is a line `get=1` or `set=1`, then for `set` any number of
//! `key=value` lines, then a blank line:
//!
//! ```text
//! set=1
//! private_key=<64 hex digits>      \
//! listen_port=51820                 | interface keys, before any public_key
//! fwmark=0                          |
//! replace_peers=true               /
//! public_key=<64 hex digits>       -- opens a peer section
//! preshared_key=<64 hex digits>    \
//! endpoint=[2001:db8::1]:51820      |
//! persistent_keepalive_interval=25  | peer keys, for the last public_key
//! replace_allowed_ips=true          |
//! allowed_ip=10.0.0.0/24           /
//! (blank line)
//! ```
//!
//! A server reads from its socket until [`request_len`] finds a complete
//! request (refusing to buffer past [`MAX_REQUEST_LEN`]), hands exactly
//! those bytes to [`parse_request`], applies the result, and answers with
//! the `get` response or [`crate::format_errno`].

mod format;
mod parse;
#[cfg(test)]
mod tests;

pub use format::format_set_request;
pub use parse::parse_request;

use crate::Key;
use ip_network::IpNetwork;
use std::net::SocketAddr;

/// The largest request a server should buffer: 1 MiB, room for several
/// thousand peers. Longer input answers [`crate::UapiError::TooLarge`].
pub const MAX_REQUEST_LEN: usize = 1 << 20;

/// The complete `get` request, for clients.
pub const GET_REQUEST: &str = "get=1\n\n";

/// One parsed UAPI request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `get=1`: answer with [`crate::format_get_response`].
    Get,
    /// `set=1`: apply the changes, then answer [`crate::format_errno`].
    Set(SetRequest),
}

/// The changes a `set=1` request asks for, in the order to apply them:
/// interface settings, then (if `replace_peers`) removal of every peer, then
/// each [`PeerChange`] in turn. `None` fields leave the setting unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetRequest {
    /// `private_key=`: `None` leaves the key as it is; `Some(None)` removes
    /// it (the protocol's all-zero key), `Some(Some(key))` sets it.
    pub private_key: Option<Option<Key>>,
    /// `listen_port=`: 0 asks for a random port.
    pub listen_port: Option<u16>,
    /// `fwmark=`: 0 removes the mark.
    pub fwmark: Option<u32>,
    /// `replace_peers=true`: remove every peer before applying `peers`.
    pub replace_peers: bool,
    /// One entry per `public_key=` section, in request order. The same key
    /// may appear in more than one section; apply them in order.
    pub peers: Vec<PeerChange>,
}

/// The changes for one peer: one `public_key=` section of a `set` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerChange {
    /// `public_key=`: which peer; created if absent (unless `update_only`).
    pub public_key: Key,
    /// `remove=true`: remove the peer. No other change accompanies it.
    pub remove: bool,
    /// `update_only=true`: change the peer only if it exists already.
    pub update_only: bool,
    /// `preshared_key=`: the all-zero key ([`Key::ZERO`]) means "no PSK".
    pub preshared_key: Option<Key>,
    /// `endpoint=`: where to send to until the peer roams.
    pub endpoint: Option<SocketAddr>,
    /// `persistent_keepalive_interval=` in seconds; 0 turns it off.
    pub persistent_keepalive_interval: Option<u16>,
    /// `replace_allowed_ips=true`: drop the peer's allowed IPs before adding
    /// `allowed_ips`.
    pub replace_allowed_ips: bool,
    /// `allowed_ip=` lines, in order, host bits cleared (as wireguard-go
    /// stores them: `10.0.0.5/24` becomes `10.0.0.0/24`).
    pub allowed_ips: Vec<IpNetwork>,
}

impl PeerChange {
    /// A section naming `public_key` and changing nothing: with
    /// `update_only` false, applying it creates the peer if it is absent.
    pub fn new(public_key: Key) -> Self {
        PeerChange {
            public_key,
            remove: false,
            update_only: false,
            preshared_key: None,
            endpoint: None,
            persistent_keepalive_interval: None,
            replace_allowed_ips: false,
            allowed_ips: Vec::new(),
        }
    }
}

/// The length of the complete request at the start of `buf`, if the blank
/// line that ends it has arrived: everything up to and including the first
/// empty line. `None` means "read more" (or, once `buf` holds
/// [`MAX_REQUEST_LEN`] bytes, "give up").
///
/// A leading `\n` is an empty request of length 1, which [`parse_request`]
/// refuses, so a server can answer it rather than wait.
pub fn request_len(buf: &[u8]) -> Option<usize> {
    if buf.first() == Some(&b'\n') {
        return Some(1);
    }
    buf.windows(2)
        .position(|pair| pair == b"\n\n")
        .map(|at| at + 2)
}
