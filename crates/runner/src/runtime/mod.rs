//! The node runtime: warren's replicas as containers on the node's own
//! Docker daemon, through bollard over the daemon's unix socket.
//!
//! [`Runtime::connect`] negotiates the Engine API version from the
//! daemon's unversioned `/version` and pins every request to it
//! ([`version`], [`engine`]). Then:
//! - [`containers`]: [`Runtime::run_replica`] from a [`ReplicaSpec`]
//!   (labels `warren.service`, `warren.replica`, `warren.generation`,
//!   `warren.attempt`; ports bound on the mesh IP only; no Docker restart
//!   policy), [`Runtime::list_ours`], [`Runtime::inspect`],
//!   [`Runtime::stop`], [`Runtime::remove`], [`Runtime::image_present`],
//!   [`Runtime::pull_image`]. Calls by id refuse containers without
//!   warren's labels;
//! - [`stats`]: [`Runtime::node_facts`] and [`Runtime::container_stats`];
//! - [`logs`]: [`Runtime::logs`] as a stream of lines;
//! - [`exec`]: [`Runtime::exec`], its output and exit code.
//!
//! Translating specs, labels, versions, stats and output frames is pure
//! ([`spec`], [`version`], the functions in [`stats`], [`logs::LineSplitter`])
//! and unit-tested; the rest is a thin shell over bollard, tested against
//! a real dockerd in `netns-tests/tests/docker_runtime.rs`. docs/workloads.md
//! says what is sent on the wire and which daemons are supported.

pub mod containers;
pub mod engine;
pub mod error;
pub mod exec;
pub mod logs;
pub mod spec;
pub mod stats;
pub mod version;

#[cfg(test)]
mod wire_tests;

pub use containers::{ContainerInfo, ContainerStatus, OurContainer};
pub use engine::{DaemonVersion, Runtime};
pub use error::RuntimeError;
pub use exec::ExecSession;
pub use logs::{LogLine, LogLines, LogOptions, LogStream};
pub use spec::{PortMapping, ReplicaLabels, ReplicaSpec};
pub use stats::{ContainerUsage, NodeFacts};
pub use version::{ApiVersion, VersionError};
