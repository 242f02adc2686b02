//! The control plane's own host as a node (`warren serve --docker-host`):
//! named [`CONTROL_NAME`], reached directly at the control plane's mesh
//! address, always online while the control plane runs, and placed on like
//! an agent's node once its runner has said what it offers
//! ([`ClusterState::record_node`]). Without `--docker-host` there is no
//! such node: a replica stored on it from an earlier run is moved.

use super::{ClusterState, NodeListing};
use crate::nodes::{NodeRecord, CONTROL_NAME};
use std::net::Ipv4Addr;
use warren_proto::Mode;

impl ClusterState {
    /// Whether `name` is the control plane's host running replicas.
    pub(super) fn is_control_node(&self, name: &str) -> bool {
        self.config.control_node && name == CONTROL_NAME
    }

    /// How `name` is reached and its mesh address: an agent's node, or the
    /// control plane's host when it runs replicas.
    pub(super) fn member(&self, name: &str) -> Option<(Mode, Ipv4Addr)> {
        if self.is_control_node(name) {
            return Some((Mode::Control, self.config.control.mesh_ip));
        }
        let node = self.config.registry.get(name)?;
        Some((node.mode, node.mesh_ip))
    }

    /// The control plane's host as `warren nodes` lists it, when it runs
    /// replicas.
    pub(super) fn control_listing(&self) -> Option<NodeListing> {
        if !self.config.control_node {
            return None;
        }
        let control = &self.config.control;
        let record = NodeRecord {
            name: CONTROL_NAME.to_owned(),
            public_key: control.public_key,
            mesh_ip: control.mesh_ip,
            mode: Mode::Control,
            private_address: None,
            wg_port: control
                .wireguard_endpoints
                .first()
                .map_or(0, std::net::SocketAddr::port),
            // It never joined, so it has no credential and no join time.
            credential_sha256: [0; 32],
            joined: 0,
        };
        Some(self.listed(record, true, None))
    }
}
