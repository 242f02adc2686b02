//! Node labels steer placement, a node with replicas leaves only once they
//! have moved, and both (with the workloads' revision) survive a restart.

use super::tests::{
    admit_with_token, fixture, hello, key, offers, rejoin, remote, state_over, Fixture, NOW,
};
use super::*;
use std::collections::BTreeMap;
use warren_proto::assignment::{Health, ReplicaState, ReplicaStatus};
use warren_proto::{Auth, Constraint, ServiceSpec};

pub(super) fn join(fixture: &mut Fixture, name: &str, seed: u8) {
    admit_with_token(fixture, name, seed);
    fixture.state.record_node(name, offers(), NOW);
}

#[test]
fn a_node_whose_hello_says_what_it_offers_is_placed_on_at_once() {
    let mut fixture = fixture("hello-machine", 1);
    let auth = Auth::Token {
        id: fixture.token,
        secret: fixture.secret.clone(),
    };
    let state = &mut fixture.state;
    let bare = ServiceSpec::new("web", "local/busybox:1");
    let hello = Hello {
        machine: Some(NodeReport {
            arch: "arm64".to_owned(),
            cpu_millis: 4000,
            memory: 8 << 30,
            disk_free: Some(1 << 30),
            docker: "20.10.24".to_owned(),
        }),
        ..super::tests::hello(auth, "pi", key(1))
    };
    state.admit(&hello, remote(), NOW, [1; 32]).unwrap();
    state.deploy(bare, NOW).unwrap();
    assert_eq!(placed_on(state), ["pi"]);
}

#[test]
fn a_relay_node_the_control_plane_reaches_directly_counts_as_direct() {
    let mut fixture = fixture("measured-reach", 2);
    join(&mut fixture, "a", 1);
    join(&mut fixture, "b", 2);
    let state = &mut fixture.state;
    // Both joined --relay (alike, the name would pick a), but the control
    // plane measures a direct path to b (NAT traversal): a service's first
    // replica goes there.
    let path = |seed, kind| warren_proto::PathReport {
        public_key: key(seed),
        kind,
        endpoint: None,
        rtt_ms: None,
        last_handshake_secs: None,
        tx_bytes: 0,
        rx_bytes: 0,
    };
    let report = Report {
        paths: vec![
            path(1, warren_proto::PathKind::Relayed),
            path(2, warren_proto::PathKind::Direct),
        ],
        candidates: Vec::new(),
    };
    state.record_report(CONTROL_NAME, report, std::time::SystemTime::now());
    state
        .deploy(ServiceSpec::new("web", "local/busybox:1"), NOW)
        .unwrap();
    assert_eq!(placed_on(state), ["b"]);
}

fn spec(replicas: u32, constraint: &str) -> ServiceSpec {
    ServiceSpec {
        replicas,
        ports: vec![8080],
        constraints: vec![constraint.parse::<Constraint>().unwrap()],
        ..ServiceSpec::new("web", "local/busybox:1")
    }
}

pub(super) fn placed_on(state: &ClusterState) -> Vec<String> {
    let mut nodes: Vec<String> = state.replicas_view().into_iter().map(|r| r.node).collect();
    nodes.sort();
    nodes
}

/// The agent of `node` reports every replica placed there running and
/// healthy.
pub(super) fn all_healthy(state: &mut ClusterState, node: &str) {
    report(state, node, |_| Health::Healthy, NOW);
}

