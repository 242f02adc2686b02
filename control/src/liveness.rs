//! When a node that went away is given up on: its replicas are then
//! replaced elsewhere. Decided without side effects, from connection
//! events and the time the caller passes in.
//!
//! A node is **offline** from the moment its agent's connection ends (the
//! QUIC connection's idle timeout, `warren serve --node-timeout`, is what
//! notices a silent one; the proxy stops routing to it at once). It is
//! **lost** once it has been offline for `--replace-after`: only then are
//! its replicas replaced, so a node on a flaky link can be told to wait
//! longer than the proxy does. A control plane that has just started
//! counts every node offline since its own start and gives them
//! [`STARTUP_GRACE`] besides, so that its own restart, which every agent
//! notices and reconnects after, never looks like a cluster of dead nodes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a control plane that has just started waits before it gives
/// up on any node (agents reconnect within about 5 s of a restart).
pub const STARTUP_GRACE: Duration = Duration::from_secs(10);

/// What changed about a node, for the log and `warren events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Its agent connected again after being offline.
    Online(String),
    /// Its agent's connection ended.
    Offline(String),
    /// It has been offline for the replace-after time: its replicas are
    /// replaced.
    Lost(String),
}

/// Where one node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Online,
    /// Offline since `since`; `lost` once that was announced.
    Offline {
        since: Instant,
        lost: bool,
    },
}

/// Every node's liveness (see the module doc).
#[derive(Debug, Clone)]
pub struct Liveness {
    replace_after: Duration,
    /// Nothing is lost before this.
    grace_until: Instant,
    nodes: BTreeMap<String, State>,
}

impl Liveness {
    /// A control plane started at `now` with `nodes` on record, none of
    /// them connected yet; their replicas are replaced once they have
    /// been offline for `replace_after`, and not within [`STARTUP_GRACE`]
    /// of `now`.
    pub fn new<'a>(
        replace_after: Duration,
        now: Instant,
        nodes: impl IntoIterator<Item = &'a str>,
    ) -> Liveness {
        let mut liveness = Liveness {
            replace_after,
            grace_until: now + STARTUP_GRACE,
            nodes: BTreeMap::new(),
        };
        for node in nodes {
            liveness.nodes.insert(
                node.to_owned(),
                State::Offline {
                    since: now,
                    lost: false,
                },
            );
        }
        liveness
    }

    /// The agent of `node` connected (also a node that just joined):
    /// [`Change::Online`] if it was offline.
    pub fn connected(&mut self, node: &str) -> Option<Change> {
        match self.nodes.insert(node.to_owned(), State::Online) {
            Some(State::Offline { .. }) => Some(Change::Online(node.to_owned())),
            Some(State::Online) | None => None,
        }
    }

    /// The agent of `node` disconnected at `now`: [`Change::Offline`] if it
    /// was online.
    pub fn disconnected(&mut self, node: &str, now: Instant) -> Option<Change> {
        let state = self.nodes.get_mut(node)?;
        match state {
            State::Online => {
                *state = State::Offline {
                    since: now,
                    lost: false,
                };
                Some(Change::Offline(node.to_owned()))
            }
            State::Offline { .. } => None,
        }
    }

    /// `node` was removed from the cluster.
    pub fn removed(&mut self, node: &str) {
        self.nodes.remove(node);
    }

    /// Whether `node`'s replicas are to be replaced: it is lost (as the
    /// last [`Liveness::poll`] found).
    pub fn is_lost(&self, node: &str) -> bool {
        matches!(
            self.nodes.get(node),
            Some(State::Offline { lost: true, .. })
        )
    }

    /// The nodes lost by `now` that were not before, in name order.
    pub fn poll(&mut self, now: Instant) -> Vec<Change> {
        let mut changes = Vec::new();
        for (node, state) in &mut self.nodes {
            if let State::Offline { since, lost } = state {
                if !*lost && now >= replace_at(*since, self.replace_after, self.grace_until) {
                    *lost = true;
                    changes.push(Change::Lost(node.clone()));
                }
            }
        }
        changes
    }

    /// When [`Liveness::poll`] next has something to say, if ever (until
    /// another node disconnects).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.nodes
            .values()
            .filter_map(|state| match state {
                State::Offline { since, lost: false } => {
                    Some(replace_at(*since, self.replace_after, self.grace_until))
                }
                _ => None,
            })
            .min()
    }
}

/// When a node offline since `since` is lost.
fn replace_at(since: Instant, replace_after: Duration, grace_until: Instant) -> Instant {
    (since + replace_after).max(grace_until)
}

#[cfg(test)]
#[path = "liveness_tests.rs"]
mod tests;
