//! The agent footprint section: the memory and CPU of a `warren join`
//! process, idle and running replicas.
//!
//! A control plane and one worker, `vm` (`--direct`, in a VPC behind a cone
//! NAT, with its own bridged Docker daemon holding the busybox image), as
//! [`warren_netns_tests::cluster`] builds them. The agent's process (which
//! also runs the node's mesh device) is read from `/proc/PID/status`
//! (VmRSS each second, VmHWM and Threads at the end of a window) and
//! `/proc/PID/stat` (utime + stime over the window), first idle (joined, no
//! replicas), then with [`REPLICAS`] running replicas whose TCP health
//! checks the agent runs.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use warren_netns_tests::cluster::{deploy_httpd_args, Cluster, DockerNode};
use warren_netns_tests::wg::warren_bin;

use crate::about::About;
use crate::check_interrupt;
use crate::cpu;
use crate::report::{num, Table};
use crate::stats::median;
use crate::workload::{provenance, verdict, Circumstances};

/// Replicas of the loaded measurement.
pub const REPLICAS: u32 = 20;

/// The target for the agent's resident memory.
pub const TARGET_RSS_MIB: f64 = 30.0;

/// How long the agent runs untouched before each window: after joining (or
/// after the deploy returned) it has bursts of work to finish.
pub const SETTLE: Duration = Duration::from_secs(5);

/// How often a window samples VmRSS.
const SAMPLE: Duration = Duration::from_secs(1);

/// Per replica: as small as the scheduler takes (MIN_MEMORY is 6 MiB), the
/// busybox httpd needs less; health checked over TCP every 2 s (the
/// default interval).
const FLAGS: [&str; 6] = ["--cpu", "0.01", "--memory", "8M", "--health-tcp", "--wait"];

/// One measurement window.
#[derive(Clone, Debug, Default)]
pub struct Window {
    /// Warren containers running on the node when the window ended.
    pub replicas: usize,
    /// How long it lasted.
    pub seconds: f64,
    /// utime + stime over the window, in % of one core.
    pub cpu_pct: f64,
    /// VmRSS, sampled each second, in KiB.
    pub rss_kib: Vec<u64>,
    /// VmHWM (the process's peak RSS so far) at the end, in KiB.
    pub hwm_kib: u64,
    /// Threads at the end.
    pub threads: u64,
}

/// What the section measured.
#[derive(Clone, Debug)]
pub struct AgentResults {
    /// When, and how loaded the machine was.
    pub circumstances: Circumstances,
    /// Joined, no replicas.
    pub idle: Window,
    /// With [`REPLICAS`] running replicas.
    pub loaded: Window,
}

/// Builds the cluster and measures the agent over two windows of
/// `window` seconds.
pub fn run(window: u32) -> Result<AgentResults> {
    let circumstances = Circumstances::now();
    let window = Duration::from_secs(u64::from(window));
    eprintln!("agent: building the cluster (control plane, vm)");
    let cluster = Cluster::new("bench-agent")?;
    let mut vm = DockerNode::in_vpc(&cluster, "vm")?;
    vm.join(&cluster, Some(&cluster.token()?))?;
    let pid = vm.agent()?.pid();
    cpu::check_runs(pid, &warren_bin()?)?;
    pause(SETTLE)?;
    let mut idle = measure(pid, window)?;
    idle.replicas = vm.running()?.len();
    report("idle", &idle);
    cluster
        .admin(&deploy_httpd_args("footprint", REPLICAS, &FLAGS))
        .with_context(|| vm.agent_log_tail(20))?;
    pause(SETTLE)?;
    let mut loaded = measure(pid, window)?;
    loaded.replicas = vm.running()?.len();
    report(&format!("{REPLICAS} replicas"), &loaded);
    let healthy = cluster
        .replicas()?
        .iter()
        .filter(|r| r["health"] == "healthy")
        .count();
    if loaded.replicas != REPLICAS as usize || healthy != REPLICAS as usize {
        bail!(
            "{} containers running and {healthy} replicas healthy after the window, not \
             {REPLICAS}\n{}",
            loaded.replicas,
            vm.agent_log_tail(20)
        );
    }
    if !vm.agent()?.is_running() {
        bail!("the agent died: {}", vm.agent()?.describe());
    }
    Ok(AgentResults {
        circumstances: circumstances.ended(),
        idle,
        loaded,
    })
}

fn report(what: &str, w: &Window) {
    eprintln!(
        "agent {what}: {:.2} % of a core, RSS {} MiB (max {} MiB), {} threads",
        w.cpu_pct,
        num(median(&mib(&w.rss_kib)), 1),
        num(mib(&w.rss_kib).into_iter().reduce(f64::max), 1),
        w.threads
    );
}

/// Sleeps `d`, unless interrupted.
fn pause(d: Duration) -> Result<()> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        check_interrupt()?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Reads the process over `window`.
fn measure(pid: u32, window: Duration) -> Result<Window> {
    let hz = cpu::clock_ticks()?;
    let before = cpu::ticks(pid)?;
    let started = Instant::now();
    let end = started + window;
    let mut rss_kib = Vec::new();
    while Instant::now() < end {
        check_interrupt()?;
        rss_kib.push(status_field(&read_status(pid)?, "VmRSS")?);
        std::thread::sleep(SAMPLE.min(end.saturating_duration_since(Instant::now())));
    }
    let ticks = cpu::ticks(pid)?.saturating_sub(before);
    let seconds = started.elapsed().as_secs_f64();
    let status = read_status(pid)?;
    Ok(Window {
        replicas: 0,
        seconds,
        cpu_pct: ticks as f64 / hz / seconds * 100.0,
        rss_kib,
        hwm_kib: status_field(&status, "VmHWM")?,
        threads: status_field(&status, "Threads")?,
    })
}

