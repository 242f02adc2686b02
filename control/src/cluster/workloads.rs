//! The cluster's workloads: services and replicas (as stored), what each
//! node offers and reports of its replicas, and the commands that change
//! them. Every change is decided by [`crate::workloads`], committed to the
//! store, applied here, and announced ([`PeerEvent::Assignments`]) so that
//! every connected agent gets its new set of assignments.

use super::NodeCommandError;
use super::{ClusterState, PeerEvent};
use crate::draining::Draining;
use crate::events::What;
use crate::nodes::{NodeRecord, CONTROL_NAME};
use crate::scheduler::{Reach, Resources};
use crate::store::{NodeSettings, ReplicaRecord, ServiceRecord, Store, StoreError, WorkloadChange};
use crate::update_delay::UpdateDelays;
use crate::workloads::{self, drains_before_stopping, NodeFacts, Snapshot, Views, WorkloadError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};
use warren_proto::assignment::{
    Assignment, Health, NodeReport, ReplicaId, ReplicaState, ReplicaStatus,
};
use warren_proto::{Mode, PathKind, ServiceSpec};

/// The workloads part of the cluster's state.
#[derive(Debug)]
pub struct Workloads {
    services: Vec<ServiceRecord>,
    /// The replicas and the nodes as placement sees them, kept up to date
    /// with every commit and node change ([`ClusterState::node_changed`]).
    views: Views,
    /// What each node offers, as its agent last reported.
    reports: HashMap<String, NodeReport>,
    /// Each replica as its node last reported it.
    statuses: HashMap<ReplicaId, ReplicaStatus>,
    /// What the operator set on nodes (labels, leaving).
    pub(super) settings: HashMap<String, NodeSettings>,
    /// The store's revision of the workloads: grows with every committed
    /// change, also across restarts.
    revision: u64,
    /// The generation each service is rolling out, until it completes,
    /// with when it was deployed (unix seconds).
    pub(super) rolling_out: HashMap<String, (u64, u64)>,
    /// The spec of each older generation that replicas still run, by
    /// service and generation: they keep running it until replaced.
    older_specs: HashMap<(String, u64), ServiceSpec>,
    /// The replicas removed from the routes whose requests in flight are
    /// finishing: their removal is stored once they have.
    draining: Draining,
    /// The rollouts waiting between batches.
    pub(super) delays: UpdateDelays,
    port_range: RangeInclusive<u16>,
}

impl Workloads {
    /// The services, as stored.
    pub(super) fn services(&self) -> &[ServiceRecord] {
        &self.services
    }

    /// The service called `name`.
    pub(super) fn service(&self, name: &str) -> Option<&ServiceRecord> {
        self.services.iter().find(|s| s.spec.name == name)
    }

    /// Every replica of `service`.
    pub(super) fn replicas_of<'a>(&'a self, service: &str) -> &'a [ReplicaRecord] {
        self.views.replicas_of(service)
    }

    /// The replicas of `service` whose node last reported them healthy,
    /// but those draining: what the proxy may send to.
    pub(super) fn routable_replicas_of<'a>(
        &'a self,
        service: &str,
    ) -> impl Iterator<Item = &'a ReplicaRecord> + 'a {
        self.views.replicas_of(service).iter().filter(|replica| {
            !self.draining.contains(&replica.id)
                && self
                    .statuses
                    .get(&replica.id)
                    .is_some_and(|status| status.health == Health::Healthy)
        })
    }

    /// The workloads stored in `store`, publishing on `port_range`.
    /// The views count no node until [`ClusterState::node_changed`] adds it.
    pub fn load(store: &Store, port_range: RangeInclusive<u16>) -> Result<Workloads, StoreError> {
        let services = store.services()?;
        let replicas = store.replicas()?;
        let mut older_specs = HashMap::new();
        for service in &services {
            let name = &service.spec.name;
            let older = |g: &u64| {
                *g != service.generation
                    && replicas
                        .iter()
                        .any(|r| &r.service == name && r.generation == *g)
            };
            for generation in store.generations(name)? {
                if older(&generation.generation) {
                    older_specs.insert((name.clone(), generation.generation), generation.spec);
                }
            }
        }
        Ok(Workloads {
            older_specs,
            draining: Draining::default(),
            delays: UpdateDelays::default(),
            views: Views::new(Vec::new(), &services, replicas, BTreeMap::new()),
            services,
            reports: HashMap::new(),
            statuses: HashMap::new(),
            settings: store.node_settings()?,
            revision: store.workloads_revision()?,
            rolling_out: store
                .rolling_out()?
                .into_iter()
                .map(|(service, generation, created)| (service, (generation, created)))
                .collect(),
            port_range,
        })
    }
}

