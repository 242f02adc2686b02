//! The reconciler by example, and rollouts simulated from any state.

use super::*;
use proptest::prelude::*;

fn replica(n: u64, generation: u64, healthy: bool) -> Replica {
    Replica {
        id: ReplicaId(format!("web-{n}")),
        generation,
        healthy,
        known: true,
        leaving: false,
        lost: false,
        placed: n,
    }
}

/// Applies steps: placed replicas start unhealthy.
struct Sim {
    service: ServiceState,
    next: u64,
}

impl Sim {
    fn apply(&mut self, steps: &[Step]) {
        for step in steps {
            match step {
                Step::Place(count) => {
                    for _ in 0..*count {
                        self.next += 1;
                        self.service.replicas.push(replica(
                            self.next,
                            self.service.generation,
                            false,
                        ));
                    }
                }
                Step::Remove(id) => self.service.replicas.retain(|r| &r.id != id),
            }
        }
    }

    /// Every node that had not reported since reconnecting does: the
    /// replicas it reports are unhealthy. Returns whether any was unknown.
    fn nodes_report(&mut self) -> bool {
        let mut any = false;
        for replica in &mut self.service.replicas {
            any |= !replica.known;
            replica.known = true;
        }
        any
    }

    /// Every lost node comes back: its replicas count again, not yet
    /// reported healthy.
    fn nodes_come_back(&mut self) {
        for replica in &mut self.service.replicas {
            replica.lost = false;
        }
    }

    fn healthy(&self) -> usize {
        self.service.replicas.iter().filter(|r| r.healthy).count()
    }

    /// Applies what the reconciler says, one replica turning healthy
    /// whenever it says nothing, until it has nothing more to say; checks
    /// `invariant` after each step. Returns the steps.
    fn run(&mut self, invariant: impl Fn(&Sim)) -> Vec<Step> {
        let mut log = Vec::new();
        for _ in 0..20 {
            let steps = reconcile(&self.service);
            if steps.is_empty() && !self.one_turns_healthy() {
                break;
            }
            log.extend(steps.iter().cloned());
            self.apply(&steps);
            invariant(self);
        }
        log
    }

    /// The oldest unhealthy replica of the current generation turns healthy.
    fn one_turns_healthy(&mut self) -> bool {
        let generation = self.service.generation;
        match self
            .service
            .replicas
            .iter_mut()
            .find(|r| !r.healthy && r.generation == generation && !r.leaving && !r.lost)
        {
            Some(r) => {
                r.healthy = true;
                r.known = true;
                true
            }
            None => false,
        }
    }
}

#[test]
fn a_new_service_places_all_its_replicas_and_then_needs_nothing() {
    let mut sim = Sim {
        service: ServiceState {
            generation: 1,
            desired: 3,
            parallelism: 1,
            order: UpdateOrder::StartFirst,
            paused: false,
            stopping: 0,
            replicas: Vec::new(),
        },
        next: 0,
    };
    assert_eq!(reconcile(&sim.service), vec![Step::Place(3)]);
    sim.apply(&reconcile(&sim.service));
    assert_eq!(
        reconcile(&sim.service),
        Vec::<Step>::new(),
        "placed replicas are not placed again while they start"
    );
    while sim.one_turns_healthy() {}
    assert!(reconcile(&sim.service).is_empty());
}

#[test]
fn a_new_generation_replaces_replica_by_replica() {
    let replicas = (1..=3).map(|n| replica(n, 1, true)).collect();
    let mut sim = Sim {
        service: rolling_out(replicas),
        next: 3,
    };
    let log = sim.run(|sim| {
        assert!(
            sim.healthy() >= 3 || sim.service.replicas.iter().any(|r| !r.healthy),
            "never fewer than 3 serving"
        );
    });
    assert_eq!(
        log,
        vec![
            Step::Place(1),
            Step::Remove(ReplicaId("web-1".into())),
            Step::Place(1),
            Step::Remove(ReplicaId("web-2".into())),
            Step::Place(1),
            Step::Remove(ReplicaId("web-3".into())),
        ]
    );
    assert!(sim
        .service
        .replicas
        .iter()
        .all(|r| r.generation == 2 && r.healthy));
}