fn read_status(pid: u32) -> Result<String> {
    let path = format!("/proc/{pid}/status");
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))
}

/// The number of field `name` in the text of `/proc/PID/status`
/// (`VmRSS:\t  12345 kB` gives 12345).
fn status_field(status: &str, name: &str) -> Result<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no {name} in /proc/PID/status"))
}

fn mib(kib: &[u64]) -> Vec<f64> {
    kib.iter().map(|k| *k as f64 / 1024.0).collect()
}

/// The section's table and its target line.
pub fn agent_table(r: &AgentResults) -> String {
    let row = |what: String, w: &Window| {
        let rss = mib(&w.rss_kib);
        vec![
            what,
            w.replicas.to_string(),
            format!("{:.2}", w.cpu_pct),
            num(median(&rss), 1),
            num(rss.iter().copied().reduce(f64::max), 1),
            format!("{:.1}", w.hwm_kib as f64 / 1024.0),
            w.threads.to_string(),
        ]
    };
    let table = Table {
        header: vec![
            "`warren join`",
            "replicas running",
            "CPU % of one core",
            "RSS MiB (median)",
            "RSS MiB (max)",
            "peak RSS so far MiB",
            "threads",
        ],
        rows: vec![
            row("idle (joined, no replicas)".to_owned(), &r.idle),
            row(
                format!("{REPLICAS} replicas, TCP health checks every 2 s"),
                &r.loaded,
            ),
        ],
    };
    let worst = mib(&r.loaded.rss_kib)
        .into_iter()
        .chain(mib(&r.idle.rss_kib))
        .reduce(f64::max);
    format!(
        "Agent footprint ({:.0} s windows)\n\n{}\nTarget: agent RSS under {TARGET_RSS_MIB:.0} MiB: \
         {} MiB at most ({}).\n",
        r.loaded.seconds.max(r.idle.seconds),
        table.render(),
        num(worst, 1),
        verdict(worst.is_some_and(|w| w < TARGET_RSS_MIB)),
    )
}

/// The section's part of the report.
pub fn document(r: &AgentResults, about: &About, args: &str) -> String {
    let mut d = String::from("## Agent footprint\n\n");
    d.push_str(&provenance(&r.circumstances, about, args, "agent"));
    d.push_str(&format!(
        "**Setup:** `warren serve` on a public lab host and one worker, `vm` (`warren join \
         --direct`, in a VPC behind a cone NAT), with its own Docker daemon (bridge mode) that \
         holds `local/busybox:1`. The `warren join` process is the whole agent: the control \
         channel, the node's mesh device (userspace WireGuard), the Docker client and the \
         health probes.\n\n\
         **Method:** {:.0} s after the join, a {:.0} s window idle (joined, no replicas); then \
         `warren deploy footprint --image local/busybox:1 --replicas {REPLICAS} --port 8080 {} \
         -- sh -c '…httpd…'` (all {REPLICAS} on `vm`), {:.0} s, and a window with them running. \
         CPU is the process's utime + stime from `/proc/PID/stat` over the window, in % of one \
         core; RSS is `VmRSS` from `/proc/PID/status`, sampled each second; the peak is \
         `VmHWM` (the highest RSS since the agent started, joining and deploying included) and \
         the threads `Threads`, both at the end of the window.\n\n",
        SETTLE.as_secs_f64(),
        r.idle.seconds,
        FLAGS.join(" "),
        SETTLE.as_secs_f64(),
    ));
    d.push_str(&agent_table(r));
    d.push('\n');
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_fields() -> Result<()> {
        let status = "Name:\twarren\nVmHWM:\t   20480 kB\nVmRSS:\t   12345 kB\nThreads:\t7\n";
        assert_eq!(status_field(status, "VmRSS")?, 12345);
        assert_eq!(status_field(status, "VmHWM")?, 20480);
        assert_eq!(status_field(status, "Threads")?, 7);
        assert!(status_field(status, "VmSwap").is_err());
        // Our own process has all three.
        let own = read_status(std::process::id())?;
        assert!(status_field(&own, "VmRSS")? > 0);
        Ok(())
    }

    #[test]
    fn the_table_says_whether_the_target_is_met() {
        let window = |kib: u64, replicas| Window {
            replicas,
            seconds: 20.0,
            cpu_pct: 1.5,
            rss_kib: vec![kib, kib + 1024],
            hwm_kib: kib + 2048,
            threads: 6,
        };
        let mut r = AgentResults {
            circumstances: Circumstances::default(),
            idle: window(10 * 1024, 0),
            loaded: window(20 * 1024, 20),
        };
        let t = agent_table(&r);
        assert!(t.contains("21.0 MiB at most (met)"), "{t}");
        assert_eq!(
            crate::workload::row_cells(&t, "20 replicas")[3..5],
            ["20.5", "21.0"],
            "{t}"
        );
        r.loaded = window(40 * 1024, 20);
        assert!(agent_table(&r).contains("(NOT met)"));
    }
}
