//! Which replica gets a request: the less loaded of two picked at random
//! (power of two choices on outstanding requests), skipping replicas this
//! request already failed on and, while others are left, replicas ejected
//! for failing; and when a replica is ejected (passive health).
//!
//! Both are plain decisions over numbers the proxy keeps; nothing here
//! reads a clock or does I/O.

use std::time::{Duration, Instant};

/// What the balancer knows of one candidate replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Requests sent to it and not finished.
    pub outstanding: u32,
    /// Whether passive health has ejected it for now.
    pub ejected: bool,
    /// Whether this request already failed on it.
    pub tried: bool,
}

/// The index of the candidate to send to, from two random numbers; `None`
/// when every candidate was tried. Ejected candidates are used only when
/// nothing else is left (better a replica that failed than a certain 503).
pub fn pick(candidates: &[Candidate], random: (u64, u64)) -> Option<usize> {
    let untried = || candidates.iter().enumerate().filter(|(_, c)| !c.tried);
    let mut eligible: Vec<usize> = untried()
        .filter(|(_, c)| !c.ejected)
        .map(|(i, _)| i)
        .collect();
    if eligible.is_empty() {
        eligible = untried().map(|(i, _)| i).collect();
    }
    let n = eligible.len() as u64;
    match n {
        0 => None,
        1 => Some(eligible[0]),
        _ => {
            let first = (random.0 % n) as usize;
            // A second index that differs from the first.
            let second = (first + 1 + (random.1 % (n - 1)) as usize) % eligible.len();
            let (a, b) = (eligible[first], eligible[second]);
            Some(if candidates[b].outstanding < candidates[a].outstanding {
                b
            } else {
                a
            })
        }
    }
}

/// Failures in a row that eject a replica.
pub const EJECT_AFTER_FAILURES: u32 = 3;

/// How long an ejected replica gets no requests while others are left.
pub const EJECT_FOR: Duration = Duration::from_secs(10);

/// Passive health of one replica: ejected for [`EJECT_FOR`] after
/// [`EJECT_AFTER_FAILURES`] failures in a row (connection refused or reset,
/// a timeout), back at once after a success.
#[derive(Debug, Clone, Default)]
pub struct PassiveHealth {
    failures_in_a_row: u32,
    ejected_until: Option<Instant>,
}

impl PassiveHealth {
    /// A request to it failed at `now`.
    pub fn failed(&mut self, now: Instant) {
        self.failures_in_a_row += 1;
        if self.failures_in_a_row >= EJECT_AFTER_FAILURES {
            self.failures_in_a_row = 0;
            self.ejected_until = Some(now + EJECT_FOR);
        }
    }

    /// A request to it got a response.
    pub fn succeeded(&mut self) {
        self.failures_in_a_row = 0;
        self.ejected_until = None;
    }

    /// Whether it is ejected at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|until| now < until)
    }
}

#[cfg(test)]
#[path = "balance_tests.rs"]
mod tests;
