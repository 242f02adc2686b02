//! What a service needs next, decided without side effects: its desired
//! state (spec, generation, replica count) against its replicas, as steps
//! (place so many new replicas, remove this one) that the control plane
//! commits to the store and then assigns. Run it again whenever a replica
//! or node changes: it is level-triggered, and a service that matches its
//! desired state needs no step.
//!
//! A replica that must go — of an older generation, or on a node that is
//! leaving — is **replaced before it is removed**: replacements are placed
//! beside the replicas that serve, `parallelism` at a time (the surge;
//! `warren deploy --update-parallelism`, 1 by default), and one replica that
//! must go is removed each time a replacement turns healthy.
//! So a new generation rolls out replica by replica and `warren node rm`
//! moves replicas elsewhere, never leaving fewer healthy replicas than the
//! desired count (or than served before, if fewer did). Surplus replicas of
//! the current generation (`warren scale` down) go at once, unhealthy ones
//! first, then the newest; replicas that must go and are not healthy go at
//! once, as do all of them when the service is scaled to zero.
//!
//! With **stop-first** order (`warren deploy --update-order stop-first`)
//! a replica that must go and serves is removed *before* its replacement
//! is placed, `parallelism` at a time: the service dips by at most that
//! many healthy replicas below the desired count, and never runs more
//! replicas than asked (replicas still stopping count), for services that
//! cannot run two at once.
//!
//! While a rollout is **paused** (`--update-delay` after a batch of new
//! replicas turned healthy; the control plane times it), no new batch
//! begins: start-first places no replacement while old replicas serve,
//! stop-first removes no old replica that serves. What a batch has begun
//! goes on.
//!
//! A replica whose health is **not known** (its node has not reported since
//! it, or the control plane, reconnected: a control plane that has just
//! restarted knows no replica's health) is not taken for dead: one that
//! must go stays until its node says how it is, or until the replicas that
//! stay serve the desired count.
//!
//! A replica on a **lost** node (offline for `--replace-after`) does not
//! serve and is not counted: its replacement is placed at once. It is
//! kept until the replicas that stay serve the desired count, so that if
//! the node comes back first its replica counts again, and the surplus
//! that leaves is removed like any other (unhealthy ones first).

use warren_proto::assignment::ReplicaId;
use warren_proto::UpdateOrder;

/// One replica as the control plane knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// Which replica.
    pub id: ReplicaId,
    /// The service generation it runs.
    pub generation: u64,
    /// Whether its node reports it healthy.
    pub healthy: bool,
    /// Whether its node has said how it is since it (or the control plane)
    /// last connected: a replica whose health is not known is not taken for
    /// dead.
    pub known: bool,
    /// Whether its node is drained or leaving (`warren node drain`, `warren
    /// node rm`), or gone: it must move.
    pub leaving: bool,
    /// Whether its node is lost (offline for `--replace-after`): it is
    /// replaced, and kept until the replacements serve, in case the node
    /// comes back first.
    pub lost: bool,
    /// When it was placed (an order: newer replicas go first on scale-down).
    pub placed: u64,
}

/// A service's desired state and its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceState {
    /// The generation replicas should run.
    pub generation: u64,
    /// How many replicas of it should run.
    pub desired: u32,
    /// How many replicas are replaced at once (`warren deploy
    /// --update-parallelism`, at least 1).
    pub parallelism: u32,
    /// Whether a replacement starts before the replica it replaces goes.
    pub order: UpdateOrder,
    /// Whether the rollout waits between batches now (`--update-delay`).
    pub paused: bool,
    /// Its replicas, of every generation, but those already stopping.
    pub replicas: Vec<Replica>,
    /// How many of its replicas are stopping (removed, their requests in
    /// flight finishing): they still run.
    pub stopping: u32,
}

/// One step towards the desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Place this many new replicas of the current generation.
    Place(u32),
    /// Remove this replica.
    Remove(ReplicaId),
}

/// The steps `service` needs now.
pub fn reconcile(service: &ServiceState) -> Vec<Step> {
    let desired = service.desired as usize;
    let current = |r: &Replica| r.generation == service.generation && !r.leaving;
    let (held, others): (Vec<&Replica>, Vec<&Replica>) =
        service.replicas.iter().partition(|r| r.lost && current(r));
    let (mut staying, going): (Vec<&Replica>, Vec<&Replica>) =
        others.into_iter().partition(|r| current(r) && !r.lost);
    let mut steps = Vec::new();
    // Surplus of the current generation: unhealthy ones first, then the
    // newest.
    staying.sort_by_key(|r| (r.healthy, std::cmp::Reverse(r.placed), r.id.clone()));
    let surplus = staying.len().saturating_sub(desired);
    steps.extend(staying.drain(..surplus).map(|r| Step::Remove(r.id.clone())));
    // Replicas that must go and serve nobody go at once (but those whose
    // health is not known yet, which may serve once their node says so);
    // those that serve go while the rest still serve the desired count.
    let (serving_going, not_serving): (Vec<&Replica>, Vec<&Replica>) =
        going.into_iter().partition(|r| r.healthy);
    let (idle_going, unknown_going): (Vec<&Replica>, Vec<&Replica>) =
        not_serving.into_iter().partition(|r| r.known || r.lost);
    steps.extend(idle_going.iter().map(|r| Step::Remove(r.id.clone())));
    let mut serving_going = serving_going;
    serving_going.sort_by_key(|r| (r.placed, r.id.clone()));
    let serving_staying = staying.iter().filter(|r| r.healthy).count();
    let surge = service.parallelism.max(1) as usize;
    let stop_first = service.order == UpdateOrder::StopFirst;
    // Start-first keeps the desired count serving; stop-first may dip by
    // one batch, unless paused between batches.
    let must_serve = match stop_first && !service.paused {
        true => desired.saturating_sub(surge),
        false => desired,
    };
    let mut remaining = serving_going.len();
    for replica in &serving_going {
        if serving_staying + remaining - 1 < must_serve {
            break;
        }
        remaining -= 1;
        steps.push(Step::Remove(replica.id.clone()));
    }
    // Replicas on lost nodes, and those that must go whose health is not
    // known, go once the replicas that stay serve the desired count.
    if serving_staying >= desired {
        steps.extend(
            held.iter()
                .chain(&unknown_going)
                .map(|r| Step::Remove(r.id.clone())),
        );
    }
    // New replicas: all that are missing, but while replicas that must go
    // still serve, `parallelism` at a time (the surge), and none while
    // paused; stop-first places only into the room that replicas which
    // have gone left.
    let missing = desired.saturating_sub(staying.len());
    let in_flight = staying.len() - serving_staying;
    let to_place = if stop_first {
        // Those removed now, those stopping and those whose health is not
        // known (they may well run) count until they are gone.
        let running =
            staying.len() + serving_going.len() + unknown_going.len() + service.stopping as usize;
        missing.min(desired.saturating_sub(running))
    } else if remaining == 0 {
        missing
    } else if service.paused {
        0
    } else {
        missing.min(surge.saturating_sub(in_flight))
    };
    if to_place > 0 {
        steps.push(Step::Place(to_place as u32));
    }
    steps
}

#[cfg(test)]
#[path = "reconcile_tests.rs"]
mod tests;
