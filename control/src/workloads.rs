//! What `warren deploy`, `scale` and `rm` change, decided without side
//! effects: a snapshot of the services, their replicas and the nodes in,
//! one [`WorkloadChange`] out for the store to commit (or a one-line error
//! that changes nothing). [`converge`] is the same decision with no command
//! behind it, run whenever a replica's health or a node changes: it rolls
//! out generations, moves replicas off leaving nodes and replaces lost
//! ones.
//!
//! It ties the other pure parts together: the spec's rules
//! ([`ServiceSpec::validate`]), the [`reconcile`] steps of each service and
//! the [`scheduler`] for every replica to place.
//!
//! [`reconcile`]: crate::reconcile
//! [`scheduler`]: crate::scheduler

use crate::reconcile::{self, Replica, ServiceState, Step};
use crate::scheduler::{NodeView, Pass, Reach, Request, Resources, Unplaceable};
use crate::store::{ReplicaRecord, ServiceRecord, WorkloadChange};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::RangeInclusive;
use warren_proto::assignment::ReplicaId;
use warren_proto::{ServiceSpec, SpecError};

/// The host ports replicas publish on by default (`warren serve
/// --host-ports`).
pub const DEFAULT_HOST_PORTS: RangeInclusive<u16> = 20000..=29999;

/// A node as placement needs it, before its replicas are counted in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// Its name.
    pub name: String,
    /// Whether its agent is connected.
    pub online: bool,
    /// Whether nothing new may go there (`warren node drain`).
    pub drained: bool,
    /// Whether it is leaving (`warren node rm`): its replicas move.
    pub leaving: bool,
    /// Its labels, including `arch` and `node`.
    pub labels: BTreeMap<String, String>,
    /// What it offers to replicas.
    pub capacity: Resources,
    /// How the control plane reaches it.
    pub reach: Reach,
}

/// Everything a decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// The services.
    pub services: &'a [ServiceRecord],
    /// Their replicas.
    pub replicas: &'a [ReplicaRecord],
    /// The nodes.
    pub nodes: &'a [NodeFacts],
    /// The replicas their nodes report healthy.
    pub healthy: &'a BTreeSet<ReplicaId>,
    /// The host ports replicas may publish on.
    pub port_range: &'a RangeInclusive<u16>,
    /// Now, unix seconds.
    pub now: u64,
}

/// Why a command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadError {
    /// The spec breaks a rule.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A replica reserves more than any node can offer at all.
    #[error(
        "a replica of {service} reserves {wanted}, more than any node has ({largest} at most)"
    )]
    TooLarge {
        /// The service.
        service: String,
        /// What a replica asks for.
        wanted: String,
        /// The largest node's capacity.
        largest: String,
    },
    /// The replicas do not fit now.
    #[error("cannot place replica {} of {service}: {why}", why.placed + 1)]
    Unplaceable {
        /// The service.
        service: String,
        /// Why.
        why: Unplaceable,
    },
    /// No service has the name.
    #[error("no service is called {0:?} (see `warren services`)")]
    Unknown(String),
}

/// Deploys `spec`: a new service, or a new generation of one whose spec
/// changed (the same spec again changes nothing but the scale).
pub fn deploy(snapshot: &Snapshot<'_>, spec: ServiceSpec) -> Result<WorkloadChange, WorkloadError> {
    spec.validate()?;
    check_size(snapshot, &spec)?;
    let service = match snapshot.services.iter().find(|s| s.spec.name == spec.name) {
        Some(existing) if existing.spec == spec => existing.clone(),
        Some(existing) => ServiceRecord {
            generation: existing.generation + 1,
            spec,
            updated: snapshot.now,
            ..existing.clone()
        },
        None => ServiceRecord {
            spec,
            generation: 1,
            next_replica: 1,
            created: snapshot.now,
            updated: snapshot.now,
        },
    };
    plan_alone(snapshot, service)
}

/// Sets the replica count of the service `name`.
pub fn scale(
    snapshot: &Snapshot<'_>,
    name: &str,
    replicas: u32,
) -> Result<WorkloadChange, WorkloadError> {
    let existing = snapshot
        .services
        .iter()
        .find(|s| s.spec.name == name)
        .ok_or_else(|| WorkloadError::Unknown(name.to_owned()))?;
    let spec = ServiceSpec {
        replicas,
        ..existing.spec.clone()
    };
    spec.validate()?;
    // Scale is not a new generation: the replicas that run stay.
    let service = ServiceRecord {
        spec,
        updated: snapshot.now,
        ..existing.clone()
    };
    plan_alone(snapshot, service)
}

