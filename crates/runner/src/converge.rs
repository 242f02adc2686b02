//! The node's replicas, converged without I/O: the assignments the control
//! plane gave (desired) against the containers the daemon has (observed),
//! into actions for the runtime to carry out.
//!
//! [`Converger`] keeps what the daemon cannot tell: each replica's restart
//! count and backoff. Call [`Converger::converge`] with the assignments, the
//! daemon's containers that carry warren's labels (never others) and the
//! time, whenever either changes or [`Converger::next_wakeup`] passes; carry
//! out the [`Action`]s; then call it again with what the daemon has then.
//! It is level-triggered: the same inputs give the same actions, and once
//! the daemon matches the assignments it gives none.
//!
//! The rules:
//! - an assigned replica without a container gets one (created and started);
//! - a container of a replica that is not assigned, or of an older
//!   generation than assigned, is stopped and removed;
//! - of two or more containers of one replica and generation (an agent that
//!   died between create and record), the one started first stays;
//! - an exited container, or one its health checks call unhealthy, is
//!   replaced by a new container as its restart policy says, after an
//!   exponential backoff (1 s doubling to [`MAX_BACKOFF`]); the last exited
//!   container is kept, stopped, for `warren logs --previous`, and older
//!   ones are removed;
//! - a replica that has run [`BACKOFF_RESET`] since its last start restarts
//!   without waiting again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use warren_proto::assignment::{Assignment, ReplicaId};
use warren_proto::RestartPolicy;

/// The first wait before a replica is restarted.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between restarts of a crashing replica.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long a replica must run for its backoff to start again from
/// [`FIRST_BACKOFF`].
pub const BACKOFF_RESET: Duration = Duration::from_secs(60);

/// A container of ours, as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// The daemon's container id.
    pub container: String,
    /// The replica it runs (its `warren.replica` label).
    pub replica: ReplicaId,
    /// The generation it runs (its `warren.generation` label).
    pub generation: u64,
    /// Whether it runs, and if not, how it ended.
    pub state: ContainerState,
    /// When it was created, as an ordering the daemon gives (its creation
    /// time): the oldest of duplicates stays.
    pub created: u64,
}

/// A container's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started yet.
    Created,
    /// Running; `unhealthy` when its health checks failed `retries` times.
    Running {
        /// What the agent's health checks concluded.
        unhealthy: bool,
    },
    /// Exited with this code.
    Exited {
        /// The exit code.
        code: i64,
    },
}

/// What the runtime does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create and start a container for this assignment.
    Start(Box<Assignment>),
    /// Stop this container (it stays, for its logs).
    Stop {
        /// The container.
        container: String,
    },
    /// Stop (if running) and remove this container.
    Remove {
        /// The container.
        container: String,
    },
}

/// A replica's restart history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Restarts {
    /// How many times it was restarted.
    count: u32,
    /// The wait before the next restart.
    backoff: Duration,
    /// Not before this may it start again (set while it waits).
    not_before: Option<Instant>,
    /// When it was last started by the agent.
    started: Instant,
}

/// The node's replicas' memory (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct Converger {
    restarts: BTreeMap<ReplicaId, Restarts>,
}

impl Converger {
    /// A converger that has restarted nothing yet.
    pub fn new() -> Converger {
        Converger::default()
    }

    /// How many times the agent restarted `replica`.
    pub fn restarts(&self, replica: &ReplicaId) -> u32 {
        self.restarts.get(replica).map_or(0, |r| r.count)
    }

