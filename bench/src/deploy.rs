//! The deploy-to-healthy section: how long `warren deploy --wait` takes to
//! bring a service of three httpd replicas to healthy on a lab cluster
//! whose nodes have the image already, and where the replicas land.
//!
//! The cluster is the one `netns-tests/tests/workloads.rs` builds (see
//! [`warren_netns_tests::cluster`]): a control plane on the lab's public
//! segment, `vm`, a `--direct` worker in a VPC behind a cone NAT, and `pi`,
//! a `--relay` worker behind a symmetric NAT, each with its own bridged
//! Docker daemon. Each deploy is a fresh service, removed (and its
//! containers gone from both daemons) before the next one starts; only the
//! deploy itself is timed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use warren_netns_tests::cluster::{deploy_httpd_args, Cluster, DockerNode};
use warren_netns_tests::{wait_for_value, Nat};

use crate::about::About;
use crate::check_interrupt;
use crate::report::{num, Table};
use crate::stats::median;
use crate::workload::{provenance, verdict, Circumstances, REMOVED};

/// Replicas per deploy.
pub const REPLICAS: u32 = 3;

/// The issue's target for the median time to healthy.
pub const TARGET: Duration = Duration::from_secs(2);

/// The health check flags of every deploy (and `--wait`).
const FLAGS: [&str; 3] = ["--health-http", "/", "--wait"];

/// The nodes, their names and how they reach the mesh, as the report
/// names them.
pub const NODES: [(&str, &str); 2] = [
    ("vm", "--direct, in a VPC behind a cone NAT"),
    ("pi", "--relay, behind a symmetric NAT"),
];

/// One deploy's timings, from `warren deploy` starting.
#[derive(Clone, Debug)]
pub struct Deploy {
    /// When it printed `deployed …`: the API placed the replicas and
    /// committed them.
    pub accepted: Duration,
    /// When its progress first said all replicas run (polled every 250 ms).
    pub running: Option<Duration>,
    /// When it exited with every replica healthy.
    pub healthy: Duration,
    /// Replicas per node.
    pub placed: BTreeMap<String, usize>,
}

/// What the section measured.
#[derive(Clone, Debug)]
pub struct DeployResults {
    /// When, and how loaded the machine was.
    pub circumstances: Circumstances,
    /// Every deploy, in order.
    pub deploys: Vec<Deploy>,
}

