//! The cluster state under chaos: a service on three nodes through random
//! sequences of agents going away and coming back, health flips, drains
//! (plain and forced), deploys, scales and restarts of the control plane,
//! with time passing.
//!
//! After every event the control plane's own steps have kept as many
//! healthy replicas as the reconciler promises ([`crate::reconcile`]):
//! at least as many as served once the event itself was taken (a node that
//! went away no longer serves, a replica reported unhealthy does not, nor
//! one a forced drain stopped), or
//! the desired count if that is fewer, less `parallelism` with stop-first
//! order while the rollout is not paused between batches. Once the events
//! stop and the world settles (every node back, every replica reported
//! healthy, the time past every healthy deadline), nothing runs on a
//! drained node, the service runs exactly its desired replicas of its
//! current generation, all healthy, and no rollout is still rolling out.

use super::node_settings_tests::{all_healthy, join, report};
use super::tests::{fixture, rejoin, state_over, state_started, Fixture, NOW};
use super::*;
use crate::store::Outcome;
use crate::workloads::WorkloadError;
use proptest::prelude::*;
use std::collections::BTreeSet;
use warren_proto::assignment::{Health, ReplicaId};
use warren_proto::{ServiceSpec, UpdateOrder, UpdatePolicy};

/// The nodes, each with the seed it joined with.
const NODES: [(&str, u8); 3] = [("a", 1), ("b", 2), ("c", 3)];

/// The one service.
const SERVICE: &str = "web";

/// How long each settling round lets pass: more than any update delay.
const ROUND: Duration = Duration::from_secs(3);

/// The most settling rounds before the world must have settled.
const ROUNDS: usize = 30;