impl Workloads {
    /// How many replicas are placed on `node`.
    pub(super) fn replica_count(&self, node: &str) -> u32 {
        count(self.views.replicas_on(node))
    }

    /// What `name` last reported of its machine.
    pub(super) fn report(&self, name: &str) -> Option<&NodeReport> {
        self.reports.get(name)
    }

    /// Forgets what `node` said of its replicas: it is offline, and says
    /// again when it is back.
    pub(super) fn forget_health_on(&mut self, node: &str) {
        let on_node: Vec<ReplicaId> = self.views.replicas_on(node).map(|r| r.id.clone()).collect();
        for id in &on_node {
            self.views.set_health(id, None);
            self.statuses.remove(id);
        }
    }

    /// Pauses the rollout of `replica`'s service for its update delay if
    /// `replica`, of the generation rolling out, just turned healthy while
    /// replicas of an older one still serve: a batch is done.
    fn pause_after(&mut self, replica: &ReplicaId) {
        let Some(record) = self.views.replica(replica) else {
            return;
        };
        let Some(service) = self.service(&record.service) else {
            return;
        };
        let older_serve = self.views.replicas_of(&record.service).iter().any(|r| {
            r.generation != service.generation
                && !self.draining.contains(&r.id)
                && self.views.is_healthy(&r.id)
        });
        if record.generation == service.generation && older_serve {
            let delay = Duration::from_millis(service.spec.update.delay_ms);
            let name = service.spec.name.clone();
            self.delays.batch_done(&name, delay);
        }
    }

    /// Whether replica `id` is draining: removed from the routes, still
    /// running until its requests in flight finish.
    pub(super) fn is_draining(&self, id: &ReplicaId) -> bool {
        self.draining.contains(id)
    }

    /// Drops what is known of a removed node (its replicas stay, to be
    /// placed elsewhere).
    pub(super) fn forget_node(&mut self, name: &str) {
        self.reports.remove(name);
        self.settings.remove(name);
    }
}

/// Why a workload command changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadCommandError {
    /// The command was refused.
    #[error(transparent)]
    Refused(#[from] WorkloadError),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A service as `warren services` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// Its name.
    pub name: String,
    /// Its image.
    pub image: String,
    /// Its generation.
    pub generation: u64,
    /// Replicas wanted.
    pub desired: u32,
    /// Replicas of any generation whose container runs.
    pub running: u32,
    /// Replicas of the current generation reported healthy.
    pub healthy: u32,
    /// Its container ports.
    pub ports: Vec<u16>,
}

/// A replica as `warren ps` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaView {
    /// Its id.
    pub id: ReplicaId,
    /// Its service.
    pub service: String,
    /// The generation it runs.
    pub generation: u64,
    /// Its node.
    pub node: String,
    /// How the node joined.
    pub mode: Option<Mode>,
    /// Where it answers: `mesh-ip:host-port` for each port.
    pub addresses: Vec<String>,
    /// Where its container is (`pending` until its node reports it).
    #[serde(flatten)]
    pub state: ReplicaState,
    /// Whether it is draining: out of the proxy's routes, running until
    /// its requests in flight finish, then stopped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
    /// What its health checks say.
    pub health: Health,
    /// How many times its agent restarted it.
    pub restarts: u32,
    /// CPU it used lately, millicores.
    pub cpu_millis: Option<u64>,
    /// Memory it uses, bytes.
    pub memory: Option<u64>,
    /// When it was placed, unix seconds.
    pub placed: u64,
}

