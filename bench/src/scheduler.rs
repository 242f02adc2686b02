//! The scheduler section: how fast the control plane places replicas and
//! what their state costs in memory, in process (no lab needed).
//!
//! For each cluster size it deploys 1,000 services of 10 replicas (0.1 core
//! and 64 MiB each) one after the other through the control plane's own
//! decision path (`warren_control::workloads::deploy`: spec checks, the
//! reconciler, the scheduler over the kept node views), and commits each
//! change as `ClusterState` does after the store has: the services
//! replaced, the kept [`Views`] updated with `Views::apply`. Timed is the
//! decision and that update; not timed are the SQLite transaction and the
//! agents fetching their assignments, which are I/O. Memory is what the
//! heap grew by: the services records and, in the views, the replicas (by
//! service) and what each node's view counts of them, counted by the
//! benchmark's allocator.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use warren_control::draining::Draining;
use warren_control::scheduler::{Reach, Resources};
use warren_control::store::{ServiceRecord, WorkloadChange};
use warren_control::update_delay::UpdateDelays;
use warren_control::workloads::{self, NodeFacts, Snapshot, Views, DEFAULT_HOST_PORTS};
use warren_proto::{RestartPolicy, ServiceSpec};

use crate::alloc;
use crate::report::{num, Table};
use crate::stats::median;

/// Services deployed per measurement.
pub const SERVICES: usize = 1000;

/// Replicas per service.
pub const REPLICAS: u32 = 10;

/// Cluster sizes measured.
pub const NODES: [usize; 2] = [1000, 5000];

/// One cluster size's figures.
#[derive(Debug, Clone)]
pub struct Row {
    /// Simulated nodes.
    pub nodes: usize,
    /// Replicas placed per run.
    pub replicas: usize,
    /// Each run's placements per second.
    pub rates: Vec<f64>,
    /// Heap the services and replicas take in the control plane's state,
    /// bytes per 1,000 replicas.
    pub bytes_per_1000: f64,
}

/// What the section measured.
#[derive(Debug, Clone)]
pub struct SchedulerResults {
    /// Runs per cluster size.
    pub runs: usize,
    /// One row per cluster size.
    pub rows: Vec<Row>,
}

/// Measures every cluster size `runs` times.
pub fn run(runs: usize) -> Result<SchedulerResults> {
    let mut rows = Vec::new();
    for nodes in NODES {
        let mut rates = Vec::new();
        let mut bytes_per_1000 = 0.0;
        for run in 1..=runs {
            let (elapsed, placed, bytes) = deploy_all(nodes)?;
            let rate = placed as f64 / elapsed.as_secs_f64();
            eprintln!(
                "scheduler, {nodes} nodes, run {run}: {placed} replicas in {:.2} s ({rate:.0}/s)",
                elapsed.as_secs_f64()
            );
            rates.push(rate);
            bytes_per_1000 = bytes as f64 / (placed as f64 / 1000.0);
        }
        rows.push(Row {
            nodes,
            replicas: SERVICES * REPLICAS as usize,
            rates,
            bytes_per_1000,
        });
    }
    Ok(SchedulerResults { runs, rows })
}

fn node(index: usize) -> NodeFacts {
    let name = format!("node-{index:05}");
    NodeFacts {
        labels: BTreeMap::from([("node".to_owned(), name.clone())]),
        name,
        online: true,
        drained: false,
        leaving: false,
        lost: false,
        capacity: Resources {
            cpu_millis: 8000,
            memory: 16 << 30,
        },
        reach: if index % 3 == 0 {
            Reach::Direct
        } else {
            Reach::Relayed
        },
    }
}

fn spec(index: usize) -> ServiceSpec {
    ServiceSpec {
        name: format!("service-{index:04}"),
        image: "local/busybox:1".to_owned(),
        replicas: REPLICAS,
        ports: vec![8080],
        hosts: Vec::new(),
        path: None,
        strip_prefix: false,
        sticky: false,
        tls: warren_proto::TlsMode::Auto,
        upstream_h2: false,
        env: Vec::new(),
        command: vec!["httpd".to_owned(), "-f".to_owned()],
        cpu_millis: None,
        memory: None,
        health: None,
        constraints: Vec::new(),
        restart: RestartPolicy::Always,
        update: Default::default(),
        stop_grace_ms: warren_proto::service::DEFAULT_STOP_GRACE_MS,
    }
}

