//! The status file: a node's own view, written to its data directory every
//! few seconds for `warren status` (which needs no admin credential).

use crate::messages::{Mode, PathReport, Report};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use warren_wire::PublicKey;

/// The file a [`Status`] is kept in, in the data directory (the agent's
/// is under `agent/`).
pub const STATUS_FILE: &str = "status.json";

/// A node's own view (see `docs/mesh.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The node's name (`control` for the control plane).
    pub name: String,
    /// The node's mesh address.
    pub mesh_ip: Ipv4Addr,
    /// How the node is part of the mesh.
    pub mode: Mode,
    /// The node's mesh interface.
    pub iface: String,
    /// Whether the node is connected to the control plane.
    pub control_connected: bool,
    /// When this was written, unix seconds.
    pub updated: u64,
    /// Every peer, by name.
    pub peers: Vec<PeerStatus>,
}

/// One peer in a [`Status`]: who it is and how this node reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The peer's name.
    pub name: String,
    /// The peer's mesh address.
    pub mesh_ip: Ipv4Addr,
    /// How this node reaches it.
    #[serde(flatten)]
    pub path: PathReport,
}

/// Who a status describes: everything but its peers and its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusOf {
    /// The node's name.
    pub name: String,
    /// The node's mesh address.
    pub mesh_ip: Ipv4Addr,
    /// How the node is part of the mesh.
    pub mode: Mode,
    /// The node's mesh interface.
    pub iface: String,
}

impl Status {
    /// The status of `node` from its latest `report`: each reported path
    /// named by `peer` (paths of peers it does not know are left out),
    /// sorted by name.
    pub fn from_report(
        node: &StatusOf,
        report: &Report,
        peer: impl Fn(&PublicKey) -> Option<(String, Ipv4Addr)>,
        control_connected: bool,
        updated: u64,
    ) -> Status {
        let mut peers: Vec<PeerStatus> = report
            .paths
            .iter()
            .filter_map(|path| {
                let (name, mesh_ip) = peer(&path.public_key)?;
                Some(PeerStatus {
                    name,
                    mesh_ip,
                    path: path.clone(),
                })
            })
            .collect();
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        Status {
            name: node.name.clone(),
            mesh_ip: node.mesh_ip,
            mode: node.mode,
            iface: node.iface.clone(),
            control_connected,
            updated,
            peers,
        }
    }
}
