//! warren's node agent: `warren join`.
//!
//! [`join::run`] connects to the control plane over QUIC with its
//! certificate pinned ([`pinned`]), joins with a token or rejoins with the
//! credential kept in the data directory ([`state`]), brings up the mesh
//! device with the peer map and relay ticket it is given, and then drives
//! two state machines: the [`session`] (connected or reconnecting) and the
//! sans-IO [`core`], which turns each control message into device changes
//! and each report into the status file.
//!
//! For workloads, two more sans-IO cores: [`converge`] turns the node's
//! assignments and its daemon's containers into actions, and [`health`]
//! decides when to probe a replica and what the results mean. [`streams`]
//! answers the control plane's `warren logs` and `warren exec` streams.

pub mod converge;
pub mod core;
pub mod health;
pub mod join;
pub mod pinned;
pub mod probe;
pub mod runtime;
pub mod session;
pub mod state;
pub mod streams;
pub mod usage;
pub mod workloads;

pub use join::{run, JoinError, JoinMode, JoinOptions, Usable};