/// Builds the cluster and times `count` deploys.
pub fn run(count: usize) -> Result<DeployResults> {
    let circumstances = Circumstances::now();
    eprintln!("deploy: building the cluster (control plane, vm, pi)");
    let cluster = Cluster::new("bench-deploy")?;
    let mut vm = DockerNode::in_vpc(&cluster, NODES[0].0)?;
    let mut pi = DockerNode::behind(&cluster, NODES[1].0, Nat::Symmetric)?;
    vm.join(&cluster, Some(&cluster.token()?))?;
    pi.join(&cluster, Some(&cluster.token()?))?;
    let nodes = [&vm, &pi];
    let tails = || {
        nodes
            .iter()
            .map(|n| format!("{}:\n{}", n.name, n.agent_log_tail(20)))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut deploys = Vec::new();
    for i in 1..=count {
        check_interrupt()?;
        let name = format!("bench-{i:02}");
        let deploy = deploy_once(&cluster, &name)
            .with_context(|| format!("deploy {i} of {count} ({name})\n{}", tails()))?;
        eprintln!(
            "deploy {i}/{count}: healthy in {:.2} s (accepted {:.2} s, running {}), placed {:?}",
            deploy.healthy.as_secs_f64(),
            deploy.accepted.as_secs_f64(),
            deploy
                .running
                .map_or_else(|| "?".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
            deploy.placed
        );
        deploys.push(deploy);
        remove(&cluster, &[&name], &nodes)
            .with_context(|| format!("removing {name}\n{}", tails()))?;
    }
    Ok(DeployResults {
        circumstances: circumstances.ended(),
        deploys,
    })
}

/// Runs one `warren deploy NAME ... --wait` and times it.
fn deploy_once(cluster: &Cluster, name: &str) -> Result<Deploy> {
    let mut command = cluster.admin_command(&deploy_httpd_args(name, REPLICAS, &FLAGS))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().context("cannot start warren deploy")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = Vec::new();
    let (mut accepted, mut running) = (None, None);
    let all_running = format!("running {REPLICAS},");
    for line in BufReader::new(stderr).lines() {
        let line = line.context("reading warren deploy's stderr")?;
        let at = started.elapsed();
        if accepted.is_none() && line.starts_with("deployed ") {
            accepted = Some(at);
        }
        if running.is_none() && line.contains(&all_running) {
            running = Some(at);
        }
        lines.push(line);
    }
    let status = child.wait().context("waiting for warren deploy")?;
    let healthy = started.elapsed();
    if !status.success() {
        bail!("warren deploy failed ({status}):\n{}", lines.join("\n"));
    }
    let accepted = accepted.with_context(|| {
        format!(
            "warren deploy said no `deployed` line:\n{}",
            lines.join("\n")
        )
    })?;
    let mut placed = BTreeMap::new();
    for replica in cluster.replicas()? {
        if replica["service"] != name {
            continue;
        }
        if replica["health"] != "healthy" {
            bail!("--wait returned with a replica not healthy: {replica}");
        }
        let node = replica["node"].as_str().unwrap_or("?").to_owned();
        *placed.entry(node).or_insert(0) += 1;
    }
    if placed.values().sum::<usize>() != REPLICAS as usize {
        bail!("{name} has {placed:?} replicas, not {REPLICAS}");
    }
    Ok(Deploy {
        accepted,
        running,
        healthy,
        placed,
    })
}

/// `warren rm NAME` for each of `names`, then waits until none of `nodes`
/// runs a warren container.
pub(crate) fn remove(cluster: &Cluster, names: &[&str], nodes: &[&DockerNode]) -> Result<()> {
    for name in names {
        cluster.admin(&["rm", name])?;
    }
    let names = names.join(", ");
    wait_for_value(&format!("{names}'s containers to be gone"), REMOVED, || {
        let gone = nodes
            .iter()
            .all(|n| n.running().is_ok_and(|ids| ids.is_empty()));
        gone.then_some(())
    })
}

fn secs(values: &[Duration]) -> Vec<f64> {
    values.iter().map(Duration::as_secs_f64).collect()
}

fn min_max(values: &[f64]) -> (Option<f64>, Option<f64>) {
    let min = values.iter().copied().reduce(f64::min);
    let max = values.iter().copied().reduce(f64::max);
    (min, max)
}

/// The section's tables: timings, then placements.
pub fn deploy_tables(r: &DeployResults) -> String {
    let row = |what: &str, values: Vec<f64>| {
        let (min, max) = min_max(&values);
        vec![
            what.to_owned(),
            num(median(&values), 2),
            num(min, 2),
            num(max, 2),
        ]
    };
    let healthy = secs(&r.deploys.iter().map(|d| d.healthy).collect::<Vec<_>>());
    let accepted = secs(&r.deploys.iter().map(|d| d.accepted).collect::<Vec<_>>());
    let running = secs(
        &r.deploys
            .iter()
            .filter_map(|d| d.running)
            .collect::<Vec<_>>(),
    );
    let timings = Table {
        header: vec![
            "from `warren deploy` starting to",
            "median s",
            "min s",
            "max s",
        ],
        rows: vec![
            row("accepted (replicas placed and committed)", accepted),
            row(&format!("all {REPLICAS} running"), running),
            row(
                &format!("**all {REPLICAS} healthy (`--wait` returns)**"),
                healthy.clone(),
            ),
        ],
    };
    let placements = Table {
        header: vec!["node", "joined", "replicas of a deploy (deploys)"],
        rows: NODES
            .iter()
            .map(|(node, how)| {
                let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
                for d in &r.deploys {
                    *counts
                        .entry(d.placed.get(*node).copied().unwrap_or(0))
                        .or_insert(0) += 1;
                }
                let counts = counts
                    .iter()
                    .map(|(replicas, deploys)| format!("{replicas} ({deploys})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![(*node).to_owned(), (*how).to_owned(), counts]
            })
            .collect(),
    };
    let median = median(&healthy);
    format!(
        "Deploy to healthy ({} deploys of {REPLICAS} replicas, image present)\n\n{}\n\
         Each deploy, healthy after (s): {}\n\n\
         Where the replicas landed\n\n{}\n\
         Target: median time to healthy under {} s: {} s ({}).\n",
        r.deploys.len(),
        timings.render(),
        healthy
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        placements.render(),
        TARGET.as_secs(),
        num(median, 2),
        verdict(median.is_some_and(|m| m < TARGET.as_secs_f64())),
    )
}

/// The section's part of the report.
pub fn document(r: &DeployResults, about: &About, args: &str) -> String {
    let mut d = String::from("## Deploy to healthy\n\n");
    d.push_str(&provenance(&r.circumstances, about, args, "deploy"));
    d.push_str(&format!(
        "**Setup:** the cluster of `netns-tests/tests/workloads.rs`, built by \
         `warren_netns_tests::cluster`: `warren serve` on a public lab host, `vm` (`warren join \
         --direct`, in a VPC behind a cone NAT) and `pi` (`warren join --relay`, behind a \
         symmetric NAT), each with its own Docker daemon (bridge mode, in the worker's \
         namespace) that already holds the image `local/busybox:1` (imported from the static \
         busybox).\n\n\
         **Method:** {} deploys one after the other, each of a fresh service, timed from the \
         start of\n\n\
         ```\nwarren deploy NAME --image local/busybox:1 --replicas {REPLICAS} --port 8080 \
         --health-http / --wait -- sh -c '{}'\n```\n\n\
         on the control host to its exit (every replica healthy: the agent's HTTP probe on the \
         replica's published port answered 2xx; default health interval 2 s). \"Accepted\" is \
         when it printed `deployed …` (the control plane placed the replicas and committed them), \
         \"running\" when its progress (polled every 250 ms) first counted all {REPLICAS} running. \
         After each deploy, `warren rm NAME` and a wait until neither daemon runs a warren \
         container (not timed; a busybox httpd ignores SIGTERM, so each stop takes the agent's \
         10 s grace).\n\n",
        r.deploys.len(),
        warren_netns_tests::cluster::HTTPD,
    ));
    d.push_str(&deploy_tables(r));
    d.push('\n');
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(healthy_ms: u64, vm: usize) -> Deploy {
        Deploy {
            accepted: Duration::from_millis(40),
            running: Some(Duration::from_millis(healthy_ms / 2)),
            healthy: Duration::from_millis(healthy_ms),
            placed: BTreeMap::from([("vm".to_owned(), vm), ("pi".to_owned(), 3 - vm)]),
        }
    }

    #[test]
    fn tables_give_the_median_and_count_placements() {
        let r = DeployResults {
            circumstances: Circumstances::default(),
            deploys: vec![deploy(1500, 2), deploy(1800, 2), deploy(2600, 1)],
        };
        let t = deploy_tables(&r);
        assert_eq!(
            crate::workload::row_cells(&t, "healthy (`--wait` returns)")[1..],
            ["1.80", "1.50", "2.60"],
            "{t}"
        );
        assert!(t.contains("| vm   |"), "{t}");
        assert!(t.contains("1 (1), 2 (2)"), "{t}");
        assert!(t.contains("1 (2), 2 (1)"), "{t}");
        assert!(t.contains("1.80 s (met)"), "{t}");
    }
}