/// Deploys every service on `nodes` nodes; returns the time spent deciding
/// and committing, the replicas placed and the heap the services and views
/// grew by (the nodes' own views, there before the first replica, not
/// counted).
fn deploy_all(nodes: usize) -> Result<(Duration, usize, usize)> {
    let nodes: Vec<NodeFacts> = (0..nodes).map(node).collect();
    let mut views = Views::new(nodes, &[], Vec::new(), BTreeMap::new());
    let heap_before = alloc::in_use();
    let mut services: Vec<ServiceRecord> = Vec::new();
    let mut deciding = Duration::ZERO;
    let (draining, delays) = (Draining::default(), UpdateDelays::default());
    for index in 0..SERVICES {
        let snapshot = Snapshot {
            services: &services,
            views: &views,
            port_range: &DEFAULT_HOST_PORTS,
            draining: &draining,
            delays: &delays,
            now: 1_800_000_000,
        };
        let started = Instant::now();
        let change = workloads::deploy(&snapshot, spec(index))
            .with_context(|| format!("deploying service {index}"))?;
        commit(&mut services, &mut views, change);
        deciding += started.elapsed();
    }
    let held = alloc::in_use().saturating_sub(heap_before);
    Ok((deciding, views.replicas().count(), held))
}

/// The change as `ClusterState` applies it once the store has committed it.
fn commit(services: &mut Vec<ServiceRecord>, views: &mut Views, change: WorkloadChange) {
    views.apply(&change);
    for service in change.services {
        match services
            .iter_mut()
            .find(|s| s.spec.name == service.spec.name)
        {
            Some(stored) => *stored = service,
            None => services.push(service),
        }
    }
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
}

/// The scheduler section's table.
pub fn scheduler_table(s: &SchedulerResults) -> String {
    let rows = s
        .rows
        .iter()
        .map(|row| {
            let max = row.rates.iter().copied().fold(f64::NAN, f64::max);
            vec![
                row.nodes.to_string(),
                row.replicas.to_string(),
                num(median(&row.rates), 0),
                num(Some(max), 0),
                format!("{:.0}", row.bytes_per_1000 / 1024.0),
                row.rates
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    Table {
        header: vec![
            "nodes",
            "replicas",
            "placements/s (median)",
            "max",
            "KiB per 1000 replicas",
            "runs",
        ],
        rows,
    }
    .render()
}

/// The scheduler's part of the Markdown file: how it was run, then
/// [`scheduler_table`].
pub fn document(s: &SchedulerResults, about: &crate::about::About, args: &str) -> String {
    let mut d = String::from("## Scheduler\n\n");
    d.push_str(&format!(
        "Measured {} by `warren-bench {args}` (`make bench` runs every section; this one alone: \
         `cargo run --release -p warren-bench -- --only scheduler --write docs/benchmarks.md`), \
         with the control plane's code built into the bench binary from this tree, on {} ({} \
         cores available); load average {} when the run started.\n\n\
         **Method:** in process, no lab: {SERVICES} services of {REPLICAS} replicas (0.1 core and \
         64 MiB each, one host port) deployed one after the other on simulated nodes, each \
         through the control plane's own decision path (`warren_control::workloads::deploy`: \
         spec checks, reconciler, the kept node views, scheduler) and committed to the views \
         as `ClusterState` commits it (`Views::apply`; the SQLite transaction and the agents \
         fetching their assignments are not timed); {} run(s) per cluster size, the median \
         shown. Memory is the heap the services' and replicas' records and the kept views hold \
         afterwards. Target: at least 10,000 placements/s.\n\n",
        about.date, about.cpu, about.nproc, about.loadavg, s.runs
    ));
    d.push_str(&scheduler_table(s));
    d.push('\n');
    d
}
