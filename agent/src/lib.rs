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
//! With `--docker-host`, the node's replicas run on [`warren_runner`]
//! (the Docker runtime, the converger, health checks, the run loop), which
//! the control plane's host shares; [`streams`] takes the control plane's
//! `warren logs` and `warren exec` streams off the agent's connection.

pub mod core;
pub mod join;
pub mod leave;
mod outbox;
pub mod pinned;
pub mod session;
pub mod state;
pub mod streams;

pub use join::{run, JoinError, JoinMode, JoinOptions, Usable};
