//! warren's relay server: the shell around the sans-IO relay core of
//! `warren-relay-proto`. It owns the UDP socket, batches datagrams into the
//! core and back out, and serves `/metrics`; `warren relay` and the control
//! plane's embedded relay run it.
//!
//! - [`server`]: the tokio driver.
//! - [`running`]: the driver on a thread of its own (the embedded relay).
//! - [`metrics`]: the Prometheus text of the core's counters.

#![forbid(unsafe_code)]

pub mod metrics;
pub mod running;
pub mod server;

pub use crate::running::RunningRelay;
pub use crate::server::{Revoker, Server, ServerError, ServerOptions};
