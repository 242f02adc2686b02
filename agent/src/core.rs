//! How the agent reacts to the control plane, without I/O: messages in,
//! device changes and status out.
//!
//! [`AgentCore`] owns the agent's picture of the mesh: who it is and the
//! peer map. Feed it the welcome of every (re)connection
//! ([`AgentCore::handle_welcome`]), each message that follows
//! ([`AgentCore::handle_message`]) and each measured report
//! ([`AgentCore::status`]); carry out the [`Action`]s it returns, in order.
//! The driver in [`crate::join`] only moves bytes between it, the QUIC
//! stream and the device.

use ip_network::Ipv4Network;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use warren_proto::assignment::Assignment;
use warren_proto::{ControlMessage, Peer, Report, Status, StatusOf, Welcome};
use warren_uapi::{IpNetwork, PeerChange, SetRequest};
use warren_wire::{PublicKey, Ticket};

/// Keepalive for every peer: keeps NAT mappings open and paths probed.
pub const PERSISTENT_KEEPALIVE: u16 = 25;

/// The mesh prefix lengths an agent accepts from a control plane: a /8 at
/// the widest, two hosts at the narrowest.
pub const MESH_PREFIXES: RangeInclusive<u8> = 8..=30;

/// A welcome the agent refuses: its mesh prefix is out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the control plane gave the mesh prefix /{0}; an agent accepts /8 to /30")]
pub struct BadMeshPrefix(pub u8);

/// The mesh network `welcome` puts this node in, if its prefix is one the
/// agent accepts.
pub fn mesh_network(welcome: &Welcome) -> Result<Ipv4Network, BadMeshPrefix> {
    if !MESH_PREFIXES.contains(&welcome.mesh_prefix) {
        return Err(BadMeshPrefix(welcome.mesh_prefix));
    }
    Ipv4Network::new_truncate(welcome.mesh_ip, welcome.mesh_prefix)
        .map_err(|_| BadMeshPrefix(welcome.mesh_prefix))
}

/// `welcome` with only the peers the agent takes: those whose address lies
/// inside the mesh network and is not this node's own. A peer's address
/// becomes a route into the tunnel, so a control plane (or a thief of its
/// TLS key) must not be able to route anything else there: DNS servers,
/// mirrors, cloud metadata. Each peer left out is logged.
pub fn checked_welcome(welcome: &Welcome) -> Result<Welcome, BadMeshPrefix> {
    let network = mesh_network(welcome)?;
    Ok(Welcome {
        peers: inside(&network, welcome.mesh_ip, &welcome.peers),
        ..welcome.clone()
    })
}

/// The peers of `peers` inside `network`, other than `me`.
fn inside(network: &Ipv4Network, me: Ipv4Addr, peers: &[Peer]) -> Vec<Peer> {
    peers
        .iter()
        .filter(|peer| {
            let fits = network.contains(peer.mesh_ip) && peer.mesh_ip != me;
            if !fits {
                tracing::warn!(peer = %peer.name, mesh_ip = %peer.mesh_ip, %network, "ignoring a peer outside the mesh network");
            }
            fits
        })
        .cloned()
        .collect()
}

/// What the driver does for the core.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Apply these peer changes to the device.
    Configure(SetRequest),
    /// Probe these candidates of a peer (NAT traversal).
    PeerCandidates {
        /// The peer.
        peer: PublicKey,
        /// Its candidates, likeliest first.
        candidates: Vec<SocketAddr>,
    },
    /// Register with the relays again with this ticket.
    RenewTicket(Ticket),
    /// Run these replicas (the whole set; newer than the last one).
    Assign {
        /// The set's revision.
        revision: u64,
        /// The replicas.
        replicas: Vec<Assignment>,
    },
}

/// The agent's picture of the mesh (see the module doc).
#[derive(Debug, Clone)]
pub struct AgentCore {
    me: StatusOf,
    peers: HashMap<PublicKey, Peer>,
    connected: bool,
    last_report: Option<Report>,
    /// The latest welcome, with the peer map and ticket kept current: what
    /// the agent stores to start from when the control plane is away.
    mesh_map: Option<Welcome>,
    /// The mesh network of the latest welcome: peers outside it are
    /// ignored.
    network: Option<Ipv4Network>,
}

impl AgentCore {
    /// The core of a node described by `me`, before any welcome.
    pub fn new(me: StatusOf) -> AgentCore {
        AgentCore {
            me,
            peers: HashMap::new(),
            connected: false,
            last_report: None,
            mesh_map: None,
            network: None,
        }
    }

    /// The mesh as the control plane last described it, kept current with
    /// every update since (never with a credential): what to bring the mesh
    /// up from after a restart while the control plane is unreachable.
    pub fn mesh_map(&self) -> Option<&Welcome> {
        self.mesh_map.as_ref()
    }

    /// Starts from a stored mesh map, not connected: the device is brought
    /// up from it, and the next welcome replaces it.
    pub fn handle_stored(&mut self, map: &Welcome) {
        self.handle_welcome(map);
        self.connected = false;
    }