#[test]
fn a_parallelism_of_two_starts_two_at_a_time_and_still_never_dips() {
    let replicas = (1..=3).map(|n| replica(n, 1, true)).collect();
    let mut sim = Sim {
        service: ServiceState {
            generation: 2,
            desired: 3,
            parallelism: 2,
            order: UpdateOrder::StartFirst,
            paused: false,
            stopping: 0,
            replicas,
        },
        next: 3,
    };
    assert_eq!(reconcile(&sim.service), vec![Step::Place(2)]);
    sim.apply(&reconcile(&sim.service));
    assert_eq!(
        reconcile(&sim.service),
        vec![],
        "two starting, the old serve"
    );
    assert!(sim.one_turns_healthy());
    let steps = reconcile(&sim.service);
    assert_eq!(
        steps,
        vec![Step::Remove(ReplicaId("web-1".into())), Step::Place(1)]
    );
    sim.apply(&steps);
    assert!(sim.healthy() >= 3, "never fewer than 3 serving");
}

#[test]
fn stop_first_removes_an_old_replica_before_it_places_its_replacement() {
    let replicas = (1..=3).map(|n| replica(n, 1, true)).collect();
    let mut sim = Sim {
        service: ServiceState {
            order: UpdateOrder::StopFirst,
            ..rolling_out(replicas)
        },
        next: 3,
    };
    let log = sim.run(|sim| {
        assert!(sim.service.replicas.len() <= 3, "never more than 3 running");
        assert!(sim.healthy() >= 2, "never fewer than 3 - 1 serving");
    });
    let remove = |n: u32| Step::Remove(ReplicaId(format!("web-{n}")));
    assert_eq!(
        log,
        vec![
            remove(1),
            Step::Place(1),
            remove(2),
            Step::Place(1),
            remove(3),
            Step::Place(1)
        ]
    );
}

#[test]
fn a_stop_first_replacement_waits_for_the_replica_still_stopping() {
    let service = ServiceState {
        order: UpdateOrder::StopFirst,
        stopping: 1,
        ..rolling_out(vec![replica(2, 1, true), replica(3, 1, true)])
    };
    assert_eq!(reconcile(&service), vec![], "web-1 still drains");
    let stopped = ServiceState {
        stopping: 0,
        ..service
    };
    assert_eq!(reconcile(&stopped), vec![Step::Place(1)]);
}

#[test]
fn a_paused_rollout_finishes_its_batch_and_begins_no_other() {
    // Start-first: web-4 of the new generation turned healthy; web-1 goes,
    // but no new replica starts until the pause is over.
    let mut replicas: Vec<Replica> = (1..=3).map(|n| replica(n, 1, true)).collect();
    replicas.push(replica(4, 2, true));
    let paused = ServiceState {
        paused: true,
        ..rolling_out(replicas.clone())
    };
    assert_eq!(
        reconcile(&paused),
        vec![Step::Remove(ReplicaId("web-1".into()))]
    );
    let resumed = ServiceState {
        paused: false,
        ..paused.clone()
    };
    assert_eq!(
        reconcile(&resumed),
        vec![Step::Remove(ReplicaId("web-1".into())), Step::Place(1)]
    );
    // Stop-first: web-1 is gone and web-4 healthy; no old one goes while
    // paused.
    replicas.remove(0);
    let stop_first = ServiceState {
        order: UpdateOrder::StopFirst,
        ..rolling_out(replicas)
    };
    assert_eq!(
        reconcile(&ServiceState {
            paused: true,
            ..stop_first.clone()
        }),
        vec![]
    );
    assert_eq!(
        reconcile(&stop_first),
        vec![Step::Remove(ReplicaId("web-2".into()))]
    );
}

#[test]
fn stop_first_places_no_replacement_beside_a_replica_of_unknown_health() {
    let unknown = Replica {
        known: false,
        ..replica(1, 1, false)
    };
    let service = ServiceState {
        desired: 1,
        order: UpdateOrder::StopFirst,
        ..rolling_out(vec![unknown])
    };
    assert_eq!(reconcile(&service), vec![], "it may still run");
}

/// Generation 2 of a service of 3, over `replicas`.
fn rolling_out(replicas: Vec<Replica>) -> ServiceState {
    ServiceState {
        generation: 2,
        desired: 3,
        parallelism: 1,
        order: UpdateOrder::StartFirst,
        paused: false,
        replicas,
        stopping: 0,
    }
}

