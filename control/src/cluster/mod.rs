//! The control plane's shared state and its one owner.
//!
//! [`ClusterState`] holds everything the QUIC endpoint, the admin API and
//! the control plane's own device share: the store, the node registry, the
//! open agent connections and their latest reports. Its methods are plain
//! synchronous code that commits to the store before it changes anything
//! in memory or tells anyone (peer-map events go out after the commit).
//!
//! [`Cluster`] is the handle: the state lives on a thread of its own, and
//! [`Cluster::with`] runs a closure on it and hands back the result, so
//! there is exactly one owner, no lock order to keep, and SQLite's fsyncs
//! never run on the threads that move packets. Later, several control-plane
//! processes can share the store behind the same methods.

mod certs;
mod control_node;
mod events;
mod node_settings;
mod rollouts;
mod routes;
mod workloads;

pub use certs::{CertCommandError, CertView};
pub use node_settings::{parse_label, NodeCommandError, Removal, BUILTIN_LABELS};
pub use rollouts::{spec_changes, RollbackError};
pub use workloads::{ReplicaView, ServiceView, WorkloadCommandError, Workloads};

use crate::admission::{self, Decision, Refusal, Snapshot};
use crate::liveness::{self, Liveness};
use crate::mesh_view::{self, ControlMember, MeshView};
use crate::nodes::{NodeRecord, Registry, CONTROL_NAME};
use crate::proxy::RouteTable;
use crate::scheduler::Reach;
use crate::store::{NodeSettings, RedeemError, Store, StoreError};
use ip_network::Ipv4Network;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use warren_proto::assignment::NodeReport;
use warren_proto::{ControlMessage, Hello, Mode, Peer, RefusalCode, Report, Welcome};
use warren_relay::Revoker;
use warren_relay_proto::SigningKey;
use warren_wire::{PublicKey, Ticket};

/// How many peer-map events a slow subscriber may fall behind before it
/// must resynchronise.
const EVENT_BACKLOG: usize = 256;

/// A change to the peer map, for every connected agent and the control
/// plane's own device.
#[derive(Debug, Clone)]
pub enum PeerEvent {
    /// A node joined or rejoined.
    Joined(NodeRecord),
    /// A node was removed.
    Left(NodeRecord),
    /// A node reported new NAT traversal candidates.
    Candidates {
        /// The node.
        node: NodeRecord,
        /// Its candidates, likeliest first.
        candidates: Vec<SocketAddr>,
    },
    /// The replicas changed: each agent fetches its node's assignments.
    Assignments,
}

/// What the cluster is configured with when the control plane starts.
pub struct ClusterConfig {
    /// The state store, already open.
    pub store: Store,
    /// The nodes loaded from it.
    pub registry: Registry,
    /// Signs relay tickets.
    pub signing_key: Arc<SigningKey>,
    /// How long the tickets it hands out last.
    pub ticket_lifetime: Duration,
    /// The relays agents register with, in order of preference.
    pub relays: Vec<SocketAddr>,
    /// The mesh CIDR.
    pub mesh: Ipv4Network,
    /// The control plane as a mesh member.
    pub control: ControlMember,
    /// The embedded relay, told at once when a node is removed.
    pub revoker: Option<Revoker>,
    /// The host ports replicas publish on (`warren serve --host-ports`).
    pub host_ports: std::ops::RangeInclusive<u16>,
    /// Whether the control plane's host runs replicas (`warren serve
    /// --docker-host`): it is then the node [`CONTROL_NAME`] to placement.
    pub control_node: bool,
    /// How long a node is offline before its replicas are replaced
    /// (`warren serve --replace-after`).
    pub replace_after: Duration,
    /// When the control plane started: no node is given up on within
    /// [`crate::liveness::STARTUP_GRACE`] of it.
    pub started: Instant,
}

/// The shared state (see the module doc).
pub struct ClusterState {
    config: ClusterConfig,
    workloads: Workloads,
    events: broadcast::Sender<PeerEvent>,
    online: HashMap<String, Online>,
    /// When nodes that went away are given up on.
    liveness: Liveness,
    reports: HashMap<String, (SystemTime, Report)>,
    /// Reports dropped for coming too soon ([`MIN_REPORT_GAP`]).
    reports_dropped: u64,
    next_connection: u64,
    /// The proxy's routing table, as last published.
    routes: watch::Sender<Arc<RouteTable>>,
    /// The cluster's events as they are stored, for followers.
    event_log: broadcast::Sender<crate::events::Event>,
    /// The proxy's certificates, and the table the TLS listener follows.
    certs: certs::Certs,
    cert_table: watch::Sender<Arc<crate::proxy::certs::CertTable>>,
}