/// Removes the service `name` and its replicas.
pub fn remove(snapshot: &Snapshot<'_>, name: &str) -> Result<WorkloadChange, WorkloadError> {
    if !snapshot.services.iter().any(|s| s.spec.name == name) {
        return Err(WorkloadError::Unknown(name.to_owned()));
    }
    Ok(WorkloadChange {
        removed_service: Some(name.to_owned()),
        removed: snapshot
            .replicas
            .iter()
            .filter(|r| r.service == name)
            .map(|r| r.id.clone())
            .collect(),
        ..WorkloadChange::default()
    })
}

/// What every service needs now with no command behind it: the steps of
/// each, with as many placements as fit (a service that cannot place all it
/// needs places what it can and tries again at the next change).
///
/// One [`Placer`] serves every service, each seeing what the ones before it
/// removed and placed.
pub fn converge(snapshot: &Snapshot<'_>) -> WorkloadChange {
    let mut change = WorkloadChange::default();
    let mut placer = Placer::new(snapshot, None);
    let mut by_service: HashMap<&str, Vec<&ReplicaRecord>> = HashMap::new();
    for replica in snapshot.replicas {
        by_service
            .entry(replica.service.as_str())
            .or_default()
            .push(replica);
    }
    for service in snapshot.services {
        let own = by_service
            .remove(service.spec.name.as_str())
            .unwrap_or_default();
        let Ok(step) = plan(snapshot, service.clone(), &own, &mut placer, false) else {
            continue;
        };
        change.removed.extend(step.removed);
        change.placed.extend(step.placed);
        // Only a service whose replica counter moved needs storing.
        change.services.extend(
            step.services
                .into_iter()
                .filter(|updated| updated != service),
        );
    }
    change
}

/// [`plan`] for one command's service, strictly, over the whole snapshot.
fn plan_alone(
    snapshot: &Snapshot<'_>,
    service: ServiceRecord,
) -> Result<WorkloadChange, WorkloadError> {
    let own: Vec<&ReplicaRecord> = snapshot
        .replicas
        .iter()
        .filter(|r| r.service == service.spec.name)
        .collect();
    let mut placer = Placer::new(snapshot, Some(&service.spec.name));
    plan(snapshot, service, &own, &mut placer, true)
}

/// The change that brings `service`, whose replicas are `own`, towards its
/// desired state, removing and placing through `placer`; `strict` refuses
/// it whole when not every replica to place fits.
fn plan(
    snapshot: &Snapshot<'_>,
    mut service: ServiceRecord,
    own: &[&ReplicaRecord],
    placer: &mut Placer<'_>,
    strict: bool,
) -> Result<WorkloadChange, WorkloadError> {
    let name = service.spec.name.clone();
    let state = ServiceState {
        generation: service.generation,
        desired: service.spec.replicas,
        replicas: own
            .iter()
            .map(|r| Replica {
                id: r.id.clone(),
                generation: r.generation,
                healthy: snapshot.healthy.contains(&r.id),
                // A replica on a node that is leaving, or gone, must move.
                leaving: placer.must_move(&r.node),
                placed: r.placed,
            })
            .collect(),
    };
    let mut change = WorkloadChange::default();
    let mut to_place = 0;
    for step in reconcile::reconcile(&state) {
        match step {
            Step::Remove(id) => {
                if let Some(replica) = own.iter().find(|r| r.id == id) {
                    placer.remove(replica);
                }
                change.removed.push(id);
            }
            Step::Place(count) => to_place += count,
        }
    }
    if to_place > 0 {
        let request = Request {
            service: &name,
            count: to_place,
            resources: reservation(&service.spec),
            ports: service.spec.ports.len(),
            constraints: &service.spec.constraints,
            port_range: snapshot.port_range.clone(),
        };
        let placements = match placer.pass.place(&request) {
            Ok(placements) => placements,
            Err(why) if strict => return Err(WorkloadError::Unplaceable { service: name, why }),
            Err(why) => {
                let fits = Request {
                    count: why.placed,
                    ..request
                };
                placer.pass.place(&fits).unwrap_or_default()
            }
        };
        for placement in placements {
            change.placed.push(ReplicaRecord {
                id: ReplicaId(format!("{name}-{}", service.next_replica)),
                service: name.clone(),
                generation: service.generation,
                node: placement.node,
                host_ports: placement.host_ports,
                placed: snapshot.now,
            });
            service.next_replica += 1;
        }
    }
    change.services.push(service);
    Ok(change)
}