    /// When a backoff ends and [`Converger::converge`] should run again.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.restarts.values().filter_map(|r| r.not_before).min()
    }

    /// The actions that bring `observed` to `assigned` at `now`.
    pub fn converge(
        &mut self,
        assigned: &[Assignment],
        observed: &[Observed],
        now: Instant,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let desired: BTreeMap<&ReplicaId, &Assignment> =
            assigned.iter().map(|a| (&a.replica, a)).collect();
        let mut by_replica: BTreeMap<&ReplicaId, Vec<&Observed>> = BTreeMap::new();
        for container in observed {
            by_replica
                .entry(&container.replica)
                .or_default()
                .push(container);
        }
        // Containers of replicas no longer assigned go.
        for (replica, containers) in &by_replica {
            if !desired.contains_key(replica) {
                actions.extend(containers.iter().map(|c| Action::Remove {
                    container: c.container.clone(),
                }));
            }
        }
        self.restarts
            .retain(|replica, _| desired.contains_key(replica));
        for (replica, assignment) in &desired {
            let containers = by_replica.get(replica).map_or(&[][..], Vec::as_slice);
            self.converge_one(assignment, containers, now, &mut actions);
        }
        actions
    }

    fn converge_one(
        &mut self,
        assignment: &Assignment,
        containers: &[&Observed],
        now: Instant,
        actions: &mut Vec<Action>,
    ) {
        let remove = |container: &Observed| Action::Remove {
            container: container.container.clone(),
        };
        let mut live: Vec<&Observed> = Vec::new();
        let mut exited: Vec<&Observed> = Vec::new();
        for container in containers {
            if container.generation != assignment.generation {
                actions.push(remove(container));
            } else if matches!(container.state, ContainerState::Exited { .. }) {
                exited.push(container);
            } else {
                live.push(container);
            }
        }
        let oldest_first = |c: &&Observed| (c.created, c.container.clone());
        live.sort_by_key(oldest_first);
        exited.sort_by_key(oldest_first);
        // Later duplicates of the live one go.
        if let Some((_, extra)) = live.split_first() {
            actions.extend(extra.iter().map(|c| remove(c)));
        }
        let policy = assignment.spec.restart;
        let replacing = match live.first().map(|c| c.state) {
            Some(ContainerState::Running { unhealthy: false }) => None,
            Some(ContainerState::Running { unhealthy: true }) => {
                let restart =
                    policy != RestartPolicy::Never && self.may_restart(&assignment.replica, now);
                // The stopped container becomes the one kept for its logs.
                restart.then_some(Replace::Unhealthy)
            }
            // Created, never started (the agent died between the two).
            Some(_) => Some(Replace::Unstarted),
            None => match exited.last().map(|c| c.state) {
                None => Some(Replace::Missing),
                Some(ContainerState::Exited { code }) => {
                    let wanted = match policy {
                        RestartPolicy::Always => true,
                        RestartPolicy::OnFailure => code != 0,
                        RestartPolicy::Never => false,
                    };
                    (wanted && self.may_restart(&assignment.replica, now))
                        .then_some(Replace::Exited)
                }
                Some(_) => None,
            },
        };
        // Exited containers: only the newest stays, for `logs --previous`
        // (none when the live one is stopped to be replaced: it takes that
        // place).
        let keep_exited = usize::from(replacing != Some(Replace::Unhealthy));
        let drop_exited = exited.len().saturating_sub(keep_exited);
        actions.extend(exited.iter().take(drop_exited).map(|c| remove(c)));
        match (replacing, live.first()) {
            (Some(Replace::Unhealthy), Some(keep)) => {
                actions.push(Action::Stop {
                    container: keep.container.clone(),
                });
                self.start(assignment, now, true, actions);
            }
            (Some(Replace::Unstarted), Some(keep)) => {
                actions.push(remove(keep));
                self.start(assignment, now, false, actions);
            }
            (Some(Replace::Missing), _) => self.start(assignment, now, false, actions),
            (Some(Replace::Exited), _) => self.start(assignment, now, true, actions),
            _ => {}
        }
    }

    /// Whether `replica` may restart at `now`. The first time a replica is
    /// seen needing a restart its wait begins: its backoff, or
    /// [`FIRST_BACKOFF`] again if it had run [`BACKOFF_RESET`].
    fn may_restart(&mut self, replica: &ReplicaId, now: Instant) -> bool {
        let Some(history) = self.restarts.get_mut(replica) else {
            return true;
        };
        let not_before = match history.not_before {
            Some(at) => at,
            None => {
                if now.saturating_duration_since(history.started) >= BACKOFF_RESET {
                    history.backoff = FIRST_BACKOFF;
                }
                let at = now + history.backoff;
                history.not_before = Some(at);
                at
            }
        };
        now >= not_before
    }

    /// Records a start of `assignment` at `now` (`again` for a restart) and
    /// queues it.
    fn start(
        &mut self,
        assignment: &Assignment,
        now: Instant,
        again: bool,
        actions: &mut Vec<Action>,
    ) {
        let history = self
            .restarts
            .entry(assignment.replica.clone())
            .or_insert(Restarts {
                count: 0,
                backoff: FIRST_BACKOFF,
                not_before: None,
                started: now,
            });
        if again {
            history.count += 1;
            history.backoff = (history.backoff * 2).min(MAX_BACKOFF);
        }
        history.not_before = None;
        history.started = now;
        actions.push(Action::Start(Box::new(assignment.clone())));
    }
}

/// Why a replica gets a new container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replace {
    /// It has none.
    Missing,
    /// Its container was created but never started.
    Unstarted,
    /// Its container exited and the policy restarts it.
    Exited,
    /// Its container runs but is unhealthy.
    Unhealthy,
}

#[cfg(test)]
#[path = "converge_tests.rs"]
mod tests;
