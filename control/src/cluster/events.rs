//! The cluster's events: stored as they happen (the last
//! [`crate::events::KEPT`]), then sent to whoever follows them (`warren
//! events --follow`).

use super::ClusterState;
use crate::events::{Event, What};
use crate::liveness::Change;
use crate::store::StoreError;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;

impl ClusterState {
    /// Stores `what` as happening now and sends it to the followers. A
    /// store failure is logged: events are a record, not a decision.
    pub(super) fn emit(&mut self, what: Vec<What>) {
        if what.is_empty() {
            return;
        }
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        match self.config.store.append_events(at_ms, what) {
            Ok(events) => {
                for event in events {
                    let _ = self.event_log.send(event);
                }
            }
            Err(error) => tracing::error!(%error, "storing the cluster's events"),
        }
    }

    /// Events from now on, as they are stored.
    pub fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.event_log.subscribe()
    }

    /// Up to `limit` stored events after the one with id `after`, oldest
    /// first; with no `after`, the last `limit`.
    pub fn events(&self, after: Option<u64>, limit: u32) -> Result<Vec<Event>, StoreError> {
        self.config.store.events(after, limit)
    }

    /// The id of the latest event (0 before the first).
    pub fn last_event_id(&self) -> Result<u64, StoreError> {
        self.config.store.last_event_id()
    }

    /// Logs and records what changed about a node's liveness.
    pub(super) fn liveness_changed(&mut self, change: &Change) {
        let what = match change {
            Change::Online(node) => {
                tracing::info!(%node, "node online again");
                What::NodeOnline { node: node.clone() }
            }
            Change::Offline(node) => {
                tracing::warn!(%node, "node offline: the proxy stops routing to it");
                What::NodeOffline { node: node.clone() }
            }
            Change::Lost(node) => {
                tracing::warn!(%node, "node lost: its replicas are replaced on other nodes");
                What::NodeLost {
                    node: node.clone(),
                    replicas: self.replica_count(node),
                }
            }
        };
        self.emit(vec![what]);
    }
}