    /// The current peers.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// Whether the control plane is connected.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// The welcome of a (re)connection: its peer map replaces the old one.
    /// Peers that are gone (removed while this node was away) are removed
    /// from the device; the others are added or updated in place, which
    /// keeps their sessions.
    /// A welcome whose mesh prefix is out of range changes nothing;
    /// peers outside its network are left out ([`checked_welcome`]).
    pub fn handle_welcome(&mut self, welcome: &Welcome) -> Vec<Action> {
        let network = match mesh_network(welcome) {
            Ok(network) => network,
            Err(error) => {
                tracing::warn!(%error, "ignoring the welcome");
                return Vec::new();
            }
        };
        let welcome = &Welcome {
            peers: inside(&network, welcome.mesh_ip, &welcome.peers),
            ..welcome.clone()
        };
        self.network = Some(network);
        self.connected = true;
        self.me.name = welcome.name.clone();
        self.me.mesh_ip = welcome.mesh_ip;
        let gone: Vec<PublicKey> = self
            .peers
            .keys()
            .filter(|key| !welcome.peers.iter().any(|peer| peer.public_key == **key))
            .copied()
            .collect();
        self.peers = welcome
            .peers
            .iter()
            .map(|peer| (peer.public_key, peer.clone()))
            .collect();
        self.mesh_map = Some(Welcome {
            credential: None,
            ..welcome.clone()
        });
        vec![Action::Configure(peer_changes(&welcome.peers, &gone))]
    }

    /// A message after the welcome.
    pub fn handle_message(&mut self, message: ControlMessage) -> Vec<Action> {
        match message {
            ControlMessage::Peers { added, removed } => {
                let added = match &self.network {
                    Some(network) => inside(network, self.me.mesh_ip, &added),
                    None => Vec::new(),
                };
                for peer in &added {
                    self.peers.insert(peer.public_key, peer.clone());
                }
                for key in &removed {
                    self.peers.remove(key);
                }
                if let Some(map) = &mut self.mesh_map {
                    map.peers.retain(|peer| {
                        !removed.contains(&peer.public_key)
                            && !added.iter().any(|new| new.public_key == peer.public_key)
                    });
                    map.peers.extend(added.iter().cloned());
                }
                tracing::info!(
                    added = added.len(),
                    removed = removed.len(),
                    "peer map updated"
                );
                vec![Action::Configure(peer_changes(&added, &removed))]
            }
            ControlMessage::Candidates {
                public_key,
                candidates,
            } if self.peers.contains_key(&public_key) => vec![Action::PeerCandidates {
                peer: public_key,
                candidates,
            }],
            ControlMessage::Ticket { ticket } => {
                if let Some(map) = &mut self.mesh_map {
                    map.ticket = ticket;
                }
                vec![Action::RenewTicket(ticket)]
            }
            ControlMessage::Candidates { .. } => Vec::new(),
            ControlMessage::Assignments { revision, replicas } => {
                vec![Action::Assign { revision, replicas }]
            }
            ControlMessage::Welcome(_) | ControlMessage::Refused { .. } => {
                tracing::debug!("ignoring a second answer to the hello");
                Vec::new()
            }
            // A kind a newer control plane added: nothing to do with it.
            _ => Vec::new(),
        }
    }

    /// The control plane connection was lost.
    pub fn handle_disconnected(&mut self) {
        self.connected = false;
    }

    /// Takes a freshly measured report; returns the status to write at
    /// `now` (unix seconds).
    pub fn handle_report(&mut self, report: Report, now: u64) -> Status {
        self.last_report = Some(report);
        self.status(now)
    }

    /// The status as of the last report (no peers before the first one).
    pub fn status(&self, now: u64) -> Status {
        let empty = Report {
            paths: Vec::new(),
            candidates: Vec::new(),
        };
        let report = self.last_report.as_ref().unwrap_or(&empty);
        Status::from_report(
            &self.me,
            report,
            |key| {
                self.peers
                    .get(key)
                    .map(|peer| (peer.name.clone(), peer.mesh_ip))
            },
            self.connected,
            now,
        )
    }
}

/// The UAPI changes that add `added` (replacing what the device had of
/// them: endpoint and allowed IPs, keeping the session) and remove `removed`.
pub fn peer_changes(added: &[Peer], removed: &[PublicKey]) -> SetRequest {
    let mut set = SetRequest::default();
    for peer in added {
        set.peers.push(PeerChange {
            endpoint: peer.endpoints.first().copied(),
            persistent_keepalive_interval: Some(PERSISTENT_KEEPALIVE),
            replace_allowed_ips: true,
            allowed_ips: vec![IpNetwork::V4(Ipv4Network::from(peer.mesh_ip))],
            ..PeerChange::new(peer.public_key.into())
        });
    }
    for key in removed {
        set.peers.push(PeerChange {
            remove: true,
            ..PeerChange::new((*key).into())
        });
    }
    set
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
