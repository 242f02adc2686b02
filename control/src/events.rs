//! The cluster's events: what `warren events` lists and follows. Each is
//! one thing that happened to a node or a replica, stored (the last
//! [`KEPT`]) with an id that grows by one with each event, across restarts,
//! so a follower asks for what came after the last one it saw.

use serde::{Deserialize, Serialize};
use warren_proto::assignment::ReplicaId;

/// How many events the store keeps; older ones are dropped.
pub const KEPT: u64 = 10_000;

/// One event, as stored and served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Its place in the cluster's sequence of events.
    pub id: u64,
    /// When it happened, unix milliseconds.
    pub at_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub what: What,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum What {
    /// A node's agent connection ended (or went silent for the node
    /// timeout): the proxy stops routing to it.
    NodeOffline {
        /// The node.
        node: String,
    },
    /// A node's agent connected again.
    NodeOnline {
        /// The node.
        node: String,
    },
    /// A node was offline for the replace-after time: its replicas are
    /// placed again elsewhere.
    NodeLost {
        /// The node.
        node: String,
        /// How many replicas were on it.
        replicas: u32,
    },
    /// A node was drained (`warren node drain`).
    NodeDrained {
        /// The node.
        node: String,
    },
    /// A drained node was activated again (`warren node activate`).
    NodeActivated {
        /// The node.
        node: String,
    },
    /// A replica was placed on a node.
    ReplicaPlaced {
        /// Its service.
        service: String,
        /// The replica.
        replica: ReplicaId,
        /// The generation it runs.
        generation: u64,
        /// Its node.
        node: String,
    },
    /// A replica's node reported its container running.
    ReplicaStarted {
        /// Its service.
        service: String,
        /// The replica.
        replica: ReplicaId,
        /// Its node.
        node: String,
    },
    /// A replica's health checks passed.
    ReplicaHealthy {
        /// Its service.
        service: String,
        /// The replica.
        replica: ReplicaId,
        /// Its node.
        node: String,
    },
    /// A replica's health checks failed.
    ReplicaUnhealthy {
        /// Its service.
        service: String,
        /// The replica.
        replica: ReplicaId,
        /// Its node.
        node: String,
    },
    /// A replica was removed: its node stops its container.
    ReplicaStopped {
        /// Its service.
        service: String,
        /// The replica.
        replica: ReplicaId,
        /// Its node.
        node: String,
    },
    /// A new generation of a service began to replace the replicas of the
    /// older ones.
    RolloutStarted {
        /// The service.
        service: String,
        /// The new generation.
        generation: u64,
    },
    /// Every replica of a generation is healthy and no older one is left.
    RolloutCompleted {
        /// The service.
        service: String,
        /// The generation.
        generation: u64,
    },
    /// A generation missed its healthy deadline and is rolled back: a new
    /// generation runs the spec of the last one that completed.
    RolloutRolledBack {
        /// The service.
        service: String,
        /// The generation that missed its deadline.
        generation: u64,
        /// The generation whose spec runs again.
        to: u64,
    },
    /// A generation missed its healthy deadline and was not rolled back.
    RolloutFailed {
        /// The service.
        service: String,
        /// The generation.
        generation: u64,
    },
}

impl What {
    /// The `kind` field's value (`node_offline`, `replica_placed`…).
    pub fn kind(&self) -> &'static str {
        match self {
            What::NodeOffline { .. } => "node_offline",
            What::NodeOnline { .. } => "node_online",
            What::NodeLost { .. } => "node_lost",
            What::NodeDrained { .. } => "node_drained",
            What::NodeActivated { .. } => "node_activated",
            What::ReplicaPlaced { .. } => "replica_placed",
            What::ReplicaStarted { .. } => "replica_started",
            What::ReplicaHealthy { .. } => "replica_healthy",
            What::ReplicaUnhealthy { .. } => "replica_unhealthy",
            What::ReplicaStopped { .. } => "replica_stopped",
            What::RolloutStarted { .. } => "rollout_started",
            What::RolloutCompleted { .. } => "rollout_completed",
            What::RolloutRolledBack { .. } => "rollout_rolled_back",
            What::RolloutFailed { .. } => "rollout_failed",
        }
    }

    /// One line for people: `pi: offline, the proxy stops routing to it`.
    pub fn describe(&self) -> String {
        match self {
            What::NodeOffline { node } => format!("{node}: offline, the proxy stops routing to it"),
            What::NodeOnline { node } => format!("{node}: online again"),
            What::NodeLost { node, replicas } => {
                format!("{node}: lost, its {replicas} replica(s) rescheduled on other nodes")
            }
            What::NodeDrained { node } => format!("{node}: drained, its replicas move off"),
            What::NodeActivated { node } => format!("{node}: active, replicas may be placed on it"),
            What::ReplicaPlaced {
                replica,
                generation,
                node,
                ..
            } => format!("{replica}: placed on {node} (generation {generation})"),
            What::ReplicaStarted { replica, node, .. } => format!("{replica}: running on {node}"),
            What::ReplicaHealthy { replica, node, .. } => format!("{replica}: healthy on {node}"),
            What::ReplicaUnhealthy { replica, node, .. } => {
                format!("{replica}: unhealthy on {node}")
            }
            What::ReplicaStopped { replica, node, .. } => {
                format!("{replica}: removed, {node} stops it")
            }
            What::RolloutStarted {
                service,
                generation,
            } => format!("{service}: rolling out generation {generation}"),
            What::RolloutCompleted {
                service,
                generation,
            } => format!("{service}: generation {generation} rolled out"),
            What::RolloutRolledBack {
                service,
                generation,
                to,
            } => format!(
                "{service}: generation {generation} missed its healthy deadline, rolled back to {to}'s spec"
            ),
            What::RolloutFailed {
                service,
                generation,
            } => format!("{service}: generation {generation} missed its healthy deadline (no rollback)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_flat_json_with_its_kind() {
        let event = Event {
            id: 7,
            at_ms: 1_800_000_000_123,
            what: What::ReplicaPlaced {
                service: "web".to_owned(),
                replica: ReplicaId("web-3".to_owned()),
                generation: 2,
                node: "pi".to_owned(),
            },
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": 7, "at_ms": 1_800_000_000_123u64, "kind": "replica_placed",
                "service": "web", "replica": "web-3", "generation": 2, "node": "pi"
            })
        );
        assert_eq!(json["kind"], event.what.kind());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert_eq!(event.what.describe(), "web-3: placed on pi (generation 2)");
    }
}