impl ClusterState {
    /// Deploys `spec` at `now`: returns the service's replicas once the
    /// change is stored.
    pub fn deploy(
        &mut self,
        spec: ServiceSpec,
        now: u64,
    ) -> Result<Vec<ReplicaRecord>, WorkloadCommandError> {
        self.deploy_noted(spec, None, now)
    }

    /// [`ClusterState::deploy`], with why (`rollback to 2`) for `warren
    /// history` when the spec makes a new generation.
    pub fn deploy_noted(
        &mut self,
        spec: ServiceSpec,
        note: Option<String>,
        now: u64,
    ) -> Result<Vec<ReplicaRecord>, WorkloadCommandError> {
        let name = spec.name.clone();
        let mut change = self.with_snapshot(now, |snapshot| workloads::deploy(snapshot, spec))?;
        change.note = note;
        self.commit_command(change, now)?;
        Ok(self.replicas_of(&name))
    }

    /// The nodes a deploy of `spec` would place replicas on now, deciding
    /// as [`ClusterState::deploy`] does but storing nothing: the nodes
    /// asked whether they can run its image before the deploy is
    /// committed. A spec that would be refused is refused here the same way.
    pub fn deploy_targets(
        &self,
        spec: ServiceSpec,
        now: u64,
    ) -> Result<BTreeSet<String>, WorkloadCommandError> {
        let change = self.with_snapshot(now, |snapshot| workloads::deploy(snapshot, spec))?;
        Ok(change.placed.into_iter().map(|r| r.node).collect())
    }

    /// Sets the replica count of `name`.
    pub fn scale(
        &mut self,
        name: &str,
        replicas: u32,
        now: u64,
    ) -> Result<Vec<ReplicaRecord>, WorkloadCommandError> {
        let change =
            self.with_snapshot(now, |snapshot| workloads::scale(snapshot, name, replicas))?;
        self.commit_command(change, now)?;
        Ok(self.replicas_of(name))
    }

    /// Removes the service `name` and its replicas.
    pub fn remove_service(&mut self, name: &str, now: u64) -> Result<(), WorkloadCommandError> {
        let change = self.with_snapshot(now, |snapshot| workloads::remove(snapshot, name))?;
        self.commit_command(change, now)?;
        Ok(())
    }

    /// Stops every replica still on the drained `node` now, without waiting
    /// for replacements (`warren node drain --force`): those that fit
    /// elsewhere are placed again there, the others wait for room. Returns
    /// how many it stopped.
    pub fn stop_replicas_on(&mut self, node: &str, now: u64) -> Result<u32, NodeCommandError> {
        if !self.node_settings(node).drained {
            return Err(NodeCommandError::NotDrained(node.to_owned()));
        }
        let removed: Vec<ReplicaId> = self
            .workloads
            .views
            .replicas_on(node)
            .map(|replica| replica.id.clone())
            .collect();
        let count = u32::try_from(removed.len()).unwrap_or(u32::MAX);
        if count > 0 {
            tracing::info!(%node, replicas = count, "stopping the replicas left on a drained node");
            let change = WorkloadChange {
                removed,
                ..WorkloadChange::default()
            };
            self.commit_command(change, now)?;
        }
        Ok(count)
    }

    /// Takes what a node offers, as its agent reports it, and places what
    /// was waiting for room.
    pub fn record_node(&mut self, name: &str, report: NodeReport, now: u64) {
        self.workloads.reports.insert(name.to_owned(), report);
        self.node_changed(name);
        self.converge_workloads(now);
    }

