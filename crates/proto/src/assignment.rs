//! What the control plane asks a node to run, and what the node reports
//! back: the workload half of the protocol.
//!
//! Assignments are level-triggered: each `assignments` message carries the
//! node's whole set with a revision that only grows, so an agent that
//! missed messages (a partition, a restart) converges from the latest one
//! alone, and applying one twice changes nothing. Replica reports carry the
//! revision they answer.

use crate::service::ServiceSpec;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A replica's identity: unique in the cluster and stable for the
/// replica's life (a new generation of the service makes new replicas).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplicaId(pub String);

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// One replica a node should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// Which replica.
    pub replica: ReplicaId,
    /// The service's generation it runs.
    pub generation: u64,
    /// What to run.
    pub spec: ServiceSpec,
    /// The host port for each of the spec's container ports, in order,
    /// published on the node's mesh address.
    pub host_ports: Vec<u16>,
}

/// Where a replica's container is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReplicaState {
    /// Not started yet (being created, or waiting out a restart backoff).
    Pending,
    /// Waiting for its image, which the node is pulling.
    Pulling,
    /// Its container runs.
    Running,
    /// Its container exited and will not be restarted (restart policy).
    Exited {
        /// The exit code.
        code: i64,
    },
    /// It cannot be started, and why (an image that cannot be pulled, a
    /// port that is taken): what `warren deploy --wait` shows.
    Failed {
        /// The daemon's or the agent's reason, one line.
        reason: String,
    },
}

/// What the last health checks said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Within the start period, or not running.
    Starting,
    /// Passing (or running 1 s, without a health check).
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

/// One replica as the node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// Which replica.
    pub replica: ReplicaId,
    /// The generation its container runs.
    pub generation: u64,
    /// Where its container is.
    #[serde(flatten)]
    pub state: ReplicaState,
    /// What its health checks say.
    pub health: Health,
    /// How many times the agent restarted it.
    pub restarts: u32,
    /// CPU it used lately, millicores (when running).
    #[serde(default)]
    pub cpu_millis: Option<u64>,
    /// Memory it uses, bytes (when running).
    #[serde(default)]
    pub memory: Option<u64>,
    /// When its container started, unix seconds.
    #[serde(default)]
    pub started: Option<u64>,
}

/// What a node offers to replicas, as its agent reports it at join and when
/// it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The architecture as images name it (`amd64`, `arm64`).
    pub arch: String,
    /// CPU offered to replicas, millicores (the node's cores, or
    /// `--capacity-cpu`).
    pub cpu_millis: u64,
    /// Memory offered to replicas, bytes (the node's, or
    /// `--capacity-memory`).
    pub memory: u64,
    /// Free disk on the daemon's data root, bytes, when the agent can see it.
    #[serde(default)]
    pub disk_free: Option<u64>,
    /// The Docker Engine version.
    pub docker: String,
}
