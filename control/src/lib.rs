//! warren's control plane: the state (SQLite), mesh address allocation,
//! join tokens, the admin API the CLI talks to, and `warren serve`, which
//! runs them with an embedded relay.
//!
//! The decisions are pure and tested on their own: [`alloc`] hands out mesh
//! addresses, [`tokens`] issues and checks join tokens. [`store`] persists
//! them, [`identity`] keeps the keys and certificate in the data directory,
//! [`api`] serves the admin HTTP API, and [`serve`] wires it all together.

pub mod agents;
pub mod alloc;
pub mod api;
pub mod identity;
pub mod mesh;
pub mod nodes;
pub mod serve;
pub mod store;
pub mod tokens;

pub use alloc::{AllocError, Allocator};
pub use identity::{Identity, IdentityError};
pub use serve::{serve, ServeError, ServeOptions};
pub use store::{Store, StoreError};