/// An open agent connection.
#[derive(Debug, Clone, Copy)]
struct Online {
    connection: ConnectionId,
    remote: SocketAddr,
}

/// Tells apart two connections of one node, so the older one ending does
/// not mark the node offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionId(u64);

/// An admitted agent: its node and the welcome to send.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The node as stored.
    pub node: NodeRecord,
    /// What the agent is told.
    pub welcome: Welcome,
    /// The connection, for [`ClusterState::disconnected`].
    pub connection: ConnectionId,
}

/// Why a node could not be removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    /// No node has that name.
    #[error("no node is called {0:?} (see `warren nodes`)")]
    Unknown(String),
    /// The control plane's own host is not removed.
    #[error("{CONTROL_NAME} is the control plane's own host and cannot be removed; restart `warren serve` without --docker-host to move its replicas off it")]
    ControlPlane,
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A node as `warren nodes` lists it.
#[derive(Debug, Clone)]
pub struct NodeListing {
    /// The node as stored.
    pub node: NodeRecord,
    /// Whether it is up: its agent is connected (the control plane's host
    /// always is).
    pub online: bool,
    /// Where its agent connects from, while connected.
    pub connected_from: Option<SocketAddr>,
    /// What its agent last reported of its machine.
    pub report: Option<NodeReport>,
    /// What the operator set on it.
    pub settings: NodeSettings,
    /// How many replicas are placed on it.
    pub replicas: u32,
}

impl ClusterState {
    /// The state over `config`, with the workloads its store holds.
    pub fn new(config: ClusterConfig) -> Result<ClusterState, StoreError> {
        let workloads = Workloads::load(&config.store, config.host_ports.clone())?;
        let certs = certs::Certs::load(&config.store)?;
        let cert_table = watch::Sender::new(Arc::new(certs.table()));
        let liveness = Liveness::new(
            config.replace_after,
            config.started,
            config.registry.nodes().map(|node| node.name.as_str()),
        );
        let mut state = ClusterState {
            config,
            workloads,
            events: broadcast::channel(EVENT_BACKLOG).0,
            event_log: broadcast::channel(EVENT_BACKLOG).0,
            online: HashMap::new(),
            liveness,
            reports: HashMap::new(),
            reports_dropped: 0,
            next_connection: 0,
            routes: watch::Sender::new(Arc::new(RouteTable::default())),
            certs,
            cert_table,
        };
        let names: Vec<String> = state.node_names().map(str::to_owned).collect();
        for name in names {
            state.node_changed(&name);
        }
        state.publish_routes();
        Ok(state)
    }