/// Something that happens to the cluster.
#[derive(Debug, Clone)]
enum Event {
    /// The node's agent connection ends.
    Disconnect(&'static str),
    /// The node's agent connects again (if it is not connected).
    Reconnect(&'static str),
    /// The node's agent (if connected) reports its replicas: the `n`th is
    /// starting if bits `2n..2n+2` of the mask are 2, unhealthy if 3,
    /// healthy otherwise.
    Report(&'static str, u32),
    /// `warren node drain` (refused here when it would leave no node to
    /// place on: capacity must allow).
    Drain(&'static str),
    /// `warren node drain --force`: what is left on the node stops at once
    /// (refused like a drain).
    ForceDrain(&'static str),
    /// `warren node activate`.
    Activate(&'static str),
    /// `warren deploy` of a new generation: the command changes.
    Deploy,
    /// `warren scale`.
    Scale(u32),
    /// The control plane restarts over the same store.
    Restart,
    /// This many milliseconds pass, and the control plane ticks.
    Tick(u64),
}

/// The health bits of the mask in [`Event::Report`] say for the `n`th
/// replica.
fn health(mask: u32, n: usize) -> Health {
    match mask.checked_shr(2 * n as u32).unwrap_or(0) & 3 {
        2 => Health::Starting,
        3 => Health::Unhealthy,
        _ => Health::Healthy,
    }
}

/// The service as first deployed: its scale and update policy.
fn service() -> impl Strategy<Value = ServiceSpec> {
    (
        1u32..=4,
        1u32..=3,
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(0u64), Just(2000)],
        any::<bool>(),
        prop_oneof![Just(10u32), Just(60)],
    )
        .prop_map(
            |(replicas, parallelism, stop_first, routed, delay_ms, auto_rollback, deadline)| {
                ServiceSpec {
                    replicas,
                    ports: vec![8080],
                    hosts: match routed {
                        true => vec!["web.example.com".to_owned()],
                        false => Vec::new(),
                    },
                    stop_grace_ms: 5000,
                    command: vec!["v1".to_owned()],
                    update: UpdatePolicy {
                        parallelism,
                        order: match stop_first {
                            true => UpdateOrder::StopFirst,
                            false => UpdateOrder::StartFirst,
                        },
                        delay_ms,
                        auto_rollback,
                        healthy_deadline_secs: deadline,
                        ..UpdatePolicy::default()
                    },
                    ..ServiceSpec::new(SERVICE, "local/busybox:1")
                }
            },
        )
}

/// Any one event, the likelier the more often it happens to a cluster.
fn event() -> impl Strategy<Value = Event> {
    let node = || prop::sample::select(NODES.map(|(name, _)| name).to_vec());
    prop_oneof![
        2 => node().prop_map(Event::Disconnect),
        3 => node().prop_map(Event::Reconnect),
        6 => (node(), any::<u32>()).prop_map(|(node, mask)| Event::Report(node, mask)),
        1 => node().prop_map(Event::Drain),
        1 => node().prop_map(Event::ForceDrain),
        1 => node().prop_map(Event::Activate),
        2 => Just(Event::Deploy),
        1 => (0u32..=3).prop_map(Event::Scale),
        1 => Just(Event::Restart),
        3 => prop_oneof![Just(250u64), Just(1000), Just(3000), Just(11_000)].prop_map(Event::Tick),
    ]
}

/// The cluster and the world around it.
struct Chaos {
    fixture: Fixture,
    /// When the simulated time began.
    start: Instant,
    /// How much simulated time has passed.
    clock: Duration,
    /// The last command deployed is `v{version}`.
    version: u32,
    /// The nodes drained and not activated since.
    drained: BTreeSet<&'static str>,
}

impl Chaos {
    /// Three nodes serving `spec`, every replica healthy.
    fn new(spec: ServiceSpec) -> Chaos {
        let mut fixture = fixture("chaos", NODES.len() as u32);
        for (name, seed) in NODES {
            join(&mut fixture, name, seed);
        }
        fixture.state.deploy(spec, NOW).unwrap();
        for (name, _) in NODES {
            all_healthy(&mut fixture.state, name);
        }
        Chaos {
            fixture,
            start: Instant::now(),
            clock: Duration::ZERO,
            version: 1,
            drained: BTreeSet::new(),
        }
    }

    /// The control plane's state as it is now (a restart replaces it).
    fn state(&mut self) -> &mut ClusterState {
        &mut self.fixture.state
    }

    /// The simulated time, for liveness, draining and update delays.
    fn now(&self) -> Instant {
        self.start + self.clock
    }

    /// The simulated time in unix seconds, for deploys and deadlines.
    fn unix_now(&self) -> u64 {
        NOW + self.clock.as_secs()
    }

    /// The service's spec as it is now (a rollback changes it too).
    fn spec(&self) -> &ServiceSpec {
        &self.fixture.state.workloads.service(SERVICE).unwrap().spec
    }

    /// The replicas the proxy may send to: reported healthy, not draining.
    fn serving(&self) -> BTreeSet<ReplicaId> {
        self.fixture
            .state
            .workloads
            .routable_replicas_of(SERVICE)
            .map(|r| r.id.clone())
            .collect()
    }

    /// How many of the replicas that served once an event was taken the
    /// control plane's steps must keep: the desired count, less the
    /// parallelism with stop-first order while not paused between batches.
    fn floor(&self) -> usize {
        let spec = self.spec();
        let paused = self.fixture.state.workloads.delays.is_paused(SERVICE);
        let dip = match spec.update.order == UpdateOrder::StopFirst && !paused {
            true => spec.update.parallelism,
            false => 0,
        };
        spec.replicas.saturating_sub(dip) as usize
    }

    /// Makes `event` happen; returns the replicas that serve once the
    /// event itself is taken, before the control plane's own steps.
    fn apply(&mut self, event: &Event) -> BTreeSet<ReplicaId> {
        let serving = self.serving();
        let before = self.state().replicas_view();
        let on = |node: &str| -> BTreeSet<ReplicaId> {
            before
                .iter()
                .filter(|r| r.node == node)
                .map(|r| r.id.clone())
                .collect()
        };
        let (now, unix_now) = (self.now(), self.unix_now());
        match *event {
            Event::Disconnect(node) => {
                if let Some(online) = self.state().online.get(node).copied() {
                    self.state().disconnected(node, online.connection, now);
                    return &serving - &on(node);
                }
            }
            Event::Reconnect(node) => {
                if !self.state().online.contains_key(node) {
                    let seed = NODES.iter().find(|(name, _)| *name == node).unwrap().1;
                    rejoin(self.state(), node, seed, unix_now);
                }
            }
            Event::Report(node, mask) => {
                if self.state().online.contains_key(node) {
                    let reported = report(self.state(), node, |n| health(mask, n), unix_now);
                    let reported_healthy: BTreeSet<ReplicaId> = reported
                        .iter()
                        .filter(|s| s.health == Health::Healthy)
                        .filter(|s| before.iter().any(|r| r.id == s.replica && !r.draining))
                        .map(|s| s.replica.clone())
                        .collect();
                    return &(&serving - &on(node)) | &reported_healthy;
                }
            }
            Event::Drain(node) | Event::ForceDrain(node) => {
                let others_drained = self.drained.iter().filter(|d| **d != node).count();
                if others_drained < NODES.len() - 1 {
                    self.state().drain_node(node, true, unix_now).unwrap();
                    self.drained.insert(node);
                    if let Event::ForceDrain(_) = event {
                        // The operator stops them: they no longer serve.
                        self.state().stop_replicas_on(node, unix_now).unwrap();
                        return &serving - &on(node);
                    }
                }
            }
            Event::Activate(node) => {
                self.state().drain_node(node, false, unix_now).unwrap();
                self.drained.remove(node);
            }
            Event::Deploy => {
                self.version += 1;
                let spec = ServiceSpec {
                    command: vec![format!("v{}", self.version)],
                    ..self.spec().clone()
                };
                let outcome = self.state().deploy(spec, unix_now).map(drop);
                refused_only_for_room(outcome);
            }
            Event::Scale(replicas) => {
                let outcome = self.state().scale(SERVICE, replicas, unix_now).map(drop);
                refused_only_for_room(outcome);
            }
            Event::Restart => {
                self.fixture.state = state_started(&self.fixture.dir, false, now);
                return BTreeSet::new();
            }
            Event::Tick(millis) => {
                self.clock += Duration::from_millis(millis);
                let (now, unix_now) = (self.now(), self.unix_now());
                self.state().tick(now, unix_now, &HashSet::new());
            }
        }
        serving
    }

    /// Makes `event` happen and checks that the control plane kept what
    /// serves (see the module doc).
    fn step(&mut self, event: &Event) -> Result<(), TestCaseError> {
        let kept = self.apply(event);
        let serving = self.serving();
        let floor = self.floor();
        prop_assert!(
            serving.len() >= kept.len().min(floor),
            "after {:?}, {} replicas serve ({:?}), of {:?} that served and a floor of {}: {:#?}",
            event,
            serving.len(),
            serving,
            kept,
            floor,
            self.fixture.state.replicas_view()
        );
        Ok(())
    }

    /// Whether the service runs exactly its desired replicas of its current
    /// generation, all healthy and none on a drained node, and its rollout
    /// has ended.
    fn settled(&self) -> bool {
        let state = &self.fixture.state;
        let service = state.workloads.service(SERVICE).unwrap();
        let replicas = state.workloads.replicas_of(SERVICE);
        state.workloads.rolling_out.is_empty()
            && replicas.len() == service.spec.replicas as usize
            && replicas.iter().all(|r| {
                r.generation == service.generation && !self.drained.contains(r.node.as_str())
            })
            && self.serving().len() == replicas.len()
    }

    /// Every node comes back and reports its replicas healthy, round after
    /// round with time passing, until the service has settled; then the
    /// time passes every healthy deadline.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        for (node, _) in NODES {
            self.step(&Event::Reconnect(node))?;
        }
        for _ in 0..ROUNDS {
            if self.settled() {
                break;
            }
            for (node, _) in NODES {
                self.step(&Event::Report(node, 0))?;
            }
            self.step(&Event::Tick(ROUND.as_millis() as u64))?;
        }
        prop_assert!(
            self.settled(),
            "not settled: {:#?}",
            self.fixture.state.replicas_view()
        );
        let deadline = u64::from(self.spec().update.healthy_deadline_secs);
        self.step(&Event::Tick((deadline + 1) * 1000))?;
        Ok(())
    }

    /// What must hold once the world has settled.
    fn check_settled(&mut self) -> Result<(), TestCaseError> {
        prop_assert!(
            self.settled(),
            "not settled: {:#?}",
            self.state().replicas_view()
        );
        let state = &self.fixture.state;
        let drained: BTreeSet<&str> = NODES
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| state.node_settings(name).drained)
            .collect();
        prop_assert_eq!(&drained, &self.drained, "the drains as stored");
        for replica in state.replicas_view() {
            prop_assert!(
                !self.drained.contains(replica.node.as_str()),
                "{} runs on {}, drained",
                replica.id.0,
                replica.node
            );
            prop_assert!(!replica.draining, "{} still draining", replica.id.0);
        }
        let view = &state.services_view()[0];
        prop_assert_eq!(view.healthy, view.desired);
        let history = state.history(SERVICE).unwrap();
        prop_assert!(
            history.iter().all(|g| g.outcome != Outcome::RollingOut),
            "{:#?}",
            history
        );
        Ok(())
    }
}

/// A deploy or scale is refused, if at all, only because its replicas have
/// no room now (no node is up to take them).
fn refused_only_for_room(outcome: Result<(), WorkloadCommandError>) {
    match outcome {
        Ok(()) | Err(WorkloadCommandError::Refused(WorkloadError::Unplaceable { .. })) => {}
        Err(error) => panic!("refused: {error}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever happens, the control plane keeps what serves as the
    /// reconciler promises, and the cluster settles (see the module doc).
    #[test]
    fn a_service_under_chaos_keeps_serving_and_settles(
        spec in service(),
        events in proptest::collection::vec(event(), 1..40),
    ) {
        let mut chaos = Chaos::new(spec);
        for event in &events {
            chaos.step(event)?;
        }
        chaos.settle()?;
        chaos.check_settled()?;
    }
}

/// Found by the property: a control plane that has just restarted has not
/// heard yet what any node offers, and took every node for one too small
/// for any replica: each deploy was refused as too large until the agents
/// were back. It now waits for room like a deploy while nodes are offline.
#[test]
fn a_deploy_right_after_a_restart_is_not_refused_as_too_large() {
    let mut fixture = fixture("chaos-restart-deploy", 1);
    join(&mut fixture, "a", 1);
    let v1 = ServiceSpec::new(SERVICE, "local/busybox:1");
    fixture.state.deploy(v1.clone(), NOW).unwrap();
    fixture.state = state_over(&fixture.dir);
    let v2 = ServiceSpec {
        command: vec!["v2".to_owned()],
        ..v1
    };
    let refused = fixture.state.deploy(v2.clone(), NOW).unwrap_err();
    assert!(
        matches!(
            refused,
            WorkloadCommandError::Refused(WorkloadError::Unplaceable { .. })
        ),
        "{refused}"
    );
    rejoin(&mut fixture.state, "a", 1, NOW);
    fixture.state.deploy(v2, NOW).unwrap();
}

/// Found by the property: a stop-first deploy of a service of one replica
/// stopped the old replica and left placing its replacement to whatever
/// next converged the workloads: with nothing else happening, the service
/// ran no replica at all until its rollout failed at its deadline.
#[test]
fn a_stop_first_deploy_places_the_replacement_of_the_replica_it_stops() {
    let mut fixture = fixture("chaos-stop-first", 1);
    join(&mut fixture, "a", 1);
    let v1 = ServiceSpec {
        update: UpdatePolicy {
            order: UpdateOrder::StopFirst,
            ..UpdatePolicy::default()
        },
        ..ServiceSpec::new(SERVICE, "local/busybox:1")
    };
    let state = &mut fixture.state;
    state.deploy(v1.clone(), NOW).unwrap();
    all_healthy(state, "a");
    let v2 = ServiceSpec {
        command: vec!["v2".to_owned()],
        ..v1
    };
    let replicas = state.deploy(v2, NOW + 1).unwrap();
    let generations: Vec<u64> = replicas.iter().map(|r| r.generation).collect();
    assert_eq!(generations, [2], "web-1 stopped, web-2 placed");
    all_healthy(state, "a");
    assert_eq!(
        state.history(SERVICE).unwrap()[1].outcome,
        Outcome::Completed
    );
}
