//! What the sections on a lab cluster with Docker workers (deploy, agent,
//! proxy, failover, rollout) share: the tools they need, the circumstances
//! of their measurement, and the opening of their part of the report.
//!
//! Each of them is a part of the report of its own (see [`crate::sections`]),
//! written by a run that may have measured nothing else, so each says when
//! and by what command it was measured, and how loaded the machine was.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use warren_netns_tests::require_bin;

use crate::about::{first_line, loadavg, now_utc, About};
use crate::check_interrupt;

/// How long a replica's containers get to be gone after `warren rm`: a
/// busybox httpd as PID 1 ignores SIGTERM, so each one waits out the
/// agent's stop grace (10 s) before it is killed.
pub const REMOVED: Duration = Duration::from_secs(60);

/// When and on how loaded a machine a section measured.
#[derive(Clone, Debug, Default)]
pub struct Circumstances {
    /// `YYYY-MM-DD HH:MM UTC` when the section started.
    pub date: String,
    /// The load averages when it started.
    pub load_before: String,
    /// The load averages when it ended.
    pub load_after: String,
    /// `dockerd --version`.
    pub dockerd: String,
}

impl Circumstances {
    /// The date, load and Docker version now, as a section starts.
    pub fn now() -> Circumstances {
        Circumstances {
            date: now_utc(),
            load_before: loadavg(),
            load_after: String::new(),
            dockerd: first_line("dockerd", &["--version"]).unwrap_or_else(|_| "?".to_owned()),
        }
    }

    /// Notes the load as the section ends.
    pub fn ended(mut self) -> Circumstances {
        self.load_after = loadavg();
        self
    }
}

/// What a section of trials on one cluster (failover, rollout) measured.
#[derive(Clone, Debug)]
pub struct Trials<T> {
    /// When, and how loaded the machine was.
    pub circumstances: Circumstances,
    /// Every trial, in order.
    pub trials: Vec<T>,
    /// How long the whole section took, cluster and clean-ups included.
    pub took: Duration,
}

impl<T> Trials<T> {
    /// Runs `count` trials of `section` (its `--only` name) one after the
    /// other: `trial(n)` for n from 1, each followed by its progress line
    /// `describe(n, &trial)` on stderr. `started` and `circumstances` are
    /// the section's start, before its cluster was built.
    pub fn run(
        section: &str,
        count: usize,
        (started, circumstances): (Instant, Circumstances),
        mut trial: impl FnMut(usize) -> Result<T>,
        describe: impl Fn(usize, &T) -> String,
    ) -> Result<Trials<T>> {
        let mut trials = Vec::new();
        for n in 1..=count {
            check_interrupt()?;
            let done = trial(n).with_context(|| format!("{section} trial {n} of {count}"))?;
            eprintln!("{section} {n}/{count}: {}", describe(n, &done));
            trials.push(done);
        }
        let took = started.elapsed();
        eprintln!("{section} section done in {:.0} s", took.as_secs_f64());
        Ok(Trials {
            circumstances: circumstances.ended(),
            trials,
            took,
        })
    }
}

/// `; WHAT's first failure: ERROR` for each `(what, first error)` that has
/// an error: the end of a trial's progress line.
pub fn first_failures<'a>(
    errors: impl IntoIterator<Item = (&'a str, Option<&'a String>)>,
) -> String {
    errors
        .into_iter()
        .filter_map(|(what, error)| Some(format!("; {what}'s first failure: {}", error?)))
        .collect()
}

/// The `--host` the sections route service `name` by.
pub fn host_of(name: &str) -> String {
    format!("{name}.example.test")
}

/// Fails, saying what to install, without what the lab clusters need.
pub fn preflight() -> Result<()> {
    for tool in ["docker", "dockerd", "tar"] {
        require_bin(tool)?;
    }
    Ok(())
}

/// The paragraph that opens workload section `section` (its `--only`
/// name): when, by which command, with which binaries, on how loaded a
/// machine.
pub fn provenance(c: &Circumstances, about: &About, args: &str, section: &str) -> String {
    let warren = about
        .versions
        .iter()
        .find(|(name, _)| name == "warren")
        .map_or("?", |(_, v)| v.as_str());
    format!(
        "Measured {} by `warren-bench {args}` (`make bench` runs every section; this one alone: \
         `cargo build --release -p warren -p warren-bench` and then \
         `cargo run --release -p warren-bench -- --only {section} --write docs/benchmarks.md`), \
         with warren `{warren}` and `{}`, on {} ({} cores available); load average {} when the \
         section started and {} when it ended (the machine is shared: other lab tests may have \
         been running).\n\n",
        c.date, c.dockerd, about.cpu, about.nproc, c.load_before, c.load_after
    )
}

/// "met" or "NOT met", for a target line.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// The trimmed cells of the first row of a Markdown table in `text` whose
/// first cell contains `first`: what the sections' tests compare, whatever
/// the columns' widths.
#[cfg(test)]
pub fn row_cells(text: &str, first: &str) -> Vec<String> {
    text.lines()
        .map(|line| {
            line.trim()
                .trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.first().is_some_and(|cell| cell.contains(first)))
        .unwrap_or_default()
}