    /// Peer-map events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PeerEvent> {
        self.events.subscribe()
    }

    /// The nodes now.
    pub fn registry(&self) -> &Registry {
        &self.config.registry
    }

    /// The store, for what the admin API reads and writes directly (tokens).
    pub fn store(&mut self) -> &mut Store {
        &mut self.config.store
    }

    /// How long the relay tickets it hands out last.
    pub fn ticket_lifetime(&self) -> Duration {
        self.config.ticket_lifetime
    }

    /// Answers `hello` from `remote` at `now` (unix seconds) with `random`
    /// for a new credential: a welcome once the join is stored, or a
    /// refusal that changed nothing. What the hello says the node offers
    /// is taken at once, so it can be placed on right away.
    pub fn admit(
        &mut self,
        hello: &Hello,
        remote: SocketAddr,
        now: u64,
        random: [u8; 32],
    ) -> Result<Admitted, Refusal> {
        let token = match &hello.auth {
            warren_proto::Auth::Token { id, .. } => {
                self.config.store.token(&id.0).map_err(internal)?
            }
            warren_proto::Auth::Credential { .. } => None,
        };
        let snapshot = Snapshot {
            registry: &self.config.registry,
            token: token.as_ref(),
            control_key: self.config.control.public_key,
        };
        let (node, credential) = match admission::decide(&snapshot, hello, now, random)? {
            Decision::Join {
                node,
                token,
                token_secret,
                credential,
            } => {
                self.config
                    .store
                    .join(&token.0, &token_secret.0, &node, now)
                    .map_err(|error| match error {
                        RedeemError::Refused(refused) => Refusal::from(refused),
                        RedeemError::Store(error) => internal(error),
                    })?;
                self.config
                    .registry
                    .insert(node.clone())
                    .map_err(internal)?;
                tracing::info!(name = %node.name, mesh_ip = %node.mesh_ip, mode = %node.mode, "node joined");
                (node, Some(credential))
            }
            Decision::Rejoin { node, changed } => {
                if changed {
                    self.config.store.update_node(&node).map_err(internal)?;
                    self.config.registry.replace(node.clone());
                    tracing::info!(name = %node.name, mode = %node.mode, "node rejoined with new details");
                }
                tracing::info!(name = %node.name, mesh_ip = %node.mesh_ip, "node rejoined");
                (node, None)
            }
        };
        let welcome = self.welcome(&node, credential, now);
        let connection = ConnectionId(self.next_connection);
        self.next_connection += 1;
        self.online
            .insert(node.name.clone(), Online { connection, remote });
        if let Some(change) = self.liveness.connected(&node.name) {
            self.liveness_changed(&change);
        }
        self.node_changed(&node.name);
        let _ = self.events.send(PeerEvent::Joined(node.clone()));
        if let Some(machine) = &hello.machine {
            self.record_node(&node.name, machine.clone(), now);
        }
        Ok(Admitted {
            node,
            welcome,
            connection,
        })
    }

    fn welcome(
        &self,
        node: &NodeRecord,
        credential: Option<warren_proto::Secret>,
        now: u64,
    ) -> Welcome {
        let control = &self.config.control;
        let mut peers = vec![Peer {
            name: CONTROL_NAME.to_owned(),
            public_key: control.public_key,
            mesh_ip: control.mesh_ip,
            mode: Mode::Control,
            endpoints: control.wireguard_endpoints.clone(),
        }];
        peers.extend(
            self.config
                .registry
                .nodes()
                .filter(|n| n.name != node.name)
                .map(peer_of),
        );
        Welcome {
            name: node.name.clone(),
            mesh_ip: node.mesh_ip,
            mesh_prefix: self.config.mesh.netmask(),
            credential,
            relays: self.config.relays.clone(),
            ticket: self.mint(node.public_key, now),
            peers,
        }
    }

    fn mint(&self, key: PublicKey, now: u64) -> Ticket {
        self.config
            .signing_key
            .mint(key, now + self.config.ticket_lifetime.as_secs())
    }

    /// A fresh relay ticket for `name` at `now`, unless it was removed.
    pub fn renew_ticket(&self, name: &str, now: u64) -> Option<Ticket> {
        let node = self.config.registry.get(name)?;
        Some(self.mint(node.public_key, now))
    }

    /// The connection `connection` of `name` ended at `now`: the node is
    /// offline (unless a newer connection of it is open).
    pub fn disconnected(&mut self, name: &str, connection: ConnectionId, now: Instant) {
        if self
            .online
            .get(name)
            .is_some_and(|online| online.connection == connection)
        {
            self.online.remove(name);
            if let Some(change) = self.liveness.disconnected(name, now) {
                self.liveness_changed(&change);
            }
            self.node_changed(name);
            self.workloads.forget_health_on(name);
        }
    }

    /// Ends the rollouts past their healthy deadline at `unix_now` (unix
    /// seconds), gives up on nodes offline for the replace-after time by
    /// `now` and places their replicas' replacements, stops the draining
    /// replicas that have no request in flight any more (`busy` holds the
    /// replica addresses the proxy has requests in flight to) or whose
    /// grace is over, and ends update delays that are over; returns when to
    /// call it again at the latest for the nodes and the delays (rollouts
    /// and draining replicas are checked each call).
    pub fn tick(
        &mut self,
        now: Instant,
        unix_now: u64,
        busy: &HashSet<SocketAddr>,
    ) -> Option<Instant> {
        self.check_deadlines(unix_now);
        let lost = self.liveness.poll(now);
        for change in &lost {
            self.liveness_changed(change);
            if let liveness::Change::Lost(name) = change {
                self.node_changed(name);
            }
        }
        if !lost.is_empty() {
            self.converge_workloads(unix_now);
        }
        self.drain_and_resume(now, busy, unix_now);
        [self.liveness.poll_timeout(), self.next_resume()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Removes the node `name`: from the store first, then the registry
    /// (its address is free again), and tells everyone (its own connection
    /// closes, the others and the control plane's device drop it).
    pub fn remove(&mut self, name: &str) -> Result<NodeRecord, RemoveError> {
        if self.config.registry.get(name).is_none() {
            return Err(RemoveError::Unknown(name.to_owned()));
        }
        self.config.store.remove_node(name)?;
        let node = self
            .config
            .registry
            .remove(name)
            .ok_or_else(|| RemoveError::Unknown(name.to_owned()))?;
        self.reports.remove(name);
        self.workloads.forget_node(name);
        self.liveness.removed(name);
        self.node_changed(name);
        let _ = self.events.send(PeerEvent::Left(node.clone()));
        if let Some(revoker) = &self.config.revoker {
            // Longer than any ticket the node may still hold.
            revoker.revoke(node.public_key, self.config.ticket_lifetime * 2);
        }
        tracing::info!(%name, mesh_ip = %node.mesh_ip, "node removed");
        Ok(node)
    }

    /// Keeps `name`'s latest report (the control plane's own under
    /// [`CONTROL_NAME`]), received `at`; new candidates go to every peer.
    ///
    /// A joined node is trusted only so far: a report within
    /// [`MIN_REPORT_GAP`] of its last one is dropped (and counted, in
    /// [`ClusterState::reports_dropped`]), its candidates are cut to usable
    /// unicast addresses, [`MAX_CANDIDATES`] at most (each is probed by
    /// every peer), and its paths to one per node.
    pub fn record_report(&mut self, name: &str, mut report: Report, at: SystemTime) {
        if name == CONTROL_NAME {
            self.record_own_paths(report, at);
            return;
        }
        let too_soon = self.reports.get(name).is_some_and(|(last, _)| {
            at.duration_since(*last)
                .is_ok_and(|gap| gap < MIN_REPORT_GAP)
        });
        if too_soon {
            self.reports_dropped += 1;
            tracing::debug!(node = name, "a report too soon after the last: dropped");
            return;
        }
        report.candidates = usable_candidates(&report.candidates);
        report
            .paths
            .truncate(self.config.registry.nodes().count() + 1);
        let candidates = report.candidates.clone();
        let previous = self
            .reports
            .insert(name.to_owned(), (at, report))
            .map(|(_, old)| old.candidates);
        if candidates.is_empty() || previous.as_ref() == Some(&candidates) {
            return;
        }
        if let Some(node) = self.config.registry.get(name) {
            let _ = self.events.send(PeerEvent::Candidates {
                node: node.clone(),
                candidates,
            });
        }
    }

    /// The control plane's own paths: placement follows the measured reach
    /// of every node whose path kind changed.
    fn record_own_paths(&mut self, report: Report, at: SystemTime) {
        let before: Vec<(String, Reach)> = self
            .config
            .registry
            .nodes()
            .map(|node| (node.name.clone(), self.reach_of(node)))
            .collect();
        self.reports.insert(CONTROL_NAME.to_owned(), (at, report));
        let changed: Vec<String> = before
            .into_iter()
            .filter(|(name, reach)| {
                self.config
                    .registry
                    .get(name)
                    .is_some_and(|node| self.reach_of(node) != *reach)
            })
            .map(|(name, _)| name)
            .collect();
        for name in changed {
            self.node_changed(&name);
        }
    }

    /// How many reports came too soon after their node's last one.
    pub fn reports_dropped(&self) -> u64 {
        self.reports_dropped
    }

    /// The candidates every node but `name` last reported, for an agent
    /// that just connected.
    pub fn known_candidates(&self, name: &str) -> Vec<ControlMessage> {
        self.reports
            .iter()
            .filter(|(other, (_, report))| other.as_str() != name && !report.candidates.is_empty())
            .filter_map(|(other, (_, report))| {
                let node = self.config.registry.get(other)?;
                Some(ControlMessage::Candidates {
                    public_key: node.public_key,
                    candidates: report.candidates.clone(),
                })
            })
            .collect()
    }

    /// Every node and where its agent connects from (the control plane's
    /// host last, when it runs replicas).
    pub fn listing(&self) -> Vec<NodeListing> {
        let agents = self.config.registry.nodes().map(|node| {
            let connected_from = self.online.get(&node.name).map(|online| online.remote);
            self.listed(node.clone(), connected_from.is_some(), connected_from)
        });
        agents.chain(self.control_listing()).collect()
    }

    fn listed(
        &self,
        node: NodeRecord,
        online: bool,
        connected_from: Option<SocketAddr>,
    ) -> NodeListing {
        NodeListing {
            online,
            connected_from,
            report: self.workloads.report(&node.name).cloned(),
            settings: self.node_settings(&node.name),
            replicas: self.replica_count(&node.name),
            node,
        }
    }

    /// The `warren mesh` view at `now`.
    pub fn mesh_view(&self, now: SystemTime) -> MeshView {
        let online: HashMap<String, SocketAddr> = self
            .online
            .iter()
            .map(|(name, online)| (name.clone(), online.remote))
            .collect();
        mesh_view::view(
            &self.config.control,
            &self.config.relays,
            self.config.registry.nodes(),
            &online,
            &self.reports,
            now,
        )
    }
}

/// A node as the others' peer: direct nodes at their private address.
pub fn peer_of(node: &NodeRecord) -> Peer {
    Peer {
        name: node.name.clone(),
        public_key: node.public_key,
        mesh_ip: node.mesh_ip,
        mode: node.mode,
        endpoints: node
            .private_address
            .map(|ip: IpAddr| SocketAddr::new(ip, node.wg_port))
            .into_iter()
            .collect(),
    }
}

fn internal(error: impl std::fmt::Display) -> Refusal {
    tracing::error!(%error, "admitting a node");
    Refusal::new(
        RefusalCode::Internal,
        "the control plane could not store the join; try again",
    )
}

type Job = Box<dyn FnOnce(&mut ClusterState) + Send>;

/// The handle to the cluster's owner thread (see the module doc).
#[derive(Clone)]
pub struct Cluster {
    jobs: mpsc::UnboundedSender<Job>,
}

/// The cluster's owner thread is gone (the control plane is stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the control plane is stopping")]
pub struct ClusterStopped;

impl Cluster {
    /// Starts the owner thread with `state`; it runs until every handle is
    /// dropped.
    pub fn spawn(state: ClusterState) -> std::io::Result<Cluster> {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job>();
        std::thread::Builder::new()
            .name("warren-cluster".to_owned())
            .spawn(move || {
                let mut state = state;
                while let Some(job) = queue.blocking_recv() {
                    job(&mut state);
                    state.publish_routes();
                }
            })?;
        Ok(Cluster { jobs })
    }

    /// Runs `job` on the state and returns what it returns.
    pub async fn with<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut ClusterState) -> R + Send + 'static,
    ) -> Result<R, ClusterStopped> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(move |state| {
                let _ = reply.send(job(state));
            }))
            .map_err(|_| ClusterStopped)?;
        answer.await.map_err(|_| ClusterStopped)
    }
}

