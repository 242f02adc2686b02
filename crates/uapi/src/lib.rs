//! Codecs for configuring a warren device the way every WireGuard
//! implementation is configured: no I/O, no async, just text in and typed
//! values out (and back).
//!
//! Two formats:
//!
//! - **UAPI**, the cross-platform configuration protocol that `wg show`,
//!   `wg set` and `wg setconf` speak to userspace implementations
//!   (wireguard-go, boringtun) over `/var/run/wireguard/IFACE.sock`
//!   (<https://www.wireguard.com/xplatform/>). A server reads bytes until
//!   [`request_len`] reports a complete request, calls [`parse_request`],
//!   applies the [`Request`] (a [`SetRequest`] is parsed whole, so a bad
//!   request is refused before anything changes), and answers with
//!   [`format_get_response`] or [`format_errno`]. Clients can render a
//!   request with [`format_set_request`].
//! - **wg(8)/wg-quick configuration files**, parsed by [`parse_config_file`]
//!   into the [`SetRequest`] `wg setconf` would send plus wg-quick's
//!   `Address` and `MTU`.
//!
//! And warren's own extension of the UAPI, [`stats`]: drop counters by
//! reason, which `wg(8)` has no place for.
//!
//! Errors are typed and never echo values (which may be private keys).
//! [`UapiError::errno`] maps each UAPI error to the (negated) errno that
//! wireguard-go would answer, so `wg set` prints a sensible message.

#![forbid(unsafe_code)]

mod config_file;
pub mod errno;
mod error;
mod key;
mod request;
mod response;
pub mod stats;
mod value;

pub use config_file::{
    parse_config_file, ConfigError, ConfigErrorKind, ConfigFile, InterfaceAddress,
};
pub use errno::format_errno;
pub use error::UapiError;
pub use key::{Key, KeyError};
pub use request::{
    format_set_request, parse_request, request_len, PeerChange, Request, SetRequest, GET_REQUEST,
    MAX_REQUEST_LEN,
};
pub use response::{
    format_get_response, parse_get_response, DeviceState, GetResponseError, PeerState,
};

/// Re-exported so callers name the same prefix type this crate returns.
pub use ip_network::IpNetwork;
