//! A node's replicas on its own Docker daemon: what `warren join
//! --docker-host` runs on a worker and `warren serve --docker-host` on the
//! control plane's host, with the same code.
//!
//! [`runtime`] is the Docker shell (bollard). Two sans-IO cores decide:
//! [`converge`] turns the node's assignments and its daemon's containers
//! into actions, and [`health`] decides when to probe a replica and what
//! the results mean. [`workloads::Runner`] is the loop that drives them
//! ([`probe`] runs the checks, [`usage`] samples CPU and memory), keeping
//! its last assignments in an [`assignments::AssignmentsFile`].
//! [`streams`] answers `warren logs` and `warren exec` for the node's
//! replicas, on whatever byte stream carries the request.

pub mod assignments;
pub mod converge;
pub mod health;
pub mod probe;
pub mod runtime;
pub mod streams;
pub mod usage;
pub mod workloads;