    /// Takes a node's report of its replicas; moves rollouts on when health
    /// changed.
    pub fn record_replicas(&mut self, name: &str, replicas: Vec<ReplicaStatus>, now: u64) {
        let ours: BTreeSet<ReplicaId> = self
            .workloads
            .views
            .replicas_on(name)
            .map(|r| r.id.clone())
            .collect();
        let mut health_changed = false;
        let mut happened = Vec::new();
        let mut turned_healthy = Vec::new();
        for status in replicas.into_iter().filter(|s| ours.contains(&s.replica)) {
            let before = self.workloads.statuses.get(&status.replica);
            let was_running = before.is_some_and(|s| s.state == ReplicaState::Running);
            let before = before.map(|s| s.health);
            health_changed |= before != Some(status.health);
            if let Some(replica) = self.workloads.views.replica(&status.replica) {
                let (service, replica, node) = (
                    replica.service.clone(),
                    status.replica.clone(),
                    name.to_owned(),
                );
                if !was_running && status.state == ReplicaState::Running {
                    happened.push(What::ReplicaStarted {
                        service: service.clone(),
                        replica: replica.clone(),
                        node: node.clone(),
                    });
                }
                if before != Some(status.health) {
                    if status.health == Health::Healthy {
                        turned_healthy.push(replica.clone());
                    }
                    match status.health {
                        Health::Healthy => happened.push(What::ReplicaHealthy {
                            service,
                            replica,
                            node,
                        }),
                        Health::Unhealthy => happened.push(What::ReplicaUnhealthy {
                            service,
                            replica,
                            node,
                        }),
                        Health::Starting => {}
                    }
                }
            }
            self.workloads
                .views
                .set_health(&status.replica, Some(status.health == Health::Healthy));
            self.workloads
                .statuses
                .insert(status.replica.clone(), status);
        }
        self.emit(happened);
        for replica in &turned_healthy {
            self.workloads.pause_after(replica);
        }
        if health_changed {
            self.converge_workloads(now);
        }
    }

    /// Commits what the services need with no command behind it (placing
    /// what now fits, rolling out, moving off leaving nodes).
    pub fn converge_workloads(&mut self, now: u64) {
        // One change can make room for the next: a stop-first replacement
        // is placed once the replica it replaces is gone.
        for _ in 0..CONVERGE_PASSES {
            let Ok(change) = self.with_snapshot(now, |snapshot| {
                Ok::<_, WorkloadError>(workloads::converge(snapshot))
            }) else {
                return;
            };
            if change == WorkloadChange::default() {
                break;
            }
            if let Err(error) = self.commit(change) {
                tracing::error!(%error, "storing a workload change");
                return;
            }
        }
        self.check_rollouts(now);
        self.finish_leaving();
    }

    /// Stops the draining replicas whose requests in flight have finished
    /// (`busy` holds the replica addresses the proxy has requests in
    /// flight to) or whose stop grace is over at `now`, and ends the update
    /// delays that are over; converges if either happened.
    pub(super) fn drain_and_resume(
        &mut self,
        now: Instant,
        busy: &HashSet<SocketAddr>,
        unix_now: u64,
    ) {
        let busy_now: BTreeSet<ReplicaId> = self
            .workloads
            .draining
            .ids()
            .filter(|id| {
                self.workloads
                    .views
                    .replica(id)
                    .and_then(|replica| self.proxied_at(replica))
                    .is_some_and(|(_, addr)| busy.contains(&addr))
            })
            .cloned()
            .collect();
        let drained: Vec<ReplicaId> = self
            .workloads
            .draining
            .poll(now, |id| busy_now.contains(id))
            .into_iter()
            .filter(|id| self.workloads.views.replica(id).is_some())
            .collect();
        let resumed = self.workloads.delays.poll(now);
        let any_drained = !drained.is_empty();
        if any_drained {
            let change = WorkloadChange {
                removed: drained,
                ..WorkloadChange::default()
            };
            if let Err(error) = self.store_change(change) {
                tracing::error!(%error, "storing the removal of drained replicas");
                return;
            }
        }
        if any_drained || !resumed.is_empty() {
            self.converge_workloads(unix_now);
        }
    }

