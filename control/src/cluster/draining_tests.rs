//! A replica that goes drains first: out of the proxy's routes at once,
//! stopped once its requests in flight finish or its grace is over; and a
//! rollout with an update delay pauses between batches.

use super::node_settings_tests::{all_healthy, join};
use super::tests::{fixture, Fixture, NOW};
use super::*;
use crate::events::What;
use std::collections::HashSet;
use warren_proto::assignment::ReplicaId;
use warren_proto::ServiceSpec;

/// `web`, routed at web.example.com, with `replicas` replicas.
fn routed(replicas: u32) -> ServiceSpec {
    ServiceSpec {
        replicas,
        ports: vec![8080],
        hosts: vec!["web.example.com".to_owned()],
        stop_grace_ms: 5000,
        ..ServiceSpec::new("web", "local/busybox:1")
    }
}

/// One node, `a`, serving `spec`, every replica healthy.
fn serving(name: &str, spec: ServiceSpec) -> Fixture {
    let mut fixture = fixture(name, 1);
    join(&mut fixture, "a", 1);
    fixture.state.deploy(spec, NOW).unwrap();
    all_healthy(&mut fixture.state, "a");
    fixture
}

fn assigned(state: &ClusterState) -> Vec<String> {
    let (_, assignments) = state.assignments_for("a");
    assignments.into_iter().map(|a| a.replica.0).collect()
}

fn routed_to(state: &ClusterState) -> Vec<String> {
    state.routes().routes()[0]
        .upstreams
        .iter()
        .map(|u| u.replica.clone())
        .collect()
}

/// Where the proxy sends to `replica`.
fn address_of(state: &ClusterState, replica: &str) -> HashSet<SocketAddr> {
    let view = state.replicas_view();
    let view = view.iter().find(|r| r.id.0 == replica).unwrap();
    view.addresses.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn a_replica_scaled_away_leaves_the_routes_at_once_and_stops_when_idle_or_at_its_grace() {
    let mut fixture = serving("draining", routed(3));
    let state = &mut fixture.state;
    assert_eq!(routed_to(state), ["web-1", "web-2", "web-3"]);
    state.scale("web", 1, NOW).unwrap();
    // Both going replicas are out of the routes but still run.
    assert_eq!(routed_to(state), ["web-3"]);
    assert_eq!(assigned(state), ["web-1", "web-2", "web-3"]);
    let draining: Vec<bool> = state.replicas_view().iter().map(|r| r.draining).collect();
    assert_eq!(draining, [true, true, false]);
    // web-1 has a request in flight, web-2 none: web-2 stops.
    let t0 = Instant::now();
    let busy = address_of(state, "web-1");
    state.tick(t0, NOW, &busy);
    assert_eq!(assigned(state), ["web-1", "web-3"]);
    state.tick(t0 + Duration::from_millis(4900), NOW, &busy);
    assert_eq!(assigned(state), ["web-1", "web-3"], "within its grace");
    state.tick(t0 + Duration::from_secs(5), NOW, &busy);
    assert_eq!(assigned(state), ["web-3"], "its grace is over");
    let stopped: Vec<String> = state
        .events(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| matches!(e.what, What::ReplicaStopped { .. }))
        .map(|e| e.what.describe())
        .collect();
    assert_eq!(stopped.len(), 2, "{stopped:?}");
}

#[test]
fn a_rolling_update_replaces_a_routed_replica_after_it_has_drained() {
    let mut fixture = serving("draining-rollout", routed(1));
    let state = &mut fixture.state;
    let v2 = ServiceSpec {
        command: vec!["v2".to_owned()],
        ..routed(1)
    };
    state.deploy(v2, NOW + 1).unwrap();
    assert_eq!(assigned(state), ["web-1", "web-2"]);
    all_healthy(state, "a");
    assert_eq!(routed_to(state), ["web-2"], "traffic moved to the new one");
    assert_eq!(assigned(state), ["web-1", "web-2"], "web-1 drains");
    let busy = address_of(state, "web-1");
    state.tick(Instant::now(), NOW + 1, &busy);
    assert_eq!(assigned(state), ["web-1", "web-2"]);
    state.tick(Instant::now(), NOW + 1, &HashSet::new());
    assert_eq!(assigned(state), ["web-2"]);
    assert_eq!(
        state.history("web").unwrap()[1].outcome,
        crate::store::Outcome::Completed
    );
}

#[test]
fn an_update_delay_pauses_the_rollout_between_batches() {
    let spec = |command: &str| ServiceSpec {
        replicas: 2,
        command: vec![command.to_owned()],
        update: warren_proto::UpdatePolicy {
            delay_ms: 3000,
            ..Default::default()
        },
        ..ServiceSpec::new("web", "local/busybox:1")
    };
    let mut fixture = serving("update-delay", spec("v1"));
    let state = &mut fixture.state;
    state.deploy(spec("v2"), NOW + 1).unwrap();
    assert_eq!(assigned(state), ["web-1", "web-2", "web-3"]);
    // web-3 turns healthy: web-1 goes, and the next batch waits 3 s.
    all_healthy(state, "a");
    assert_eq!(assigned(state), ["web-2", "web-3"]);
    let t0 = Instant::now();
    let next = state.tick(t0, NOW + 2, &HashSet::new());
    assert_eq!(next.map(|at| at - t0), Some(Duration::from_secs(3)));
    state.tick(t0 + Duration::from_millis(2900), NOW + 4, &HashSet::new());
    assert_eq!(assigned(state), ["web-2", "web-3"], "paused");
    state.tick(t0 + Duration::from_secs(3), NOW + 5, &HashSet::new());
    assert_eq!(assigned(state), ["web-2", "web-3", "web-4"]);
    all_healthy(state, "a");
    assert_eq!(assigned(state), ["web-3", "web-4"]);
    let ids: Vec<ReplicaId> = state.replicas_view().into_iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 2);
}