/// The shortest time between two reports of a node that are both taken
/// (agents report every 5 s).
pub const MIN_REPORT_GAP: Duration = Duration::from_secs(1);

/// The most candidates a node's report passes on (as many as a disco
/// message carries).
pub const MAX_CANDIDATES: usize = warren_wire::disco::MAX_CANDIDATES;

/// The candidates of a report worth passing on to every peer: unicast
/// addresses with a port, each once, [`MAX_CANDIDATES`] at most, in order.
fn usable_candidates(candidates: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut usable: Vec<SocketAddr> = Vec::new();
    for candidate in candidates {
        let unicast = match candidate.ip() {
            IpAddr::V4(ip) => !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast()),
            IpAddr::V6(ip) => !(ip.is_unspecified() || ip.is_multicast()),
        };
        if unicast && candidate.port() != 0 && !usable.contains(candidate) {
            usable.push(*candidate);
        }
        if usable.len() == MAX_CANDIDATES {
            break;
        }
    }
    usable
}

#[cfg(test)]
mod chaos_tests;
#[cfg(test)]
mod control_node_tests;
#[cfg(test)]
mod draining_tests;
#[cfg(test)]
mod failover_tests;
#[cfg(test)]
mod node_settings_tests;
#[cfg(test)]
mod rollouts_tests;
#[cfg(test)]
mod tests;