    /// When the next update delay ends, if one is timed.
    pub(super) fn next_resume(&self) -> Option<Instant> {
        self.workloads.delays.poll_timeout()
    }

    /// The replicas `node` should run, with the revision of the set.
    pub fn assignments_for(&self, node: &str) -> (u64, Vec<Assignment>) {
        let specs: BTreeMap<&str, &ServiceRecord> = self
            .workloads
            .services
            .iter()
            .map(|s| (s.spec.name.as_str(), s))
            .collect();
        let assignments = self
            .workloads
            .views
            .replicas_on(node)
            .filter_map(|r| {
                let service = specs.get(r.service.as_str())?;
                // Replicas of an older generation keep running their own
                // spec (its health check included) until they are replaced.
                let spec = match r.generation == service.generation {
                    true => &service.spec,
                    false => self
                        .workloads
                        .older_specs
                        .get(&(r.service.clone(), r.generation))
                        .unwrap_or(&service.spec),
                };
                Some(Assignment {
                    replica: r.id.clone(),
                    generation: r.generation,
                    spec: spec.clone(),
                    host_ports: r.host_ports.clone(),
                })
            })
            .collect();
        (self.workloads.revision, assignments)
    }

    /// Every service with its counts.
    pub fn services_view(&self) -> Vec<ServiceView> {
        self.workloads
            .services
            .iter()
            .map(|service| {
                let replicas = || self.workloads.views.replicas_of(&service.spec.name).iter();
                let status = |r: &ReplicaRecord| self.workloads.statuses.get(&r.id);
                ServiceView {
                    name: service.spec.name.clone(),
                    image: service.spec.image.clone(),
                    generation: service.generation,
                    desired: service.spec.replicas,
                    running: count(replicas().filter(|r| {
                        matches!(status(r).map(|s| &s.state), Some(ReplicaState::Running))
                    })),
                    healthy: count(replicas().filter(|r| {
                        r.generation == service.generation
                            && status(r).is_some_and(|s| s.health == Health::Healthy)
                    })),
                    ports: service.spec.ports.clone(),
                }
            })
            .collect()
    }

    /// Every replica as `warren ps` shows it.
    pub fn replicas_view(&self) -> Vec<ReplicaView> {
        self.workloads
            .views
            .replicas()
            .map(|replica| {
                let node = self.member(&replica.node);
                let status = self.workloads.statuses.get(&replica.id);
                ReplicaView {
                    id: replica.id.clone(),
                    service: replica.service.clone(),
                    generation: replica.generation,
                    node: replica.node.clone(),
                    mode: node.map(|(mode, _)| mode),
                    addresses: node
                        .map(|(_, mesh_ip)| {
                            replica
                                .host_ports
                                .iter()
                                .map(|port| format!("{mesh_ip}:{port}"))
                                .collect()
                        })
                        .unwrap_or_default(),
                    state: status.map_or(ReplicaState::Pending, |s| s.state.clone()),
                    draining: self.workloads.is_draining(&replica.id),
                    health: status.map_or(Health::Starting, |s| s.health),
                    restarts: status.map_or(0, |s| s.restarts),
                    cpu_millis: status.and_then(|s| s.cpu_millis),
                    memory: status.and_then(|s| s.memory),
                    placed: replica.placed,
                }
            })
            .collect()
    }

    fn replicas_of(&self, service: &str) -> Vec<ReplicaRecord> {
        self.workloads.views.replicas_of(service).to_vec()
    }

