//! warren's node agent: `warren join`.
//!
//! [`join::run`] connects to the control plane over QUIC with its
//! certificate pinned ([`pinned`]), joins with a token or rejoins with the
//! credential kept in the data directory ([`state`]), brings up the mesh
//! device with the peer map and relay ticket it is given, and applies the
//! peer-map updates that follow.

pub mod join;
pub mod pinned;
pub mod state;

pub use join::{run, JoinError, JoinMode, JoinOptions, Usable};
