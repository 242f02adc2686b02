//! warren's control plane: the state (SQLite), mesh address allocation,
//! join tokens, the admin API the CLI talks to, and `warren serve`, which
//! runs them with an embedded relay.
//!
//! The decisions are pure and tested on their own: [`ipam`] hands out mesh
//! addresses, [`tokens`] issues and checks join tokens. [`store`] persists
//! them, [`identity`] keeps the keys and certificate in the data directory,
//! [`api`] serves the admin HTTP API, and [`serve`] wires it all together.

pub mod acme;
pub mod admission;
pub mod agent_endpoint;
pub mod agent_links;
pub mod api;
pub mod cluster;
mod control_device;
pub mod control_node;
pub mod draining;
pub mod events;
mod host_checks;
pub mod identity;
pub mod ipam;
pub mod liveness;
pub mod mesh_view;
pub mod nodes;
pub mod outbound;
mod own_report;
pub mod proxy;
pub mod reconcile;
pub mod scheduler;
pub mod serve;
pub mod store;
#[cfg(test)]
mod test_hello;
pub mod tokens;
pub mod update_delay;
pub mod webhooks;
pub mod workloads;

pub use identity::{Identity, IdentityError};
pub use ipam::{AllocError, Allocator};
pub use serve::{serve, FailureDetection, ProxyOptions, ServeError, ServeOptions};
pub use store::{Store, StoreError};