    /// Runs `decide` over a snapshot of the workloads and the nodes.
    fn with_snapshot<T, E>(
        &self,
        now: u64,
        decide: impl FnOnce(&Snapshot<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        debug_assert_eq!(
            self.workloads.views,
            self.views_afresh(),
            "the kept views went stale: a change to nodes or replicas did not reach them"
        );
        decide(&Snapshot {
            services: &self.workloads.services,
            views: &self.workloads.views,
            port_range: &self.workloads.port_range,
            draining: &self.workloads.draining,
            delays: &self.workloads.delays,
            now,
        })
    }

    /// Brings the node `name` up to date in the kept views (adds it, takes
    /// its new facts, or drops it once it is gone from the registry): to be
    /// called whenever what [`ClusterState::facts_of`] reads changes.
    /// How the control plane reaches `node`: the path it last measured to
    /// it (a `--relay` node that NAT traversal reached directly is direct),
    /// or, before any measurement or with no path, how the node joined.
    pub(super) fn reach_of(&self, node: &NodeRecord) -> Reach {
        let measured = self
            .reports
            .get(CONTROL_NAME)
            .and_then(|(_, report)| {
                report
                    .paths
                    .iter()
                    .find(|path| path.public_key == node.public_key)
            })
            .map(|path| path.kind);
        match (measured, node.mode) {
            (Some(PathKind::Direct), _) => Reach::Direct,
            (Some(PathKind::Relayed), _) => Reach::Relayed,
            (_, Mode::Direct) => Reach::Direct,
            _ => Reach::Relayed,
        }
    }

    pub(super) fn node_changed(&mut self, name: &str) {
        match self.facts_of(name) {
            Some(facts) => self.workloads.views.set_node(facts),
            None => self.workloads.views.remove_node(name),
        }
    }

    /// The views built from scratch out of the registry, the workloads and
    /// the reports: what the kept ones must always equal.
    pub(super) fn views_afresh(&self) -> Views {
        let nodes = self
            .node_names()
            .filter_map(|name| self.facts_of(name))
            .collect();
        let health: BTreeMap<ReplicaId, bool> = self
            .workloads
            .statuses
            .values()
            .map(|s| (s.replica.clone(), s.health == Health::Healthy))
            .collect();
        let replicas = self.workloads.views.replicas().cloned().collect();
        Views::new(nodes, &self.workloads.services, replicas, health)
    }

    /// Every node placement may use: the agents' and, when it runs
    /// replicas, the control plane's host.
    pub(super) fn node_names(&self) -> impl Iterator<Item = &str> {
        self.config
            .registry
            .nodes()
            .map(|node| node.name.as_str())
            .chain(self.config.control_node.then_some(CONTROL_NAME))
    }

    /// A node as placement sees it, if there is one called `name`: it
    /// offers nothing until it reports what it has (a node without a Docker
    /// daemon never does). The control plane's host, when it runs replicas,
    /// is reached directly and online while the control plane runs.
    fn facts_of(&self, name: &str) -> Option<NodeFacts> {
        let (online, reach) = if self.is_control_node(name) {
            (true, Reach::Direct)
        } else {
            let node = self.config.registry.get(name)?;
            (self.online.contains_key(name), self.reach_of(node))
        };
        let lost = !online && self.liveness.is_lost(name);
        let report = self.workloads.reports.get(name);
        let settings = self.workloads.settings.get(name);
        let mut labels = settings.map(|s| s.labels.clone()).unwrap_or_default();
        labels.insert("node".to_owned(), name.to_owned());
        if let Some(report) = report {
            labels.insert("arch".to_owned(), report.arch.clone());
        }
        Some(NodeFacts {
            name: name.to_owned(),
            online,
            drained: settings.is_some_and(|s| s.drained),
            leaving: settings.is_some_and(|s| s.leaving),
            lost,
            labels,
            capacity: report.map_or(Resources::default(), |r| Resources {
                cpu_millis: r.cpu_millis,
                memory: r.memory,
            }),
            reach,
        })
    }

    /// Stores the change a command decided at `now`, then converges: one
    /// change can make room for the next (a stop-first replacement is
    /// placed once the replica it replaces is gone, a leaving node goes once
    /// its last replica has).
    fn commit_command(&mut self, change: WorkloadChange, now: u64) -> Result<(), StoreError> {
        self.commit(change)?;
        self.converge_workloads(now);
        Ok(())
    }

    /// Stores `change` as [`ClusterState::store_change`] does, but for the
    /// removal of replicas the proxy routes to: those drain first
    /// ([`crate::draining`]), and their removal is stored once they have.
    fn commit(&mut self, mut change: WorkloadChange) -> Result<(), StoreError> {
        if change.removed_service.is_none() {
            let to_drain: Vec<(ReplicaId, String, Duration)> = change
                .removed
                .iter()
                .filter_map(|id| {
                    let replica = self.workloads.views.replica(id)?;
                    let service = self.workloads.service(&replica.service)?;
                    let drains =
                        drains_before_stopping(&service.spec) && self.is_online(&replica.node);
                    let grace = Duration::from_millis(service.spec.stop_grace_ms);
                    drains.then(|| (id.clone(), replica.service.clone(), grace))
                })
                .collect();
            for (id, service, grace) in to_drain {
                change.removed.retain(|removed| *removed != id);
                self.workloads.draining.start(id, &service, grace);
            }
            if change == WorkloadChange::default() {
                return Ok(());
            }
        }
        self.store_change(change)
    }

    /// Stores `change`, then applies it here, tells the agents and records
    /// the replicas placed and removed.
    fn store_change(&mut self, change: WorkloadChange) -> Result<(), StoreError> {
        let revision = self.config.store.commit_workloads(&change)?;
        let mut happened: Vec<What> = change
            .removed
            .iter()
            .filter_map(|id| {
                let replica = self.workloads.views.replica(id)?;
                Some(What::ReplicaStopped {
                    service: replica.service.clone(),
                    replica: id.clone(),
                    node: replica.node.clone(),
                })
            })
            .collect();
        let started: Vec<(String, u64, u64)> = change
            .services
            .iter()
            .filter(|new| {
                self.workloads
                    .service(&new.spec.name)
                    .is_none_or(|old| old.generation < new.generation)
            })
            .map(|s| (s.spec.name.clone(), s.generation, s.updated))
            .collect();
        happened.extend(change.placed.iter().map(|r| What::ReplicaPlaced {
            service: r.service.clone(),
            replica: r.id.clone(),
            generation: r.generation,
            node: r.node.clone(),
        }));
        let workloads = &mut self.workloads;
        workloads.views.apply(&change);
        if let Some(name) = &change.removed_service {
            workloads.services.retain(|s| &s.spec.name != name);
            workloads.rolling_out.remove(name);
            workloads.draining.forget_service(name);
            workloads.delays.forget(name);
        }
        for service in change.services {
            match workloads
                .services
                .iter_mut()
                .find(|s| s.spec.name == service.spec.name)
            {
                Some(stored) => {
                    if stored.generation != service.generation {
                        workloads.older_specs.insert(
                            (stored.spec.name.clone(), stored.generation),
                            stored.spec.clone(),
                        );
                    }
                    *stored = service;
                }
                None => workloads.services.push(service),
            }
        }
        // Only the generations replicas still run are kept.
        let views = &workloads.views;
        workloads.older_specs.retain(|(service, generation), _| {
            views
                .replicas_of(service)
                .iter()
                .any(|r| r.generation == *generation)
        });
        workloads
            .services
            .sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        for id in &change.removed {
            workloads.statuses.remove(id);
        }
        workloads.revision = revision;
        let _ = self.events.send(PeerEvent::Assignments);
        self.rollouts_started(started);
        self.emit(happened);
        Ok(())
    }
}

/// The most changes one convergence commits in a row.
const CONVERGE_PASSES: usize = 3;

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}
