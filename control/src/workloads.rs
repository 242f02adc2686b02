//! What `warren deploy`, `scale` and `rm` change, decided without side
//! effects: a snapshot of the services, their replicas and the nodes in,
//! one [`WorkloadChange`] out for the store to commit (or a one-line error
//! that changes nothing). [`converge`] is the same decision with no command
//! behind it, run whenever a replica's health or a node changes: it rolls
//! out generations, moves replicas off leaving nodes and replaces lost
//! ones.
//!
//! The nodes and replicas come as [`Views`], which the cluster keeps
//! across commands and updates as changes are committed, so that a command
//! costs a walk over the nodes and its own service's replicas, not a
//! rebuild from every replica.
//!
//! It ties the other pure parts together: the spec's rules
//! ([`ServiceSpec::validate`]), the [`reconcile`] steps of each service and
//! the [`scheduler`] for every replica to place.
//!
//! [`reconcile`]: crate::reconcile
//! [`scheduler`]: crate::scheduler

use crate::draining::Draining;
use crate::reconcile::{self, Replica, ServiceState, Step};
use crate::scheduler::{Pass, Reach, Request, Resources, Unplaceable};
use crate::store::{ReplicaRecord, ServiceRecord, WorkloadChange};
use crate::update_delay::UpdateDelays;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use warren_proto::assignment::ReplicaId;
use warren_proto::{ServiceSpec, SpecError};

mod views;
pub use views::Views;

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
    /// Whether it is lost (offline for `--replace-after`): its replicas
    /// are replaced.
    pub lost: bool,
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
    /// The nodes, the replicas and their health.
    pub views: &'a Views,
    /// The host ports replicas may publish on.
    pub port_range: &'a RangeInclusive<u16>,
    /// The replicas removed but still draining: they run (and keep their
    /// resources and ports) but count for nothing else.
    pub draining: &'a Draining,
    /// The rollouts paused between batches.
    pub delays: &'a UpdateDelays,
    /// Now, unix seconds.
    pub now: u64,
}

/// Whether a replica of `spec` that goes is drained first: the proxy
/// routes to it, so requests may be in flight ([`crate::draining`]).
pub fn drains_before_stopping(spec: &ServiceSpec) -> bool {
    !spec.hosts.is_empty()
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
    /// Another service already answers a host and path.
    #[error("{host}{path} is routed to {service} already (see `warren routes`)")]
    RouteTaken {
        /// The host.
        host: String,
        /// The path prefix.
        path: String,
        /// The service that has it.
        service: String,
    },
}

