//! The converger against a simulated daemon: examples, and convergence
//! from any starting state as a property.

use super::*;
use proptest::prelude::*;
use warren_proto::ServiceSpec;

/// A daemon in memory: containers and a clock for creation order.
#[derive(Debug, Default, Clone)]
struct Daemon {
    containers: Vec<Observed>,
    next: u64,
}

impl Daemon {
    fn apply(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::Start(assignment) => {
                    self.next += 1;
                    self.containers.push(Observed {
                        container: format!("c{}", self.next),
                        replica: assignment.replica.clone(),
                        generation: assignment.generation,
                        state: ContainerState::Running { unhealthy: false },
                        created: self.next,
                    });
                }
                Action::Stop { container } => {
                    if let Some(c) = self
                        .containers
                        .iter_mut()
                        .find(|c| &c.container == container)
                    {
                        c.state = ContainerState::Exited { code: 137 };
                    }
                }
                Action::Remove { container } => {
                    self.containers.retain(|c| &c.container != container)
                }
            }
        }
    }

    fn crash(&mut self, replica: &str, code: i64) {
        for c in &mut self.containers {
            if c.replica.0 == replica && matches!(c.state, ContainerState::Running { .. }) {
                c.state = ContainerState::Exited { code };
            }
        }
    }

    fn live(&self, replica: &str) -> Vec<&Observed> {
        self.containers
            .iter()
            .filter(|c| c.replica.0 == replica && !matches!(c.state, ContainerState::Exited { .. }))
            .collect()
    }
}

fn assignment(replica: &str, generation: u64, restart: RestartPolicy) -> Assignment {
    Assignment {
        replica: ReplicaId(replica.to_owned()),
        generation,
        spec: ServiceSpec {
            ports: vec![8080],
            restart,
            ..ServiceSpec::new("web", "local/busybox:1")
        },
        host_ports: vec![20000],
    }
}

/// Converges until nothing is left to do, moving the clock past every
/// backoff; returns the number of rounds.
fn settle(
    converger: &mut Converger,
    daemon: &mut Daemon,
    assigned: &[Assignment],
    now: &mut Instant,
) -> usize {
    for round in 0..50 {
        let actions = converger.converge(assigned, &daemon.containers, *now);
        if actions.is_empty() {
            match converger.next_wakeup() {
                Some(at) if at > *now => *now = at,
                _ => return round,
            }
            continue;
        }
        daemon.apply(&actions);
    }
    panic!("did not settle: {daemon:?}");
}

#[test]
fn assigned_replicas_start_once_and_a_second_pass_does_nothing() {
    let mut converger = Converger::new();
    let mut daemon = Daemon::default();
    let now = Instant::now();
    let assigned = [
        assignment("web-1", 1, RestartPolicy::Always),
        assignment("web-2", 1, RestartPolicy::Always),
    ];
    let actions = converger.converge(&assigned, &daemon.containers, now);
    assert_eq!(actions.len(), 2);
    assert!(actions.iter().all(|a| matches!(a, Action::Start(_))));
    daemon.apply(&actions);
    assert!(converger
        .converge(&assigned, &daemon.containers, now)
        .is_empty());
    assert_eq!(converger.restarts(&ReplicaId("web-1".into())), 0);
}

#[test]
fn a_crash_restarts_after_a_growing_backoff_and_keeps_the_last_container_for_its_logs() {
    let mut converger = Converger::new();
    let mut daemon = Daemon::default();
    let mut now = Instant::now();
    let assigned = [assignment("web-1", 1, RestartPolicy::Always)];
    daemon.apply(&converger.converge(&assigned, &daemon.containers, now));
    let mut waits = Vec::new();
    for _ in 0..7 {
        daemon.crash("web-1", 1);
        let crashed_at = now;
        // Nothing starts before the backoff (the older exited container
        // may go at once).
        let early = converger.converge(&assigned, &daemon.containers, now);
        assert!(
            !early.iter().any(|a| matches!(a, Action::Start(_))),
            "{early:?}"
        );
        daemon.apply(&early);
        now = converger.next_wakeup().unwrap();
        waits.push(now - crashed_at);
        daemon.apply(&converger.converge(&assigned, &daemon.containers, now));
        assert_eq!(daemon.live("web-1").len(), 1);
        let exited = daemon.containers.len() - 1;
        assert_eq!(
            exited, 1,
            "only the last exited container is kept: {daemon:?}"
        );
    }
    let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(converger.restarts(&ReplicaId("web-1".into())), 7);
    // A replica that ran long enough starts its backoff over.
    now += BACKOFF_RESET;
    daemon.crash("web-1", 1);
    let crashed_at = now;
    let early = converger.converge(&assigned, &daemon.containers, now);
    assert!(
        !early.iter().any(|a| matches!(a, Action::Start(_))),
        "{early:?}"
    );
    assert_eq!(converger.next_wakeup().unwrap() - crashed_at, FIRST_BACKOFF);
}