#[test]
fn scaling_down_removes_the_newest_and_to_zero_removes_everything() {
    let replicas: Vec<Replica> = (1..=4).map(|n| replica(n, 1, true)).collect();
    let service = ServiceState {
        generation: 1,
        desired: 2,
        parallelism: 1,
        order: UpdateOrder::StartFirst,
        paused: false,
        stopping: 0,
        replicas: replicas.clone(),
    };
    assert_eq!(
        reconcile(&service),
        vec![
            Step::Remove(ReplicaId("web-4".into())),
            Step::Remove(ReplicaId("web-3".into()))
        ]
    );
    let mut old: Vec<Replica> = replicas;
    old.iter_mut().for_each(|r| r.generation = 0);
    let zero = ServiceState {
        generation: 1,
        desired: 0,
        parallelism: 1,
        order: UpdateOrder::StartFirst,
        paused: false,
        stopping: 0,
        replicas: old,
    };
    assert_eq!(reconcile(&zero).len(), 4);
}

#[test]
fn replicas_on_a_leaving_node_move_before_they_go_and_dead_ones_go_at_once() {
    let mut leaving = replica(1, 1, true);
    leaving.leaving = true;
    let mut dead = replica(2, 1, false);
    dead.leaving = true;
    let service = ServiceState {
        generation: 1,
        desired: 3,
        parallelism: 1,
        order: UpdateOrder::StartFirst,
        paused: false,
        stopping: 0,
        replicas: vec![leaving, dead, replica(3, 1, true)],
    };
    assert_eq!(
        reconcile(&service),
        vec![Step::Remove(ReplicaId("web-2".into())), Step::Place(1)]
    );
}

#[test]
fn replicas_on_a_lost_node_are_replaced_at_once_and_removed_once_the_replacements_serve() {
    let lost = |n| Replica {
        lost: true,
        ..replica(n, 1, false)
    };
    let mut sim = Sim {
        service: ServiceState {
            generation: 1,
            desired: 3,
            parallelism: 1,
            order: UpdateOrder::StartFirst,
            paused: false,
            stopping: 0,
            replicas: vec![lost(1), lost(2), replica(3, 1, true)],
        },
        next: 3,
    };
    assert_eq!(
        reconcile(&sim.service),
        vec![Step::Place(2)],
        "both at once"
    );
    sim.apply(&reconcile(&sim.service));
    assert!(sim.one_turns_healthy());
    assert_eq!(
        reconcile(&sim.service),
        vec![],
        "kept while one still starts"
    );
    assert!(sim.one_turns_healthy());
    assert_eq!(
        reconcile(&sim.service),
        vec![
            Step::Remove(ReplicaId("web-1".into())),
            Step::Remove(ReplicaId("web-2".into()))
        ]
    );
}

#[test]
fn a_lost_node_that_comes_back_first_leaves_no_surplus_and_no_gap() {
    let mut sim = Sim {
        service: ServiceState {
            generation: 1,
            desired: 2,
            parallelism: 1,
            order: UpdateOrder::StartFirst,
            paused: false,
            stopping: 0,
            replicas: vec![
                Replica {
                    lost: true,
                    ..replica(1, 1, false)
                },
                replica(2, 1, true),
            ],
        },
        next: 2,
    };
    sim.apply(&reconcile(&sim.service));
    assert_eq!(sim.service.replicas.len(), 3, "a replacement, web-3");
    sim.nodes_come_back();
    // web-1 and web-3 both start: one of them goes; web-2 still serves.
    let steps = reconcile(&sim.service);
    assert_eq!(steps, vec![Step::Remove(ReplicaId("web-3".into()))]);
    sim.apply(&steps);
    assert!(sim.one_turns_healthy());
    assert_eq!(sim.healthy(), 2);
    assert!(reconcile(&sim.service).is_empty());
}

#[test]
fn a_restarted_control_plane_keeps_old_replicas_whose_health_it_does_not_know_yet() {
    // Mid-rollout: web-1 (old) served, web-2 (new) was starting; the
    // control plane restarts and knows neither's health.
    let unknown = |n, generation| Replica {
        known: false,
        ..replica(n, generation, false)
    };
    let mut sim = Sim {
        service: ServiceState {
            generation: 2,
            desired: 1,
            parallelism: 1,
            order: UpdateOrder::StartFirst,
            paused: false,
            stopping: 0,
            replicas: vec![unknown(1, 1), unknown(2, 2)],
        },
        next: 2,
    };
    assert_eq!(
        reconcile(&sim.service),
        vec![],
        "nothing stopped, nothing placed"
    );
    // The nodes report: web-1 healthy, web-2 not yet.
    sim.service.replicas[0].known = true;
    sim.service.replicas[0].healthy = true;
    sim.service.replicas[1].known = true;
    assert_eq!(
        reconcile(&sim.service),
        vec![],
        "web-1 serves until web-2 does"
    );
    assert!(sim.one_turns_healthy());
    assert_eq!(
        reconcile(&sim.service),
        vec![Step::Remove(ReplicaId("web-1".into()))]
    );
}

