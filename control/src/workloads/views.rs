//! What decisions read, kept across commands: the replicas by service and
//! each node as the scheduler sees it, with what its replicas hold counted
//! in, so that a command does not rebuild its node views from every node
//! and every replica.
//!
//! [`Views`] changes only as the cluster's state does: [`Views::apply`]
//! with each committed [`WorkloadChange`], [`Views::set_node`] and
//! [`Views::remove_node`] when a node joins, reports, connects, is
//! labelled, leaves or is removed, [`Views::set_health`] when a replica's
//! health is reported or forgotten. It must always equal what [`Views::new`] builds from
//! scratch out of the same state.

use super::{reservation, NodeFacts};
use crate::scheduler::{NodeView, Resources};
use crate::store::{ReplicaRecord, ServiceRecord, WorkloadChange};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use warren_proto::assignment::ReplicaId;

/// The nodes and replicas as decisions see them (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Views {
    /// The nodes, in name order, with their replicas counted in.
    nodes: Vec<NodeView<'static>>,
    /// What placement does not see of each node, in the same order.
    fates: Vec<Fate>,
    /// Each node's place in `nodes`, by name.
    index: HashMap<String, usize>,
    /// The replicas of each service, in the order they were placed.
    replicas: BTreeMap<String, Vec<ReplicaRecord>>,
    /// Each replica's service.
    service_of: HashMap<ReplicaId, String>,
    /// What a replica of each service reserves.
    reservations: HashMap<String, Resources>,
    /// The health of each replica whose node has reported it since it
    /// connected: `true` healthy (a replica absent is not known).
    health: BTreeMap<ReplicaId, bool>,
}

impl Views {
    /// The views of `nodes`, `services`, their `replicas` and the `health`
    /// their nodes reported (`true` healthy), built from scratch.
    pub fn new(
        nodes: Vec<NodeFacts>,
        services: &[ServiceRecord],
        replicas: Vec<ReplicaRecord>,
        health: BTreeMap<ReplicaId, bool>,
    ) -> Views {
        let mut views = Views {
            reservations: services
                .iter()
                .map(|s| (s.spec.name.clone(), reservation(&s.spec)))
                .collect(),
            health,
            ..Views::default()
        };
        let mut nodes = nodes;
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        for facts in nodes {
            views.fates.push(Fate::of(&facts));
            views.nodes.push(view_of(facts));
        }
        views.reindex();
        for replica in replicas {
            views.count(&replica, Count::In);
            views
                .service_of
                .insert(replica.id.clone(), replica.service.clone());
            views
                .replicas
                .entry(replica.service.clone())
                .or_default()
                .push(replica);
        }
        views
    }

    /// The nodes, in name order, with their replicas counted in.
    pub fn nodes(&self) -> &[NodeView<'static>] {
        &self.nodes
    }

    /// Whether replicas on the node `name` must move: it is drained,
    /// leaving, or gone.
    pub fn must_move(&self, name: &str) -> bool {
        self.fate(name).is_none_or(|fate| fate.moving)
    }

    /// Whether the node `name` is lost (offline for `--replace-after`):
    /// its replicas are replaced.
    pub fn is_lost(&self, name: &str) -> bool {
        self.fate(name).is_some_and(|fate| fate.lost)
    }

    fn fate(&self, name: &str) -> Option<Fate> {
        self.index
            .get(name)
            .and_then(|&i| self.fates.get(i))
            .copied()
    }

    /// Where the node `name` is in [`Views::nodes`].
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// What a replica of `service` reserves (nothing, for an unknown one).
    pub fn reservation(&self, service: &str) -> Resources {
        self.reservations.get(service).copied().unwrap_or_default()
    }

    /// Every replica, by service, each service's in the order they were
    /// placed.
    pub fn replicas(&self) -> impl Iterator<Item = &ReplicaRecord> {
        self.replicas.values().flatten()
    }

    /// The replica `id`, if it is placed.
    pub fn replica(&self, id: &ReplicaId) -> Option<&ReplicaRecord> {
        let service = self.service_of.get(id)?;
        self.replicas_of(service).iter().find(|r| &r.id == id)
    }

    /// The replicas of `service`, in the order they were placed.
    pub fn replicas_of(&self, service: &str) -> &[ReplicaRecord] {
        self.replicas.get(service).map_or(&[], Vec::as_slice)
    }

