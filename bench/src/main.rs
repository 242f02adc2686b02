//! `warren-bench`: the data-plane benchmark of warren against wireguard-go
//! and boringtun-cli (and raw veth as the ceiling), run by `make bench`.
//!
//! Each path is two lab namespaces on a veth link; the paths are measured
//! in the same run, interleaved run by run: iperf3 TCP and UDP throughput,
//! UDP round-trip latency idle and under load, and the tunnel processes'
//! CPU seconds per GiB. With `--baseline`, a second warren binary is
//! measured beside the first and compared with it. Further sections measure
//! the relay and NAT traversal, the scheduler in process, and, on a lab
//! cluster with Docker workers, deploy-to-healthy times, the agent's
//! footprint, the ingress proxy against nginx, HAProxy and Caddy,
//! failover (a worker killed under load), and rolling updates and drains
//! under load. See `--help` (the [`cli::HELP`] text) for details.

mod about;
mod agent;
mod alloc;
mod cli;
mod cpu;
mod deploy;
mod failover;
mod h2load;
mod iperf;
mod latency;
mod paths;
mod proxy;
mod proxy_conf;
mod proxy_report;
mod relay;
mod report;
mod rollout;
mod scheduler;
mod sections;
mod stats;
mod workload;
mod wrk;

use std::path::Path as FsPath;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Counts heap bytes for the scheduler section.
#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

use crate::about::About;
use crate::cli::{Command, Options};
use crate::paths::{Path, PathKind, WarrenBins};
use crate::report::PathResults;

/// How long a new tunnel gets to carry its first round trip (handshake).
const WARM_UP: Duration = Duration::from_secs(15);
/// How long a background TCP stream runs before latency under load is probed.
const LOAD_RAMP_UP: Duration = Duration::from_secs(1);

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether SIGINT or SIGTERM arrived; long steps poll this and stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Turns SIGINT and SIGTERM into [`interrupted`], so that the run unwinds
/// through the labs' drops (which remove namespaces and stop processes)
/// instead of dying with them in place.
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe.
        unsafe {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
}