fn arbitrary_replicas() -> impl Strategy<Value = Vec<Replica>> {
    let flags = (
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.3),
    );
    proptest::collection::vec((0u64..3, flags), 0..8).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(
                |(n, (generation, (healthy, leaving, lost, unknown)))| Replica {
                    leaving,
                    lost,
                    known: !unknown,
                    // A lost node's replicas, and those not reported, serve nobody.
                    ..replica(n as u64 + 1, generation, healthy && !lost && !unknown)
                },
            )
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// From any state, a service reaches exactly its desired replicas of
    /// the current generation, all healthy; on the way the reconciler never
    /// removes a healthy replica while that leaves fewer healthy replicas
    /// than the desired count (with stop-first, than the desired count less
    /// `parallelism`; paused, than the desired count); with start-first,
    /// while replicas that must go still serve it places at most
    /// `parallelism` replacements at a time, none while paused; with
    /// stop-first it never runs more than the desired count.
    #[test]
    fn any_service_converges_without_dropping_what_serves(
        replicas in arbitrary_replicas(),
        desired in 0u32..5,
        generation in 1u64..3,
        back_at in proptest::option::of(0usize..10),
        parallelism in 1u32..4,
        stop_first in any::<bool>(),
        paused_until in 0usize..6,
    ) {
        let order = if stop_first { UpdateOrder::StopFirst } else { UpdateOrder::StartFirst };
        let service = ServiceState { generation, desired, parallelism, order, paused: false, replicas, stopping: 0 };
        let mut sim = Sim { service, next: 100 };
        for round in 0..100 {
            if back_at == Some(round) {
                sim.nodes_come_back();
            }
            sim.service.paused = round < paused_until;
            let current = |r: &Replica| r.generation == generation && !r.leaving;
            let serving_staying = sim.service.replicas.iter().filter(|r| r.healthy && current(r)).count();
            let before = sim.healthy();
            let steps = reconcile(&sim.service);
            let placing: u32 = steps.iter().map(|s| if let Step::Place(n) = s { *n } else { 0 }).sum();
            let going_serving = sim.service.replicas.iter().any(|r| !current(r) && r.healthy);
            for step in &steps {
                if let Step::Remove(id) = step {
                    let replica = sim.service.replicas.iter().find(|r| &r.id == id).unwrap();
                    if replica.lost && current(replica) {
                        prop_assert!(serving_staying >= desired as usize, "a lost replica removed before its replacement served");
                    }
                    if !current(replica) && !replica.known && !replica.lost {
                        prop_assert!(serving_staying >= desired as usize, "a replica of unknown health taken for dead");
                    }
                }
            }
            sim.apply(&steps);
            let after = sim.healthy();
            let floor = match stop_first && !sim.service.paused {
                true => desired.saturating_sub(parallelism),
                false => desired,
            };
            prop_assert!(after >= before.min(floor as usize), "{} -> {} healthy: {:?}", before, after, steps);
            if going_serving && placing > 0 && !stop_first {
                let starting = sim.service.replicas.iter().filter(|r| !r.healthy && current(r) && !r.lost).count();
                prop_assert!(starting <= parallelism as usize, "surge over {}: {:?}", parallelism, sim.service);
                prop_assert!(!sim.service.paused || stop_first, "a batch begun while paused: {:?}", steps);
            }
            if stop_first && placing > 0 {
                let running = sim.service.replicas.iter().filter(|r| !r.lost && (current(r) || r.healthy || !r.known)).count();
                prop_assert!(running <= desired as usize, "stop-first ran {} of {}: {:?}", running, desired, sim.service);
            }
            let waiting = back_at.is_some_and(|b| b >= round) || round < paused_until;
            if steps.is_empty() && !sim.one_turns_healthy() && !sim.nodes_report() && !waiting {
                break;
            }
        }
        prop_assert!(reconcile(&sim.service).is_empty());
        prop_assert_eq!(sim.service.replicas.len(), desired as usize);
        prop_assert!(sim.service.replicas.iter().all(|r| r.generation == generation && !r.leaving && r.healthy));
    }
}
