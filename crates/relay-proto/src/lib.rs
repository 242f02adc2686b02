//! The relay protocol, sans-IO: both ends of it.
//!
//! - [`core`]: the [`Relay`](core::Relay) a relay server drives:
//!   registration, sessions, forwarding, rate limits, counters. No sockets,
//!   no clock, no randomness beyond its seed.
//! - [`client`]: the node's side, which the mesh core drives from its own
//!   socket: registration, keepalives and re-registration.
//! - [`crypto`]: tickets (Ed25519), epoch keys, cookies and proof MACs.
//! - [`drops`] and [`limit`]: the relay's drop reasons and token buckets;
//! - [`transmit`]: the [`Transmit`] both ends (and the mesh core) hand
//!   their drivers: destination, local socket, transport, bytes.
//!
//! The server shell (sockets, `/metrics`) is the `warren-relay` crate; the
//! wire format is in `warren-wire`; the protocol in `docs/protocol.md`.

#![forbid(unsafe_code)]

pub mod client;
pub mod core;
pub mod crypto;
pub mod drops;
pub mod limit;
pub mod transmit;

pub use crate::core::{Config, Dropped, Relay, SessionInfo};
pub use crate::crypto::{ControlKey, SigningKey};
pub use crate::drops::{Counters, DropCounters, DropReason};
pub use crate::limit::RateLimit;
pub use crate::transmit::{LocalSocket, Transmit, Transport};