/// What a replica of `spec` reserves.
fn reservation(spec: &ServiceSpec) -> Resources {
    Resources {
        cpu_millis: u64::from(spec.cpu_reservation()),
        memory: spec.memory_reservation(),
    }
}

/// Refuses a replica larger than every node's whole capacity.
fn check_size(snapshot: &Snapshot<'_>, spec: &ServiceSpec) -> Result<(), WorkloadError> {
    let wanted = reservation(spec);
    if snapshot.nodes.is_empty()
        || snapshot.nodes.iter().any(|n| {
            wanted.cpu_millis <= n.capacity.cpu_millis && wanted.memory <= n.capacity.memory
        })
    {
        return Ok(());
    }
    let largest = snapshot
        .nodes
        .iter()
        .map(|n| n.capacity)
        .max_by_key(|c| (c.memory, c.cpu_millis))
        .unwrap_or_default();
    Err(WorkloadError::TooLarge {
        service: spec.name.clone(),
        wanted: describe(wanted),
        largest: describe(largest),
    })
}

/// `0.5 cores and 2.0 GiB`.
fn describe(resources: Resources) -> String {
    format!(
        "{:.1} cores and {:.1} GiB",
        resources.cpu_millis as f64 / 1000.0,
        resources.memory as f64 / f64::from(1u32 << 30)
    )
}

/// The nodes of a snapshot with its replicas counted in (what they reserve,
/// the host ports they hold, how many of each service), as one scheduler
/// [`Pass`] that a decision places and removes through; built once per
/// decision, in one walk over the replicas. A decision about one service
/// counts only that service's replicas per node (spread looks at no other).
struct Placer<'a> {
    /// The node views.
    pass: Pass<'a>,
    /// Each node's index in the pass, by name.
    index: HashMap<&'a str, usize>,
    /// The nodes, in the pass's order.
    nodes: &'a [NodeFacts],
    /// What a replica of each service reserves, by service name.
    reservations: HashMap<&'a str, Resources>,
}

impl<'a> Placer<'a> {
    /// The nodes of `snapshot` with every replica in; `only`, when given, is
    /// the one service whose replicas are counted per node.
    fn new(snapshot: &Snapshot<'a>, only: Option<&str>) -> Placer<'a> {
        let reservations: HashMap<&str, Resources> = snapshot
            .services
            .iter()
            .map(|s| (s.spec.name.as_str(), reservation(&s.spec)))
            .collect();
        let index: HashMap<&str, usize> = snapshot
            .nodes
            .iter()
            .enumerate()
            .map(|(i, facts)| (facts.name.as_str(), i))
            .collect();
        let views = snapshot
            .nodes
            .iter()
            .map(|facts| NodeView {
                name: Cow::Borrowed(facts.name.as_str()),
                online: facts.online,
                drained: facts.drained || facts.leaving,
                labels: Cow::Borrowed(&facts.labels),
                capacity: facts.capacity,
                allocated: Resources::default(),
                ports_in_use: BTreeSet::new(),
                replicas: BTreeMap::new(),
                reach: facts.reach,
            })
            .collect();
        let mut placer = Placer {
            pass: Pass::new(views),
            index,
            nodes: snapshot.nodes,
            reservations,
        };
        for replica in snapshot.replicas {
            if let Some(&node) = placer.index.get(replica.node.as_str()) {
                let reserved = placer.reserved(replica);
                let service = only
                    .is_none_or(|name| name == replica.service)
                    .then_some(Cow::Borrowed(replica.service.as_str()));
                placer
                    .pass
                    .add(node, service, reserved, &replica.host_ports);
            }
        }
        placer
    }

    /// What `replica` reserves (nothing, for a service the snapshot lacks).
    fn reserved(&self, replica: &ReplicaRecord) -> Resources {
        self.reservations
            .get(replica.service.as_str())
            .copied()
            .unwrap_or_default()
    }

    /// Counts `replica` out of its node.
    fn remove(&mut self, replica: &ReplicaRecord) {
        if let Some(&node) = self.index.get(replica.node.as_str()) {
            let reserved = self.reserved(replica);
            self.pass
                .remove(node, &replica.service, reserved, &replica.host_ports);
        }
    }

    /// Whether replicas on the node `name` must move: it is leaving, or gone.
    fn must_move(&self, name: &str) -> bool {
        self.index
            .get(name)
            .and_then(|&i| self.nodes.get(i))
            .is_none_or(|n| n.leaving)
    }
}

#[cfg(test)]
#[path = "workloads_tests.rs"]
mod tests;
