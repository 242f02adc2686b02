//! A node that goes away: offline at once, lost after the replace-after
//! time (its replicas are placed again elsewhere), and when it comes back
//! nothing is left over and nothing served fewer than asked.

use super::node_settings_tests::{all_healthy, join, placed_on};
use super::tests::{fixture, rejoin, Fixture, NOW, REPLACE_AFTER};
use super::*;
use crate::events::What;
use crate::liveness::STARTUP_GRACE;
use warren_proto::ServiceSpec;

/// Two nodes, `a` and `b`, with a replica of `web` healthy on each; and
/// a moment after the control plane's startup grace.
fn two_nodes_serving(name: &str) -> (Fixture, Instant) {
    let mut fixture = fixture(name, 2);
    join(&mut fixture, "a", 1);
    join(&mut fixture, "b", 2);
    let spec = ServiceSpec {
        replicas: 2,
        ..ServiceSpec::new("web", "local/busybox:1")
    };
    fixture.state.deploy(spec, NOW).unwrap();
    assert_eq!(placed_on(&fixture.state), ["a", "b"]);
    all_healthy(&mut fixture.state, "a");
    all_healthy(&mut fixture.state, "b");
    (fixture, Instant::now() + STARTUP_GRACE)
}

/// `b`'s agent connection (the only one it has had) ends at `at`.
fn b_goes_away(fixture: &mut Fixture, at: Instant) {
    let connection = fixture.state.online["b"].connection;
    fixture.state.disconnected("b", connection, at);
}

fn healthy_web(state: &ClusterState) -> u32 {
    state.services_view()[0].healthy
}

#[test]
fn a_lost_nodes_replicas_are_placed_elsewhere_and_removed_once_replacements_serve() {
    let (mut fixture, t0) = two_nodes_serving("failover-lost");
    b_goes_away(&mut fixture, t0);
    assert_eq!(healthy_web(&fixture.state), 1, "b's replica is not counted");
    let next = fixture
        .state
        .tick(t0 + REPLACE_AFTER / 2, NOW, &Default::default());
    assert_eq!(next, Some(t0 + REPLACE_AFTER), "the next tick is due then");
    assert_eq!(placed_on(&fixture.state), ["a", "b"], "offline, not lost");
    assert_eq!(
        fixture
            .state
            .tick(t0 + REPLACE_AFTER, NOW, &Default::default()),
        None
    );
    assert_eq!(
        placed_on(&fixture.state),
        ["a", "a", "b"],
        "a replacement on a; b's is kept until it serves"
    );
    all_healthy(&mut fixture.state, "a");
    assert_eq!(placed_on(&fixture.state), ["a", "a"]);
    assert_eq!(healthy_web(&fixture.state), 2);

    // `warren events` tells the story, in order.
    let kinds: Vec<String> = fixture
        .state
        .events(None, 100)
        .unwrap()
        .iter()
        .filter(|e| !matches!(e.what, What::ReplicaStarted { .. }))
        .map(|e| e.what.describe())
        .collect();
    let tail = &kinds[kinds.len() - 5..];
    assert_eq!(
        tail,
        [
            "b: offline, the proxy stops routing to it",
            "b: lost, its 1 replica(s) rescheduled on other nodes",
            "web-3: placed on a (generation 1)",
            "web-3: healthy on a",
            "web-2: removed, b stops it",
        ],
        "{kinds:#?}"
    );
}

#[test]
fn a_lost_node_that_comes_back_before_its_replacement_serves_leaves_no_surplus() {
    let (mut fixture, t0) = two_nodes_serving("failover-back");
    b_goes_away(&mut fixture, t0);
    fixture
        .state
        .tick(t0 + REPLACE_AFTER, NOW, &Default::default());
    assert_eq!(placed_on(&fixture.state), ["a", "a", "b"]);
    rejoin(&mut fixture.state, "b", 2, NOW);
    // b is back (its agent says what it offers, as agents do), its replica
    // not yet reported: one of the two starting replicas goes at once, and
    // a's first replica served all along.
    assert_eq!(placed_on(&fixture.state).len(), 2);
    assert_eq!(healthy_web(&fixture.state), 1);
    all_healthy(&mut fixture.state, "a");
    all_healthy(&mut fixture.state, "b");
    assert_eq!(healthy_web(&fixture.state), 2);
    assert_eq!(placed_on(&fixture.state).len(), 2, "no surplus");
}

#[test]
fn a_restarted_control_plane_gives_up_on_no_one_within_its_grace() {
    let (mut fixture, _) = two_nodes_serving("failover-grace");
    let started = Instant::now();
    b_goes_away(&mut fixture, started);
    fixture
        .state
        .tick(started + REPLACE_AFTER, NOW, &Default::default());
    assert_eq!(placed_on(&fixture.state), ["a", "b"], "within the grace");
}
