//! What the operator sets on nodes for placement: labels (`warren node
//! label`); drain (`warren node drain`), which moves a node's replicas
//! elsewhere (replacements healthy before the originals go) and keeps new
//! ones off it until `warren node activate`; and removal of a node that runs
//! replicas (`warren node rm`), which marks it leaving, moves its replicas
//! the same way and removes the node once it runs none.

use super::{ClusterState, RemoveError};
use crate::events::What;
use crate::nodes::CONTROL_NAME;
use crate::store::{NodeSettings, StoreError};
use std::collections::BTreeMap;
use warren_proto::service::{is_label_key, is_label_value, shorten};

/// Labels every node has, which the operator cannot set.
pub const BUILTIN_LABELS: [&str; 2] = ["node", "arch"];

/// Why a node command changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeCommandError {
    /// No node has that name.
    #[error("no node is called {0:?} (see `warren nodes`)")]
    Unknown(String),
    /// A label is not `KEY=VALUE` with a valid key and value.
    #[error("invalid label {0:?}: KEY=VALUE, each of letters, digits, '-', '_' and '.', at most 63 bytes")]
    Label(String),
    /// A label every node has was given.
    #[error("the label {0:?} is built in (every node has `node` and `arch`)")]
    Builtin(String),
    /// The control plane's own host takes no labels.
    #[error("{CONTROL_NAME} is the control plane's own host and takes no labels: constrain on node=={CONTROL_NAME} or node!={CONTROL_NAME}")]
    ControlPlane,
    /// The control plane's own host is not drained.
    #[error("{CONTROL_NAME} is the control plane's own host and is not drained: restart `warren serve` without --docker-host to move its replicas off it")]
    ControlPlaneDrain,
    /// `--force` stops the replicas of a drained node only.
    #[error(
        "{0} is not drained: `warren node drain {0} --force` drains it and stops what is left"
    )]
    NotDrained(String),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `warren node rm` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The node is gone.
    Removed,
    /// Its replicas are moving; the node goes once they have.
    Leaving {
        /// Replicas still on it.
        replicas: u32,
    },
}

/// Parses `KEY=VALUE`.
pub fn parse_label(text: &str) -> Result<(String, String), NodeCommandError> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| NodeCommandError::Label(shorten(text)))?;
    if !is_label_key(key) || !is_label_value(value) {
        return Err(NodeCommandError::Label(shorten(text)));
    }
    if BUILTIN_LABELS.contains(&key) {
        return Err(NodeCommandError::Builtin(key.to_owned()));
    }
    Ok((key.to_owned(), value.to_owned()))
}

impl ClusterState {
    /// Sets `set` and removes `unset` on the labels of `node`, then places
    /// what now fits; returns its labels.
    pub fn label_node(
        &mut self,
        node: &str,
        set: BTreeMap<String, String>,
        unset: &[String],
        now: u64,
    ) -> Result<BTreeMap<String, String>, NodeCommandError> {
        if node == CONTROL_NAME {
            return Err(NodeCommandError::ControlPlane);
        }
        if self.config.registry.get(node).is_none() {
            return Err(NodeCommandError::Unknown(node.to_owned()));
        }
        if let Some(key) = set.keys().chain(unset).find(|k| !is_label_key(k)) {
            return Err(NodeCommandError::Label(shorten(key)));
        }
        let mut labels = self.node_settings(node).labels;
        for key in unset {
            labels.remove(key);
        }
        labels.extend(set);
        self.config.store.set_node_labels(node, &labels)?;
        self.workloads
            .settings
            .entry(node.to_owned())
            .or_default()
            .labels
            .clone_from(&labels);
        self.node_changed(node);
        self.converge_workloads(now);
        Ok(labels)
    }

    /// Removes `node`: at once when it runs no replica (or `force`: its
    /// replicas are then placed elsewhere as lost ones), otherwise once
    /// its replicas have moved.
    pub fn remove_node(
        &mut self,
        node: &str,
        force: bool,
        now: u64,
    ) -> Result<Removal, RemoveError> {
        if node == CONTROL_NAME {
            return Err(RemoveError::ControlPlane);
        }
        if self.config.registry.get(node).is_none() {
            return Err(RemoveError::Unknown(node.to_owned()));
        }
        if force || self.replica_count(node) == 0 {
            self.remove(node)?;
            self.converge_workloads(now);
            return Ok(Removal::Removed);
        }
        self.config.store.set_node_leaving(node, true)?;
        self.workloads
            .settings
            .entry(node.to_owned())
            .or_default()
            .leaving = true;
        self.node_changed(node);
        tracing::info!(%node, "node leaving: moving its replicas");
        self.converge_workloads(now);
        match self.replica_count(node) {
            0 => Ok(Removal::Removed),
            replicas => Ok(Removal::Leaving { replicas }),
        }
    }

    /// Drains `node` (or, with `drained` false, activates it again): its
    /// replicas move to other nodes, each going once its replacement is
    /// healthy, and nothing new is placed there. Returns how many replicas
    /// are still on it.
    pub fn drain_node(
        &mut self,
        node: &str,
        drained: bool,
        now: u64,
    ) -> Result<u32, NodeCommandError> {
        if node == CONTROL_NAME {
            return Err(NodeCommandError::ControlPlaneDrain);
        }
        if self.config.registry.get(node).is_none() {
            return Err(NodeCommandError::Unknown(node.to_owned()));
        }
        if self.node_settings(node).drained != drained {
            self.config.store.set_node_drained(node, drained)?;
            self.workloads
                .settings
                .entry(node.to_owned())
                .or_default()
                .drained = drained;
            self.node_changed(node);
            let node = node.to_owned();
            let what = match drained {
                true => {
                    tracing::info!(%node, "node drained: moving its replicas");
                    What::NodeDrained { node }
                }
                false => {
                    tracing::info!(%node, "node active again: replicas may be placed there");
                    What::NodeActivated { node }
                }
            };
            self.emit(vec![what]);
        }
        self.converge_workloads(now);
        Ok(self.replica_count(node))
    }

    /// Removes the leaving nodes that no longer run a replica.
    pub(super) fn finish_leaving(&mut self) {
        let done: Vec<String> = self
            .workloads
            .settings
            .iter()
            .filter(|(name, settings)| settings.leaving && self.replica_count(name) == 0)
            .map(|(name, _)| name.clone())
            .collect();
        for name in done {
            match self.remove(&name) {
                Ok(_) => tracing::info!(node = %name, "node left: its replicas moved"),
                Err(error) => tracing::error!(node = %name, %error, "removing a node that left"),
            }
        }
    }

    /// The settings of `node` (none set: the defaults).
    pub fn node_settings(&self, node: &str) -> NodeSettings {
        self.workloads
            .settings
            .get(node)
            .cloned()
            .unwrap_or_default()
    }

    /// How many replicas are placed on `node`.
    pub fn replica_count(&self, node: &str) -> u32 {
        self.workloads.replica_count(node)
    }
}