/// Deploys `spec`: a new service, or a new generation of one whose
/// containers would differ (a change of scale or update policy alone keeps
/// the generation).
pub fn deploy(snapshot: &Snapshot<'_>, spec: ServiceSpec) -> Result<WorkloadChange, WorkloadError> {
    spec.validate()?;
    check_size(snapshot, &spec)?;
    check_routes(snapshot, &spec)?;
    let service = match snapshot.services.iter().find(|s| s.spec.name == spec.name) {
        Some(existing) if existing.spec == spec => existing.clone(),
        // The scale or the update policy alone: the same generation.
        Some(existing) if existing.spec.same_workload(&spec) => ServiceRecord {
            spec,
            updated: snapshot.now,
            ..existing.clone()
        },
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

/// Refuses a spec whose host and path another service answers already.
fn check_routes(snapshot: &Snapshot<'_>, spec: &ServiceSpec) -> Result<(), WorkloadError> {
    let path_of = |spec: &ServiceSpec| spec.path.clone().unwrap_or_else(|| "/".to_owned());
    let path = path_of(spec);
    for other in snapshot
        .services
        .iter()
        .filter(|s| s.spec.name != spec.name)
    {
        let host = spec.hosts.iter().find(|host| {
            other
                .spec
                .hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host))
        });
        if let Some(host) = host.filter(|_| path_of(&other.spec) == path) {
            return Err(WorkloadError::RouteTaken {
                host: host.clone(),
                path: if path == "/" { String::new() } else { path },
                service: other.spec.name.clone(),
            });
        }
    }
    Ok(())
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
            .views
            .replicas_of(name)
            .iter()
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
    let mut placer = Placer::new(snapshot.views);
    for service in snapshot.services {
        let own = snapshot.views.replicas_of(&service.spec.name);
        let Ok(step) = plan(snapshot, service.clone(), own, &mut placer, false) else {
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

/// [`plan`] for one command's service, strictly.
fn plan_alone(
    snapshot: &Snapshot<'_>,
    service: ServiceRecord,
) -> Result<WorkloadChange, WorkloadError> {
    let own = snapshot.views.replicas_of(&service.spec.name);
    let mut placer = Placer::new(snapshot.views);
    plan(snapshot, service, own, &mut placer, true)
}

/// The change that brings `service`, whose replicas are `own`, towards its
/// desired state, removing and placing through `placer`; `strict` refuses
/// it whole when not every replica to place fits.
fn plan(
    snapshot: &Snapshot<'_>,
    mut service: ServiceRecord,
    own: &[ReplicaRecord],
    placer: &mut Placer<'_>,
    strict: bool,
) -> Result<WorkloadChange, WorkloadError> {
    let name = service.spec.name.clone();
    let state = ServiceState {
        generation: service.generation,
        desired: service.spec.replicas,
        parallelism: service.spec.update.parallelism,
        order: service.spec.update.order,
        paused: snapshot.delays.is_paused(&name),
        stopping: snapshot.draining.count_of(&name),
        replicas: own
            .iter()
            .filter(|r| !snapshot.draining.contains(&r.id))
            .map(|r| Replica {
                id: r.id.clone(),
                generation: r.generation,
                healthy: snapshot.views.is_healthy(&r.id),
                known: snapshot.views.is_known(&r.id),
                // A replica on a node that is drained, leaving or gone must move.
                leaving: snapshot.views.must_move(&r.node),
                lost: snapshot.views.is_lost(&r.node),
                placed: r.placed,
            })
            .collect(),
    };
    let mut change = WorkloadChange::default();
    let mut to_place = 0;
    for step in reconcile::reconcile(&state) {
        match step {
            Step::Remove(id) => {
                // A replica that drains first keeps its room until it has.
                if let Some(replica) = own.iter().find(|r| r.id == id) {
                    if !drains_before_stopping(&service.spec) {
                        placer.remove(replica);
                    }
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

/// Refuses a replica larger than the whole capacity of every node that has
/// said what it offers. A node that has not (a control plane that has just
/// restarted has heard from none yet) offers nothing to placement, but is
/// not taken to be that small.
fn check_size(snapshot: &Snapshot<'_>, spec: &ServiceSpec) -> Result<(), WorkloadError> {
    let wanted = reservation(spec);
    let known: Vec<Resources> = snapshot
        .views
        .nodes()
        .iter()
        .map(|n| n.capacity)
        .filter(|capacity| *capacity != Resources::default())
        .collect();
    if known.is_empty()
        || known
            .iter()
            .any(|c| wanted.cpu_millis <= c.cpu_millis && wanted.memory <= c.memory)
    {
        return Ok(());
    }
    let largest = known
        .into_iter()
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
    format!("{} and {}", resources.cores_text(), resources.memory_text())
}

/// The node views a decision places and removes through: one scheduler
/// [`Pass`] over the kept [`Views`], for every service the decision
/// touches.
struct Placer<'a> {
    /// The node views as the decision changes them.
    pass: Pass<'a>,
    /// The views as they stood before the decision.
    views: &'a Views,
}

impl<'a> Placer<'a> {
    /// A placer over `views`, as they stand before the decision.
    fn new(views: &'a Views) -> Placer<'a> {
        Placer {
            pass: Pass::new(views.nodes()),
            views,
        }
    }

    /// Counts `replica` out of its node.
    fn remove(&mut self, replica: &ReplicaRecord) {
        if let Some(node) = self.views.position(&replica.node) {
            let reserved = self.views.reservation(&replica.service);
            self.pass
                .remove(node, &replica.service, reserved, &replica.host_ports);
        }
    }
}

#[cfg(test)]
#[path = "workloads_tests.rs"]
mod tests;