/// The agent of `node` reports at `now` every replica placed there running,
/// the `n`th of them (in the order `warren ps` lists them) with health
/// `health(n)`; returns what it reported.
pub(super) fn report(
    state: &mut ClusterState,
    node: &str,
    health: impl Fn(usize) -> Health,
    now: u64,
) -> Vec<ReplicaStatus> {
    let statuses: Vec<ReplicaStatus> = state
        .replicas_view()
        .into_iter()
        .filter(|r| r.node == node)
        .enumerate()
        .map(|(n, r)| ReplicaStatus {
            replica: r.id,
            generation: r.generation,
            state: ReplicaState::Running,
            health: health(n),
            restarts: 0,
            cpu_millis: None,
            memory: None,
            started: Some(NOW),
        })
        .collect();
    state.record_replicas(node, statuses.clone(), now);
    statuses
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn labels_steer_placement_and_bad_ones_change_nothing() {
    let mut fixture = fixture("labels", 2);
    join(&mut fixture, "a", 1);
    join(&mut fixture, "b", 2);
    let state = &mut fixture.state;
    let home = labels(&[("zone", "home")]);
    assert_eq!(state.label_node("b", home.clone(), &[], NOW).unwrap(), home);
    state.deploy(spec(2, "zone==home"), NOW).unwrap();
    assert_eq!(placed_on(state), ["b", "b"]);

    assert!(matches!(
        state.label_node("nope", home.clone(), &[], NOW),
        Err(NodeCommandError::Unknown(_))
    ));
    assert!(matches!(
        parse_label("node=x"),
        Err(NodeCommandError::Builtin(_))
    ));
    assert!(matches!(
        parse_label("zone home"),
        Err(NodeCommandError::Label(_))
    ));
    assert!(matches!(
        state.label_node("b", BTreeMap::new(), &["bad key!".to_owned()], NOW),
        Err(NodeCommandError::Label(_))
    ));
    assert_eq!(state.node_settings("b").labels, home);

    // A label removed keeps what was placed; a new replica has nowhere to
    // go until a node has the label again.
    state
        .label_node("b", BTreeMap::new(), &["zone".to_owned()], NOW)
        .unwrap();
    assert!(state.node_settings("b").labels.is_empty());
    assert!(state.scale("web", 3, NOW).is_err());
    assert_eq!(placed_on(state), ["b", "b"]);
}

#[test]
fn a_node_with_replicas_leaves_once_they_moved_and_settings_survive_a_restart() {
    let mut fixture = fixture("leave", 2);
    join(&mut fixture, "a", 1);
    join(&mut fixture, "b", 2);
    let state = &mut fixture.state;
    state
        .label_node("b", labels(&[("zone", "home")]), &[], NOW)
        .unwrap();
    state.deploy(spec(2, "zone==home"), NOW).unwrap();
    all_healthy(state, "b");

    // Nowhere else to go: the node stays, leaving, with its replicas.
    assert_eq!(
        state.remove_node("b", false, NOW).unwrap(),
        Removal::Leaving { replicas: 2 }
    );
    assert_eq!(placed_on(state), ["b", "b"]);
    assert!(state.node_settings("b").leaving);

    // Settings and the revision are stored: a restarted control plane has
    // them.
    let revision = state.assignments_for("b").0;
    fixture.state = state_over(&fixture.dir);
    let state = &mut fixture.state;
    assert!(state.node_settings("b").leaving);
    assert_eq!(state.node_settings("b").labels, labels(&[("zone", "home")]));
    assert_eq!(state.assignments_for("b").0, revision);

    // Once another node can take them, the replicas move one by one, each
    // original going when its replacement is healthy; then the node goes.
    for (name, seed) in [("a", 1), ("b", 2)] {
        let auth = Auth::Credential {
            secret: warren_proto::Secret([seed; 32]),
        };
        state
            .admit(&hello(auth, name, key(seed)), remote(), NOW, [9; 32])
            .unwrap();
    }
    let report = |cpu_millis| NodeReport {
        arch: "amd64".to_owned(),
        cpu_millis,
        memory: 4 << 30,
        disk_free: None,
        docker: "20.10.24".to_owned(),
    };
    state.record_node("b", report(2000), NOW);
    state.record_node("a", report(2000), NOW);
    all_healthy(state, "b");
    state
        .label_node("a", labels(&[("zone", "home")]), &[], NOW)
        .unwrap();
    for _ in 0..4 {
        all_healthy(state, "a");
    }
    assert_eq!(placed_on(state), ["a", "a"]);
    assert!(state.registry().get("b").is_none(), "b left");
    assert!(state.assignments_for("a").0 > revision);
}

#[test]
fn a_node_without_replicas_or_forced_goes_at_once() {
    let mut fixture = fixture("force", 2);
    join(&mut fixture, "a", 1);
    join(&mut fixture, "b", 2);
    let state = &mut fixture.state;
    assert_eq!(
        state.remove_node("a", false, NOW).unwrap(),
        Removal::Removed
    );
    state
        .label_node("b", labels(&[("zone", "home")]), &[], NOW)
        .unwrap();
    state.deploy(spec(1, "zone==home"), NOW).unwrap();
    assert_eq!(state.remove_node("b", true, NOW).unwrap(), Removal::Removed);
    assert!(state.registry().get("b").is_none());
    assert!(matches!(
        state.remove_node("b", false, NOW),
        Err(RemoveError::Unknown(_))
    ));
}

#[test]
fn a_drained_node_hands_its_replicas_over_takes_no_new_ones_and_activate_undoes_it() {
    let mut fixture = fixture("drain", 2);
    join(&mut fixture, "a", 1);
    join(&mut fixture, "b", 2);
    let state = &mut fixture.state;
    let web = ServiceSpec {
        replicas: 2,
        ..ServiceSpec::new("web", "local/busybox:1")
    };
    state.deploy(web, NOW).unwrap();
    all_healthy(state, "a");
    all_healthy(state, "b");
    assert_eq!(placed_on(state), ["a", "b"]);

    // b's replica is replaced on a before it goes.
    assert_eq!(state.drain_node("b", true, NOW).unwrap(), 1);
    assert!(state.node_settings("b").drained);
    assert_eq!(placed_on(state), ["a", "a", "b"]);
    all_healthy(state, "a");
    assert_eq!(placed_on(state), ["a", "a"]);
    assert_eq!(state.services_view()[0].healthy, 2);

    // Nothing new goes there, and the drain survives a restart.
    state
        .deploy(ServiceSpec::new("api", "local/busybox:1"), NOW)
        .unwrap();
    assert_eq!(placed_on(state), ["a", "a", "a"]);
    fixture.state = state_over(&fixture.dir);
    assert!(fixture.state.node_settings("b").drained);
    assert!(matches!(
        fixture.state.drain_node("control", true, NOW),
        Err(NodeCommandError::ControlPlaneDrain)
    ));
    assert!(matches!(
        fixture.state.drain_node("nobody", true, NOW),
        Err(NodeCommandError::Unknown(_))
    ));

    // Activated, it takes replicas again; the ones that moved stay.
    let state = &mut fixture.state;
    for (name, seed) in [("a", 1), ("b", 2)] {
        rejoin(state, name, seed, NOW);
    }
    assert_eq!(state.drain_node("b", false, NOW).unwrap(), 0);
    assert!(!state.node_settings("b").drained);
    state.scale("api", 2, NOW).unwrap();
    assert_eq!(placed_on(state), ["a", "a", "a", "b"]);
}

#[test]
fn a_forced_drain_stops_what_cannot_move_and_places_again_what_can() {
    let mut fixture = fixture("drain-force", 2);
    join(&mut fixture, "a", 1);
    join(&mut fixture, "b", 2);
    let state = &mut fixture.state;
    let pinned = ServiceSpec {
        constraints: vec!["node==b".parse().unwrap()],
        ..ServiceSpec::new("pinned", "local/busybox:1")
    };
    state.deploy(pinned, NOW).unwrap();
    state
        .deploy(
            ServiceSpec {
                constraints: vec!["node==b".parse().unwrap()],
                ..ServiceSpec::new("web", "local/busybox:1")
            },
            NOW,
        )
        .unwrap();
    all_healthy(state, "b");
    assert!(matches!(
        state.stop_replicas_on("b", NOW),
        Err(NodeCommandError::NotDrained(_))
    ));
    // Only b may run pinned: a plain drain leaves it there.
    assert_eq!(state.drain_node("b", true, NOW).unwrap(), 2);
    assert_eq!(placed_on(state), ["b", "b"]);
    // web may go anywhere once its constraint is gone.
    state
        .deploy(ServiceSpec::new("web", "local/busybox:1"), NOW)
        .unwrap();
    assert_eq!(placed_on(state), ["a", "b", "b"]);
    assert_eq!(state.stop_replicas_on("b", NOW).unwrap(), 2);
    assert_eq!(
        placed_on(state),
        ["a"],
        "web's new replica stays, pinned waits"
    );
    assert_eq!(state.stop_replicas_on("b", NOW).unwrap(), 0);
}
