//! warren's relay: forwards end-to-end encrypted WireGuard datagrams between
//! nodes that authenticated to it, addressed by their WireGuard public keys.
//!
//! - [`core`]: the sans-IO [`Relay`](core::Relay): registration, sessions,
//!   forwarding, rate limits, counters. No sockets, no clock, no randomness
//!   beyond its seed.
//! - [`client`]: the node side, sans-IO: registration, keepalives and
//!   re-registration, reusable by the device.
//! - [`crypto`]: tickets (Ed25519), epoch keys, cookies and proof MACs.
//! - [`server`]: the tokio driver (UDP socket, `/metrics`), what `warren
//!   relay` runs.
//!
//! The wire format is in `warren-wire`; the protocol in `docs/protocol.md`.

#![forbid(unsafe_code)]

pub mod client;
pub mod core;
pub mod crypto;
pub mod drops;
pub mod limit;
pub mod metrics;
#[cfg(feature = "server")]
pub mod server;

pub use crate::core::{Config, Dropped, Relay, SessionInfo, Transmit};
pub use crate::crypto::{ControlKey, SigningKey};
pub use crate::drops::{Counters, DropCounters, DropReason};
pub use crate::limit::RateLimit;
#[cfg(feature = "server")]
pub use crate::server::{Revoker, Server, ServerError, ServerOptions};