fn check_interrupt() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) if interrupted() => {
            eprintln!("warren-bench: interrupted; the lab was cleaned up");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("warren-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match cli::parse(args.clone(), std::env::var_os("WARREN_BASELINE_BIN"))? {
        Command::Help => {
            print!("{}", cli::HELP);
            return Ok(());
        }
        Command::Run(opts) => opts,
    };
    if let Some(asked) = opts.runs_raised_from {
        eprintln!(
            "note: a comparison with a baseline makes at least {} runs; running {} rather than {asked}",
            cli::MIN_BASELINE_RUNS,
            opts.runs
        );
    }
    let bins = preflight(&opts)?;
    catch_signals();
    let started = Instant::now();
    let mut versioned = opts.paths.clone();
    let lab_cluster = opts.relay || opts.lab_workers();
    if lab_cluster && !versioned.contains(&PathKind::Warren) {
        versioned.insert(0, PathKind::Warren);
    }
    if bins.baseline.is_some() && !versioned.contains(&PathKind::WarrenBaseline) {
        versioned.insert(1, PathKind::WarrenBaseline);
    }
    let about = About::gather(&versioned, &bins)?;
    let results = {
        let paths = setup(&opts, &bins)?;
        measure(&opts, &paths)?
        // The paths (namespaces, tunnel processes) go here.
    };
    if !results.is_empty() {
        println!("{}", report::tables(&results));
        if let Some(table) = report::baseline_tables(&results) {
            println!("{table}");
        }
    }
    let relay = if opts.relay {
        let r = relay::run(relay::Plan {
            runs: opts.runs,
            seconds: opts.seconds,
            probes: opts.probes,
            trials: opts.traversal_trials,
            blast_seconds: opts.seconds + 1,
            baseline: bins.baseline.clone(),
        })?;
        println!("{}", report::relay_tables(&r));
        Some(r)
    } else {
        None
    };
    let scheduler = if opts.scheduler {
        let s = scheduler::run(opts.runs)?;
        println!("{}", scheduler::scheduler_table(&s));
        Some(s)
    } else {
        None
    };
    let deploy = if opts.deploy {
        let d = deploy::run(opts.deploys)?;
        println!("{}", deploy::deploy_tables(&d));
        Some(d)
    } else {
        None
    };
    let agent = if opts.agent {
        let a = agent::run(opts.agent_window)?;
        println!("{}", agent::agent_table(&a));
        Some(a)
    } else {
        None
    };
    let proxy = if opts.proxy {
        let p = proxy::run(proxy::Plan {
            rounds: opts.runs,
            seconds: opts.proxy_seconds,
        })?;
        println!("{}", proxy_report::proxy_tables(&p));
        Some(p)
    } else {
        None
    };
    let failover = if opts.failover {
        let f = failover::run(opts.failover_trials)?;
        println!("{}", failover::failover_tables(&f));
        Some(f)
    } else {
        None
    };
    let rollout = if opts.rollout {
        let r = rollout::run(opts.rollout_trials)?;
        println!("{}", rollout::rollout_tables(&r));
        Some(r)
    } else {
        None
    };
    if let Some(file) = &opts.write {
        let args = args.join(" ");
        let mut written = sections::Written {
            main: opts
                .main_part()
                .then(|| report::document(&about, &opts, &args, &results, relay.as_ref())),
            parts: Vec::new(),
        };
        if let Some(s) = &scheduler {
            written
                .parts
                .push(("scheduler", scheduler::document(s, &about, &args)));
        }
        if let Some(d) = &deploy {
            written
                .parts
                .push(("deploy", deploy::document(d, &about, &args)));
        }
        if let Some(a) = &agent {
            written
                .parts
                .push(("agent", agent::document(a, &about, &args)));
        }
        if let Some(p) = &proxy {
            written
                .parts
                .push(("proxy", proxy_report::document(p, &about, &args)));
        }
        if let Some(f) = &failover {
            written
                .parts
                .push(("failover", failover::document(f, &about, &args)));
        }
        if let Some(r) = &rollout {
            written
                .parts
                .push(("rollout", rollout::document(r, &about, &args)));
        }
        write_report(file, &written)?;
        eprintln!("wrote {}", file.display());
    }
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Fails early, with what to do, if something the run needs is missing;
/// returns the warren binaries to run.
fn preflight(opts: &Options) -> Result<WarrenBins> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark needs root (network namespaces): run it as root");
    }
    warren_netns_tests::require_bin("iperf3")?;
    let mut bins = WarrenBins::default();
    if opts.relay {
        warren_netns_tests::require_bin("wg")?;
    }
    if opts.lab_workers() {
        workload::preflight()?;
    }
    if opts.proxy {
        for tool in ["wrk", "h2load", "nginx", "haproxy", "caddy", "ldd"] {
            warren_netns_tests::require_bin(tool)
                .context("the proxy section needs it: run scripts/setup")?;
        }
    }
    if opts.relay || opts.lab_workers() {
        let bin = warren_netns_tests::cmd::locate_target_bin("WARREN_BIN", "warren").context(
            "no warren binary for the lab clusters: run `cargo build --release -p warren`",
        )?;
        warn_if_debug(&bin);
        bins.current = Some(bin);
    }
    if let Some(given) = &opts.baseline {
        let bin = std::fs::canonicalize(given)
            .with_context(|| format!("--baseline {}: no such file", given.display()))?;
        let out = std::process::Command::new(&bin)
            .arg("--version")
            .output()
            .with_context(|| format!("--baseline {}: cannot run it", bin.display()))?;
        if !out.status.success() || !String::from_utf8_lossy(&out.stdout).starts_with("warren") {
            bail!(
                "--baseline {}: `--version` does not say warren; is it a warren binary?",
                bin.display()
            );
        }
        warn_if_debug(&bin);
        bins.baseline = Some(bin);
    }
    for kind in &opts.paths {
        match kind {
            PathKind::Warren => {
                let bin = warren_netns_tests::cmd::locate_target_bin("WARREN_BIN", "warren")
                    .context(
                        "no warren binary to benchmark: run `cargo build --release -p warren` \
                         (make bench does) or set WARREN_BIN",
                    )?;
                warn_if_debug(&bin);
                bins.current = Some(bin);
            }
            // Found above.
            PathKind::WarrenBaseline => {}
            PathKind::WireguardGo => drop(warren_netns_tests::require_bin("wireguard-go")?),
            PathKind::BoringtunCli => drop(warren_netns_tests::require_bin("boringtun-cli")?),
            PathKind::Veth => {}
        }
        if kind.wg_impl().is_some() {
            warren_netns_tests::require_bin("wg")?;
        }
    }
    if let (Some(current), Some(baseline)) = (&bins.current, &bins.baseline) {
        if std::fs::canonicalize(current).ok().as_ref() == Some(baseline) {
            eprintln!(
                "note: the baseline is the warren binary under test ({}): the ratios show \
                 the run-to-run noise only",
                baseline.display()
            );
        }
    }
    Ok(bins)
}

fn warn_if_debug(bin: &FsPath) {
    if bin.components().any(|c| c.as_os_str() == "debug") {
        eprintln!(
            "warning: benchmarking a debug build ({}); use --release",
            bin.display()
        );
    }
}

/// Builds every path and checks it carries a round trip.
fn setup(opts: &Options, bins: &WarrenBins) -> Result<Vec<Path>> {
    let mut paths = Vec::new();
    for &kind in &opts.paths {
        check_interrupt()?;
        eprintln!("setting up {}", kind.name());
        let path = Path::setup(kind, bins)?;
        latency::warm_up(&path, WARM_UP)?;
        paths.push(path);
    }
    Ok(paths)
}

