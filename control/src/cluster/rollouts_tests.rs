//! Generations recorded as they roll out, and rollback to an earlier one.

use super::node_settings_tests::{all_healthy, join};
use super::tests::{fixture, NOW};
use super::*;
use crate::events::What;
use crate::store::Outcome;
use warren_proto::ServiceSpec;

fn version(command: &str) -> ServiceSpec {
    ServiceSpec {
        replicas: 2,
        command: vec![command.to_owned()],
        ..ServiceSpec::new("web", "local/busybox:1")
    }
}

/// The stored events that `wanted` picks, as `warren events` says them.
fn described(state: &ClusterState, wanted: impl Fn(&What) -> bool) -> Vec<String> {
    state
        .events(None, 1000)
        .unwrap()
        .into_iter()
        .filter(|e| wanted(&e.what))
        .map(|e| e.what.describe())
        .collect()
}

/// Turns every replica healthy until nothing more changes.
fn settle(state: &mut ClusterState) {
    for _ in 0..6 {
        all_healthy(state, "a");
    }
}

#[test]
fn generations_are_recorded_completed_superseded_and_rolled_back_to() {
    let mut fixture = fixture("rollouts", 1);
    join(&mut fixture, "a", 1);
    let state = &mut fixture.state;
    state.deploy(version("v1"), NOW).unwrap();
    settle(state);
    state.deploy(version("v2"), NOW + 1).unwrap();
    // Until they are replaced, v1's replicas keep running v1's spec (its
    // health check too), and the new ones get v2's.
    let (_, assignments) = state.assignments_for("a");
    let commands: Vec<(u64, String)> = assignments
        .iter()
        .map(|a| (a.generation, a.spec.command[0].clone()))
        .collect();
    assert!(commands.contains(&(1, "v1".to_owned())), "{commands:?}");
    assert!(commands.contains(&(2, "v2".to_owned())), "{commands:?}");
    settle(state);
    let outcomes = |state: &ClusterState| -> Vec<(u64, Outcome)> {
        state
            .history("web")
            .unwrap()
            .iter()
            .map(|g| (g.generation, g.outcome))
            .collect()
    };
    assert_eq!(
        outcomes(state),
        [(1, Outcome::Completed), (2, Outcome::Completed)]
    );

    // Back to generation 1's spec, as generation 3, at the current scale.
    state.scale("web", 3, NOW + 2).unwrap();
    let (spec, note) = state.rollback_spec("web", None).unwrap();
    assert_eq!(
        (spec.command.as_slice(), spec.replicas),
        (&["v1".to_owned()][..], 3)
    );
    assert_eq!(note, "rollback to 1");
    state.deploy_noted(spec, Some(note), NOW + 3).unwrap();
    let history = state.history("web").unwrap();
    assert_eq!(history[2].note.as_deref(), Some("rollback to 1"));
    assert_eq!(history[2].outcome, Outcome::RollingOut);
    assert!(matches!(
        state.rollback_spec("web", Some(3)),
        Err(RollbackError::Same { generation: 3, .. })
    ));
    assert!(matches!(
        state.rollback_spec("web", Some(9)),
        Err(RollbackError::NoGeneration { generation: 9, .. })
    ));
    assert!(matches!(
        state.rollback_spec("api", None),
        Err(RollbackError::Unknown(_))
    ));

    // A deploy before generation 3 completed supersedes it.
    state.deploy(version("v4"), NOW + 4).unwrap();
    settle(state);
    assert_eq!(
        outcomes(state)[2..],
        [(3, Outcome::Superseded), (4, Outcome::Completed)]
    );
    let rollouts = described(state, |what| {
        matches!(
            what,
            What::RolloutStarted { .. } | What::RolloutCompleted { .. }
        )
    });
    assert_eq!(
        rollouts,
        [
            "web: rolling out generation 1",
            "web: generation 1 rolled out",
            "web: rolling out generation 2",
            "web: generation 2 rolled out",
            "web: rolling out generation 3",
            "web: rolling out generation 4",
            "web: generation 4 rolled out",
        ]
    );
}

/// `version(command)` with a healthy deadline of 5 s and auto-rollback
/// `auto`.
fn deadline(command: &str, auto: bool) -> ServiceSpec {
    ServiceSpec {
        update: warren_proto::UpdatePolicy {
            healthy_deadline_secs: 5,
            auto_rollback: auto,
            ..Default::default()
        },
        ..version(command)
    }
}

/// Node `a` serving v1 (5 s deadline, auto-rollback), and v2 deployed at
/// `NOW + 10`, which never turns healthy (nothing reports it); with the
/// instant the ticks use.
fn v2_pending(name: &str) -> (super::tests::Fixture, std::time::Instant) {
    let mut fixture = fixture(name, 1);
    join(&mut fixture, "a", 1);
    let state = &mut fixture.state;
    state.deploy(deadline("v1", true), NOW).unwrap();
    settle(state);
    state.deploy(deadline("v2", true), NOW + 10).unwrap();
    (fixture, std::time::Instant::now())
}

#[test]
fn a_generation_not_healthy_by_its_deadline_is_rolled_back_and_a_failed_rollback_does_not_loop() {
    let (mut fixture, at) = v2_pending("deadline");
    let state = &mut fixture.state;
    state.tick(at, NOW + 14, &Default::default());
    assert_eq!(
        state.history("web").unwrap().len(),
        2,
        "before the deadline"
    );
    state.tick(at, NOW + 15, &Default::default());
    let history = state.history("web").unwrap();
    assert_eq!(history[1].outcome, Outcome::RolledBack);
    assert_eq!(
        history[2].note.as_deref(),
        Some("automatic rollback of 2 to 1")
    );
    assert_eq!(history[2].spec.command, ["v1"]);
    assert_eq!(history[2].outcome, Outcome::RollingOut);
    settle(state);
    assert_eq!(
        state.history("web").unwrap()[2].outcome,
        Outcome::Completed,
        "v1's spec serves again"
    );

    // Without auto-rollback: failed, and it stays where it is.
    state.deploy(deadline("v4", false), NOW + 20).unwrap();
    state.tick(at, NOW + 25, &Default::default());
    let history = state.history("web").unwrap();
    assert_eq!(history[3].outcome, Outcome::Failed);
    assert_eq!(history.len(), 4, "no rollback made");
}

#[test]
fn a_rollback_that_cannot_be_placed_is_a_failed_rollout_not_a_rolled_back_one() {
    let (mut fixture, at) = v2_pending("deadline-offline");
    let state = &mut fixture.state;
    // a goes away: at the deadline, no node can take the rollback.
    let connection = state.online["a"].connection;
    state.disconnected("a", connection, at);
    state.tick(at, NOW + 15, &Default::default());
    let history = state.history("web").unwrap();
    assert_eq!(history.len(), 2, "no rollback made");
    assert_eq!(history[1].outcome, Outcome::Failed);
    let ends = described(state, |what| {
        matches!(
            what,
            What::RolloutRolledBack { .. } | What::RolloutFailed { .. }
        )
    });
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert!(ends[0].ends_with("(no rollback)"), "{ends:?}");
}