    /// The replicas placed on `node`: through the services its view counts,
    /// for a node that has one; by looking at every replica otherwise.
    pub fn replicas_on<'a>(
        &'a self,
        node: &'a str,
    ) -> Box<dyn Iterator<Item = &'a ReplicaRecord> + 'a> {
        let on_node = move |r: &&ReplicaRecord| r.node == node;
        match self.position(node).and_then(|i| self.nodes.get(i)) {
            Some(view) => Box::new(
                view.replicas
                    .keys()
                    .flat_map(|service| self.replicas_of(service))
                    .filter(on_node),
            ),
            None => Box::new(self.replicas().filter(on_node)),
        }
    }

    /// Whether the node of replica `id` reports it healthy.
    pub fn is_healthy(&self, id: &ReplicaId) -> bool {
        self.health.get(id) == Some(&true)
    }

    /// Whether the node of replica `id` has said how it is since it
    /// connected.
    pub fn is_known(&self, id: &ReplicaId) -> bool {
        self.health.contains_key(id)
    }

    /// Takes what its node reports of replica `id`'s health (`true`
    /// healthy), or forgets it (`None`: the node went offline).
    pub fn set_health(&mut self, id: &ReplicaId, healthy: Option<bool>) {
        match healthy {
            Some(healthy) => {
                self.health.insert(id.clone(), healthy);
            }
            None => {
                self.health.remove(id);
            }
        }
    }

    /// Takes a node as it is now: a new one, with the replicas already
    /// placed on it counted in, or new facts of a known one.
    pub fn set_node(&mut self, facts: NodeFacts) {
        if let Some(i) = self.position(&facts.name) {
            if let (Some(view), Some(fate)) = (self.nodes.get_mut(i), self.fates.get_mut(i)) {
                *fate = Fate::of(&facts);
                let fresh = view_of(facts);
                view.online = fresh.online;
                view.drained = fresh.drained;
                view.labels = fresh.labels;
                view.capacity = fresh.capacity;
                view.reach = fresh.reach;
            }
            return;
        }
        let name = facts.name.clone();
        let at = self
            .nodes
            .partition_point(|n| n.name.as_ref() < name.as_str());
        self.fates.insert(at, Fate::of(&facts));
        self.nodes.insert(at, view_of(facts));
        self.reindex();
        let placed: Vec<ReplicaRecord> = self
            .replicas()
            .filter(|r| r.node == name)
            .cloned()
            .collect();
        for replica in &placed {
            self.count(replica, Count::In);
        }
    }

    /// Drops the node `name` (its replicas stay, to be placed elsewhere).
    pub fn remove_node(&mut self, name: &str) {
        if let Some(i) = self.position(name) {
            self.nodes.remove(i);
            self.fates.remove(i);
            self.reindex();
        }
    }

    /// Takes a change the store committed.
    pub fn apply(&mut self, change: &WorkloadChange) {
        for id in &change.removed {
            self.health.remove(id);
            let Some(service) = self.service_of.remove(id) else {
                continue;
            };
            let Some(own) = self.replicas.get_mut(&service) else {
                continue;
            };
            let Some(at) = own.iter().position(|r| &r.id == id) else {
                continue;
            };
            let replica = own.remove(at);
            if own.is_empty() {
                self.replicas.remove(&service);
            }
            self.count(&replica, Count::Out);
        }
        if let Some(name) = &change.removed_service {
            self.recount(name, Resources::default());
            self.reservations.remove(name);
        }
        for service in &change.services {
            self.recount(&service.spec.name, reservation(&service.spec));
            self.reservations
                .insert(service.spec.name.clone(), reservation(&service.spec));
        }
        for replica in &change.placed {
            self.count(replica, Count::In);
            self.service_of
                .insert(replica.id.clone(), replica.service.clone());
            self.replicas
                .entry(replica.service.clone())
                .or_default()
                .push(replica.clone());
        }
    }

    /// Counts the replicas of `service` again as reserving `reserved` each.
    fn recount(&mut self, service: &str, reserved: Resources) {
        let before = self.reservation(service);
        if before == reserved {
            return;
        }
        let own = self.replicas.remove(service).unwrap_or_default();
        for replica in &own {
            if let Some(view) = self
                .position(&replica.node)
                .and_then(|i| self.nodes.get_mut(i))
            {
                view.allocated = view.allocated.minus(before).plus(reserved);
            }
        }
        if !own.is_empty() {
            self.replicas.insert(service.to_owned(), own);
        }
    }

    /// Counts `replica` in on its node, or out: what it reserves, its host
    /// ports, one of its service.
    fn count(&mut self, replica: &ReplicaRecord, count: Count) {
        let reserved = self.reservation(&replica.service);
        let Some(view) = self
            .position(&replica.node)
            .and_then(|i| self.nodes.get_mut(i))
        else {
            return;
        };
        match count {
            Count::In => {
                view.allocated = view.allocated.plus(reserved);
                view.ports_in_use.extend(replica.host_ports.iter().copied());
                *view
                    .replicas
                    .entry(Cow::Owned(replica.service.clone()))
                    .or_default() += 1;
            }
            Count::Out => {
                view.allocated = view.allocated.minus(reserved);
                for port in &replica.host_ports {
                    view.ports_in_use.remove(port);
                }
                if let Some(n) = view.replicas.get_mut(replica.service.as_str()) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        view.replicas.remove(replica.service.as_str());
                    }
                }
            }
        }
    }

    fn reindex(&mut self) {
        self.index = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, view)| (view.name.to_string(), i))
            .collect();
    }
}

/// Whether a node's replicas must move, or be replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Fate {
    /// It is drained (`warren node drain`) or leaving (`warren node rm`).
    moving: bool,
    /// It is lost (offline for `--replace-after`).
    lost: bool,
}

impl Fate {
    fn of(facts: &NodeFacts) -> Fate {
        Fate {
            moving: facts.drained || facts.leaving,
            lost: facts.lost,
        }
    }
}

/// Whether a replica is counted in or out.
#[derive(Debug, Clone, Copy)]
enum Count {
    In,
    Out,
}

/// `facts` as the scheduler sees the node, with no replica counted in.
fn view_of(facts: NodeFacts) -> NodeView<'static> {
    NodeView {
        name: Cow::Owned(facts.name),
        online: facts.online,
        drained: facts.drained || facts.leaving,
        labels: Cow::Owned(facts.labels),
        capacity: facts.capacity,
        allocated: Resources::default(),
        ports_in_use: BTreeSet::new(),
        replicas: BTreeMap::new(),
        reach: facts.reach,
    }
}

#[cfg(test)]
#[path = "views_tests.rs"]
mod tests;