/// Numbered progress lines on stderr.
struct Progress {
    step: usize,
    total: usize,
}

impl Progress {
    fn report(&mut self, msg: &str) {
        self.step += 1;
        eprintln!("[{}/{}] {msg}", self.step, self.total);
    }
}

/// Runs every measurement, interleaving the paths run by run.
fn measure(opts: &Options, paths: &[Path]) -> Result<Vec<PathResults>> {
    let mut results: Vec<PathResults> = paths.iter().map(|p| PathResults::new(p.kind)).collect();
    let mut progress = Progress {
        step: 0,
        total: paths.len() * (2 * opts.runs + 3),
    };
    for run in 1..=opts.runs {
        for (path, r) in paths.iter().zip(&mut results) {
            let (tcp, cpu) = step(path, |p| {
                let pids = p.tunnel_pids();
                let before = cpu::cpu_seconds(&pids)?;
                let tcp = iperf::tcp(p, opts.seconds)?;
                Ok((tcp, cpu::cpu_seconds(&pids)? - before))
            })
            .with_context(|| format!("{} tcp run {run}", path.kind.name()))?;
            r.tcp.push(tcp.gbps);
            r.tcp_bytes += tcp.bytes;
            r.cpu_secs += cpu;
            r.tcp_runs.push((tcp.bytes, cpu));
            progress.report(&format!(
                "{} tcp run {run}: {:.2} Gbit/s, {cpu:.1} CPU s",
                path.kind.name(),
                tcp.gbps
            ));
        }
    }
    for run in 1..=opts.runs {
        for (path, r) in paths.iter().zip(&mut results) {
            let udp = step(path, |p| iperf::udp(p, opts.seconds))
                .with_context(|| format!("{} udp run {run}", path.kind.name()))?;
            r.udp.push(udp);
            progress.report(&format!(
                "{} udp run {run}: {:.2} Gbit/s received, {:.1} % lost",
                path.kind.name(),
                udp.gbps,
                udp.loss_pct
            ));
        }
    }
    for (path, r) in paths.iter().zip(&mut results) {
        r.idle = step(path, |p| {
            latency::measure(p, opts.probes, Duration::from_secs(60))
        })
        .with_context(|| format!("{} idle latency", path.kind.name()))?;
        progress.report(&latency_line(path.kind, "idle", &r.idle));
    }
    for (path, r) in paths.iter().zip(&mut results) {
        r.loaded = step(path, |p| latency_under_load(p, opts, None))
            .with_context(|| format!("{} latency under load", path.kind.name()))?;
        progress.report(&latency_line(path.kind, "under load", &r.loaded));
    }
    for (path, r) in paths.iter().zip(&mut results) {
        r.paced = step(path, |p| latency_under_load(p, opts, Some(PACED_LOAD)))
            .with_context(|| format!("{} latency under a paced load", path.kind.name()))?;
        progress.report(&latency_line(
            path.kind,
            &format!("under {PACED_LOAD}bit/s"),
            &r.paced,
        ));
    }
    Ok(results)
}

/// Runs one measurement on a path that must be alive before and after.
fn step<T>(path: &Path, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    check_interrupt()?;
    path.check_alive()?;
    let out = f(path)?;
    path.check_alive()?;
    Ok(out)
}

/// The rate of the paced load: below what every tunnel here can carry, so
/// all of them carry the same traffic while their latency is measured.
const PACED_LOAD: &str = "150M";

/// Round trips while a TCP stream runs through the path: as fast as it can
/// (`rate` none: each tunnel saturated by its own throughput) or paced.
fn latency_under_load(path: &Path, opts: &Options, rate: Option<&str>) -> Result<latency::Rtts> {
    let cap = opts.load_cap();
    let _load = iperf::start_load(path, cap + 10, rate)?;
    let ramp = Instant::now() + LOAD_RAMP_UP;
    while Instant::now() < ramp {
        check_interrupt()?;
        std::thread::sleep(Duration::from_millis(50));
    }
    latency::measure(path, opts.probes, Duration::from_secs(u64::from(cap)))
}

fn latency_line(kind: PathKind, what: &str, rtts: &latency::Rtts) -> String {
    let pct = |p| stats::percentile(&rtts.micros, p).unwrap_or(f64::NAN);
    format!(
        "{} latency {what}: p50 {:.0} µs, p99 {:.0} µs ({} probes, {} lost)",
        kind.name(),
        pct(50.0),
        pct(99.0),
        rtts.micros.len(),
        rtts.lost
    )
}

/// Merges what the run wrote into the generated part of `file` (see
/// [`sections::merge`]), through a temporary file and a rename.
fn write_report(file: &FsPath, written: &sections::Written) -> Result<()> {
    let existing = match std::fs::read_to_string(file) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
    };
    let text = sections::merge(existing.as_deref(), written);
    let tmp = file.with_extension("md.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, file).with_context(|| format!("cannot replace {}", file.display()))
}
