//! The control plane's host as a node (`warren serve --docker-host`): placed
//! on beside the agents' nodes once it says what it offers, its
//! assignments and reports routed like an agent's, listed and constrained
//! on by name, but neither labelled nor removed; without `--docker-host`
//! nothing is placed there.

use super::node_settings_tests::{all_healthy, join, placed_on};
use super::tests::{fixture, offers, state_over, state_with, Fixture, NOW};
use super::*;
use std::collections::BTreeMap;
use warren_proto::assignment::{Health, ReplicaState, ReplicaStatus};
use warren_proto::{Constraint, ServiceSpec};

fn web(replicas: u32) -> ServiceSpec {
    ServiceSpec {
        replicas,
        ports: vec![8080],
        ..ServiceSpec::new("web", "local/busybox:1")
    }
}

/// A cluster whose control plane's host runs replicas, with the relayed
/// node `pi`.
fn with_control_node(name: &str) -> Fixture {
    let mut fixture = fixture(name, 1);
    fixture.state = state_with(&fixture.dir, true);
    join(&mut fixture, "pi", 1);
    fixture.state.record_node(CONTROL_NAME, offers(), NOW);
    fixture
}

#[test]
fn without_docker_host_nothing_is_placed_on_the_control_plane() {
    let mut fixture = fixture("no-control-node", 1);
    let state = &mut fixture.state;
    assert!(state.deploy(web(1), NOW).is_err(), "no node at all");
    // Even told what the host offers, it is no node.
    state.record_node(CONTROL_NAME, offers(), NOW);
    assert!(state.deploy(web(1), NOW).is_err());
    assert!(state.listing().is_empty());
    assert!(state.assignments_for(CONTROL_NAME).1.is_empty());
    join(&mut fixture, "pi", 1);
    fixture.state.deploy(web(2), NOW).unwrap();
    assert_eq!(placed_on(&fixture.state), ["pi", "pi"]);
}

#[test]
fn the_control_node_is_placed_on_beside_agents_and_gets_its_own_assignments() {
    let mut fixture = with_control_node("control-node-spread");
    let state = &mut fixture.state;
    let mut events = state.subscribe();
    state.deploy(web(2), NOW).unwrap();
    // Spread, and the direct control node before the relayed pi.
    assert_eq!(placed_on(state), ["control", "pi"]);
    assert!(matches!(events.try_recv(), Ok(PeerEvent::Assignments)));
    let views = state.replicas_view();
    let control = views.iter().find(|r| r.node == CONTROL_NAME).unwrap();
    assert_eq!(control.mode, Some(Mode::Control));
    assert_eq!(control.addresses, ["100.96.0.1:20000"]);
    let (_, assigned) = state.assignments_for(CONTROL_NAME);
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].replica, control.id);
    assert_ne!(state.assignments_for("pi").1[0].replica, control.id);

    // Its reports count like an agent's.
    all_healthy(state, CONTROL_NAME);
    let service = &state.services_view()[0];
    assert_eq!((service.running, service.healthy), (1, 1));
    let replica = ReplicaStatus {
        replica: state.assignments_for("pi").1[0].replica.clone(),
        generation: 1,
        state: ReplicaState::Running,
        health: Health::Healthy,
        restarts: 0,
        cpu_millis: None,
        memory: None,
        started: None,
    };
    // A report from control about pi's replica is not taken.
    state.record_replicas(CONTROL_NAME, vec![replica], NOW);
    assert_eq!(state.services_view()[0].healthy, 1);
}

#[test]
fn the_control_node_is_listed_and_constrained_on_but_not_labelled_or_removed() {
    let mut fixture = with_control_node("control-node-commands");
    let state = &mut fixture.state;
    let listing = state.listing();
    let control = listing.last().unwrap();
    assert_eq!(control.node.name, CONTROL_NAME);
    assert_eq!(control.node.mode, Mode::Control);
    assert_eq!(control.node.mesh_ip.to_string(), "100.96.0.1");
    assert!(control.online);
    assert!(control.report.is_some());

    let gpu: BTreeMap<String, String> = [("gpu".to_owned(), "yes".to_owned())].into();
    assert!(matches!(
        state.label_node(CONTROL_NAME, gpu, &[], NOW),
        Err(NodeCommandError::ControlPlane)
    ));
    assert!(state.node_settings(CONTROL_NAME).labels.is_empty());
    let here = ServiceSpec {
        constraints: vec!["node==control".parse::<Constraint>().unwrap()],
        ..web(2)
    };
    state.deploy(here, NOW).unwrap();
    assert_eq!(placed_on(state), ["control", "control"]);
    assert_eq!(state.listing().last().unwrap().replicas, 2);

    let before = state.replicas_view();
    assert!(matches!(
        state.remove_node(CONTROL_NAME, false, NOW),
        Err(RemoveError::ControlPlane)
    ));
    assert!(matches!(
        state.remove_node(CONTROL_NAME, true, NOW),
        Err(RemoveError::ControlPlane)
    ));
    assert_eq!(state.replicas_view(), before);
    assert!(!state.node_settings(CONTROL_NAME).leaving);
}

#[test]
fn a_control_plane_restarted_without_docker_host_moves_the_replicas_off_its_host() {
    let mut fixture = with_control_node("control-node-restart");
    fixture.state.deploy(web(2), NOW).unwrap();
    assert_eq!(placed_on(&fixture.state), ["control", "pi"]);
    // Restarted with --docker-host: its host keeps its replica even before
    // its runner reports.
    fixture.state = state_with(&fixture.dir, true);
    fixture.state.converge_workloads(NOW);
    assert_eq!(placed_on(&fixture.state), ["control", "pi"]);
    // Without: the replica is replaced on pi, and goes once its
    // replacement serves (its health is not known after the restart).
    fixture.state = state_over(&fixture.dir);
    let auth = warren_proto::Auth::Credential {
        secret: warren_proto::Secret([1; 32]),
    };
    let hello = super::tests::hello(auth, "pi", super::tests::key(1));
    fixture
        .state
        .admit(&hello, super::tests::remote(), NOW, [9; 32])
        .unwrap();
    fixture.state.record_node("pi", offers(), NOW);
    assert_eq!(placed_on(&fixture.state), ["control", "pi", "pi"]);
    all_healthy(&mut fixture.state, "pi");
    assert_eq!(placed_on(&fixture.state), ["pi", "pi"]);
    assert!(fixture.state.assignments_for(CONTROL_NAME).1.is_empty());
}
