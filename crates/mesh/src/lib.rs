//! Sans-IO WireGuard mesh core.
//!
//! This crate holds warren's packet-routing and peer logic with no I/O at
//! all: [`Node`] takes datagrams, IP packets and the current time, and returns
//! datagrams to send and packets to deliver. The tokio driver in
//! `warren-device` only moves bytes between it, a TUN device and a UDP socket,
//! which is what lets this logic be tested exhaustively in memory.
//!
//! What lives here: the peer table keyed by public key, cryptokey routing
//! (allowed IPs in both directions), WireGuard sessions and timers (through
//! boringtun's `Tunn`), endpoint roaming, per-peer statistics and drop
//! counters, and the [`Path`] seam that decides where a peer's datagrams go.

#![forbid(unsafe_code)]

pub mod disco;
pub mod drops;
mod node;
mod peer;
mod relays;

pub use drops::{DropCounters, DropReason, UnknownDropReason};
pub use node::{ConfigError, Dropped, Node, DATA_OVERHEAD, MAX_OVERHEAD, TIMER_TICK};
pub use peer::{
    Path, PeerConfig, PeerStats, CANDIDATE_LIFETIME, DIRECT_PROBE_INTERVAL, DIRECT_SILENCE,
    DIRECT_TRUST, MAX_PROBED_CANDIDATES,
};
/// What the node hands its driver to send; the relay protocol's, so relay
/// client frames pass through unchanged.
pub use warren_relay_proto::{LocalSocket, Transmit, Transport};