#[test]
fn restart_policies_decide_what_an_exit_means() {
    for (policy, code, restarted) in [
        (RestartPolicy::Always, 0, true),
        (RestartPolicy::OnFailure, 0, false),
        (RestartPolicy::OnFailure, 2, true),
        (RestartPolicy::Never, 2, false),
    ] {
        let mut converger = Converger::new();
        let mut daemon = Daemon::default();
        let mut now = Instant::now();
        let assigned = [assignment("web-1", 1, policy)];
        daemon.apply(&converger.converge(&assigned, &daemon.containers, now));
        daemon.crash("web-1", code);
        settle(&mut converger, &mut daemon, &assigned, &mut now);
        assert_eq!(
            daemon.live("web-1").len(),
            usize::from(restarted),
            "{policy:?} exit {code}"
        );
    }
}

#[test]
fn an_unhealthy_replica_is_replaced_unless_the_policy_says_never() {
    for (policy, replaced) in [
        (RestartPolicy::Always, true),
        (RestartPolicy::OnFailure, true),
        (RestartPolicy::Never, false),
    ] {
        let mut converger = Converger::new();
        let mut daemon = Daemon::default();
        let mut now = Instant::now();
        let assigned = [assignment("web-1", 1, policy)];
        daemon.apply(&converger.converge(&assigned, &daemon.containers, now));
        daemon.containers[0].state = ContainerState::Running { unhealthy: true };
        settle(&mut converger, &mut daemon, &assigned, &mut now);
        let live = daemon.live("web-1");
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].container != "c1", replaced, "{policy:?}");
        assert_eq!(
            converger.restarts(&ReplicaId("web-1".into())),
            u32::from(replaced)
        );
    }
}

#[test]
fn adopted_duplicates_old_generations_and_strays_are_cleaned_up() {
    let mut converger = Converger::new();
    let observed = |container: &str, replica: &str, generation, created| Observed {
        container: container.to_owned(),
        replica: ReplicaId(replica.to_owned()),
        generation,
        state: ContainerState::Running { unhealthy: false },
        created,
    };
    let daemon = vec![
        observed("a", "web-1", 2, 5),
        observed("b", "web-1", 2, 3),
        observed("c", "web-1", 1, 1),
        observed("d", "gone-1", 1, 2),
    ];
    let assigned = [assignment("web-1", 2, RestartPolicy::Always)];
    let mut actions = converger.converge(&assigned, &daemon, Instant::now());
    actions.sort_by_key(|a| format!("{a:?}"));
    let removed: Vec<&str> = actions
        .iter()
        .map(|a| match a {
            Action::Remove { container } => container.as_str(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(removed, vec!["a", "c", "d"], "the older duplicate b stays");
}

fn arbitrary_container() -> impl Strategy<Value = Observed> {
    (0u8..4, 1u64..3, 0u8..4, any::<u64>(), -2i64..3).prop_map(
        |(replica, generation, state, created, code)| Observed {
            container: format!("x{created}"),
            replica: ReplicaId(format!("web-{replica}")),
            generation,
            state: match state {
                0 => ContainerState::Created,
                1 => ContainerState::Running { unhealthy: false },
                2 => ContainerState::Running { unhealthy: true },
                _ => ContainerState::Exited { code },
            },
            created,
        },
    )
}

proptest! {
    /// From any daemon state, converging settles with exactly one live
    /// container per replica the policy keeps running, of the assigned
    /// generation, none for unassigned replicas, at most one exited
    /// container per replica — and then does nothing more.
    #[test]
    fn any_daemon_state_converges_to_the_assignments(
        containers in proptest::collection::vec(arbitrary_container(), 0..10),
        assigned in proptest::collection::btree_map(0u8..4, (1u64..3, 0u8..3), 0..4),
    ) {
        let mut unique = containers;
        unique.sort_by(|a, b| a.container.cmp(&b.container));
        unique.dedup_by(|a, b| a.container == b.container);
        let mut daemon = Daemon { containers: unique, next: u64::MAX / 2 };
        let assigned: Vec<Assignment> = assigned
            .into_iter()
            .map(|(replica, (generation, policy))| {
                let policy = [RestartPolicy::Always, RestartPolicy::OnFailure, RestartPolicy::Never][policy as usize];
                assignment(&format!("web-{replica}"), generation, policy)
            })
            .collect();
        let mut converger = Converger::new();
        let mut now = Instant::now();
        settle(&mut converger, &mut daemon, &assigned, &mut now);
        for container in &daemon.containers {
            let assignment = assigned.iter().find(|a| a.replica == container.replica);
            prop_assert!(assignment.is_some(), "a stray survived: {:?}", container);
            prop_assert_eq!(Some(container.generation), assignment.map(|a| a.generation));
        }
        for assignment in &assigned {
            let live = daemon.live(&assignment.replica.0);
            let exited = daemon.containers.iter().filter(|c| c.replica == assignment.replica && matches!(c.state, ContainerState::Exited { .. })).count();
            prop_assert!(live.len() <= 1 && exited <= 1, "{:?}", daemon);
            if assignment.spec.restart == RestartPolicy::Always {
                prop_assert_eq!(live.len(), 1);
            }
        }
        prop_assert!(converger.converge(&assigned, &daemon.containers, now).is_empty());
    }
}
