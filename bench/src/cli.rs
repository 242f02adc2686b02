//! Command-line options and the `--help` text.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::paths::PathKind;

/// The manual page printed by `--help`.
pub const HELP: &str = "\
NAME
    warren-bench - data-plane benchmark of warren against wireguard-go and boringtun-cli

SYNOPSIS
    warren-bench [--runs N] [--seconds S] [--probes N] [--quick]
                 [--only PATH[,PATH...]] [--traversal-trials N] [--write FILE]
                 [--proxy-seconds S] [--failover-trials N] [--rollout-trials N]
                 [--baseline WARREN]

DESCRIPTION
    Builds one pair of network namespaces joined by a veth link per path, and
    measures, in the same run and interleaving the paths run by run:

      veth           iperf3 straight between the two hosts (no tunnel): the ceiling
      warren         warren device <-> warren device
      warren-baseline
                     the same, run by the --baseline binary (only with --baseline)
      wireguard-go   wireguard-go <-> wireguard-go (the reference of the
                     \"vs wg-go\" ratios)
      boringtun-cli  boringtun-cli <-> boringtun-cli

    Tunnels use MTU 1420. For each path it reports: iperf3 TCP single-stream
    throughput; iperf3 UDP throughput received and loss, with 1392-byte
    datagrams (1420 - 20 IP - 8 UDP) sent as fast as iperf3 can (-b 0);
    UDP ping-pong round-trip time p50/p99 through the tunnel, idle and while
    an iperf3 TCP stream runs through it; and the CPU seconds both tunnel
    processes spend per GiB moved by TCP (utime+stime from /proc/PID/stat).
    Throughput figures are medians over the runs. The table on stdout gives
    each figure's ratio against wireguard-go. Progress goes to stderr.

    A second section (\"relay\" in --only) measures the relay and NAT
    traversal, with a `warren relay` on a public lab host (per-node limits
    raised to --rate-limit 100G --packet-limit 10000000 so they never cap a
    measurement) and warren devices at MTU 1384 behind iptables NATs:
    relay forwarding of 1400- and 100-byte payloads blasted by one thread
    for S+1 s (Gbit/s, packets/s, loss) against the same datagrams sent
    straight over the lab links; UDP round-trip p50/p99 and iperf3 TCP
    through a relayed tunnel (symmetric NATs) against a direct one (cone
    NATs, once direct); and the time from both devices registered with the
    relay to a direct path for cone <-> cone, CGNAT <-> cone and symmetric
    <-> cone, over --traversal-trials trials each.

    A third section (\"scheduler\" in --only) runs in process, without the
    lab: 1000 services of 10 replicas deployed one after the other through
    the control plane's own decision path, on 1000 and on 5000 simulated
    nodes, --runs times each: placements per second (median and max), and
    the heap the services' and replicas' records hold per 1000 replicas.

    Two workload sections build a lab cluster: a control plane (`warren
    serve`) and workers (`warren join`) each with its own Docker daemon
    (bridged, in the worker's namespace) holding the busybox image.
    \"deploy\" (a --direct worker in a VPC behind a cone NAT and a --relay
    worker behind a symmetric NAT) times 20 deploys, one after the other, of
    a fresh service of 3 httpd replicas with an HTTP health check, from
    `warren deploy ... --wait` starting to its exit with every replica
    healthy (median and max; when the API accepted it and when all 3 ran),
    and counts where the replicas landed; each service is removed, and its
    containers gone, before the next deploy. \"agent\" (one --direct
    worker) reads the `warren join` process's RSS (VmRSS, sampled each
    second) and CPU (utime+stime over a 20 s window, in % of one core) idle
    (joined, no replicas) and with 20 running replicas (0.01 core and 8 MiB
    each, TCP health checks every 2 s).

    A proxy section (\"proxy\" in --only) builds a lab cluster whose control
    plane runs replicas too (`warren serve --docker-host`, its own Docker
    daemon) and one --direct worker in a VPC, each running an nginx upstream
    (an image made from the host's /usr/sbin/nginx) that serves a 1 KiB
    page; warren's proxy and nginx, haproxy and caddy (Debian's, as reverse
    proxies on the control plane's host, 2 workers or threads each,
    HTTP/1.1 keep-alive to the upstreams, an access log line per request
    to a file for all four) forward to the upstream on their own host and
    to the one across the mesh. wrk (HTTP/1.1 keep-alive, -t2 -c64, and
    -t1 -c1 for the latency of one request at a time) runs on the control
    plane's host against each proxy and against the upstream directly, the
    targets interleaved in each of --runs rounds of --proxy-seconds each:
    requests/s, p50/p99/p99.9 latency, the proxy's CPU seconds per 100k
    requests and the latency it adds over the direct runs, with ratios
    against nginx. h2load (HTTP/2 over TLS, -t2 -c64 -m10) then runs
    against each proxy's HTTPS listener (a self-signed certificate for
    separate -tls host names) in each round, with the same figures, without
    direct runs and latency added.

    A failover section (\"failover\" in --only) builds one lab cluster,
    `warren serve --node-timeout 2s` (the default; the lab's own is longer)
    with a stable --relay worker pi behind a cone NAT (offering 1 core to
    replicas, so that it is the more loaded node) and a public client
    host, and runs --failover-trials trials on it. Each joins a fresh
    --direct worker vmN in a VPC and deploys two fresh services with an HTTP
    health check every 500 ms and a --host each: webN (2 replicas, one on pi
    and one on vmN) and soloN (1 replica, on vmN); a thread on the client
    sends GETs through the control plane's proxy (port 80) back to back,
    alternately for webN and soloN, and after 0.5 s vmN's machine is killed
    (its agent, Docker daemon and containers SIGKILLed). Per trial: the time
    from the kill to the control plane's `node offline` and `node lost` log
    lines for vmN (their timestamps), the requests to webN that did not get
    a 200, and the time until soloN, whose only replica died, answers 200
    again (from its replacement on pi) and the span of its failed requests;
    median and max over the trials, against the targets (offline within
    3 s; no failed request to webN; soloN serving again within 10 s). Both
    services and vmN (`warren node rm --force`) are removed before the next
    trial.

    A rollout section (\"rollout\" in --only) builds one lab cluster (a
    --direct worker vm in a VPC, a --relay worker pi behind a symmetric NAT,
    a public client host) and runs --rollout-trials trials on it, each
    under a thread on the client that sends GETs through the control
    plane's proxy back to back. A rolling update: a fresh service siteN of
    3 httpd replicas (on both workers) whose page says v1 gets `warren
    deploy` of v2 (the default update policy); timed from the command to
    the control plane's rollout_completed event and to the last v1
    container gone; the requests that did not get a 2xx, and the answers
    not saying v2 once the rollout completed. A drain: a fresh service
    poolN of 5 replicas, all on vm (deployed while pi is drained, which is
    then activated), and `warren node drain vm --wait`, timed to its exit
    and to vm's last container gone, with the requests that did not get a
    2xx; then `warren node activate vm`. Median and max over the trials,
    failed requests against the target (0); no reference peer.

    With --baseline WARREN (another warren binary, typically built from an
    older commit: see make bench-baseline below), a path warren-baseline
    joins the paths: the same warren <-> warren setup run by that binary,
    interleaved run by run with warren. At least 5 runs are made then
    (--runs is raised to 5, with a note on stderr). The report gains a table
    \"warren vs baseline\": median TCP throughput, median CPU seconds per GiB
    (per run), UDP throughput and loss, and round-trip p50/p99 of both, with
    each new / old ratio and the per-run ratios, and whether TCP throughput
    (new / old) and CPU per GiB (old / new, lower being better) are both
    within 5 % (>= 0.95). If the relay section runs, the relay's forwarding
    (Gbit/s, loss, CPU) and its added latency are measured with a second
    relay run by the baseline binary as well, interleaved with the first;
    the relayed tunnels and the traversal trials run with warren only.
    Both binaries' --version go in the report.

    Everything happens inside network namespaces the benchmark creates and
    removes on exit; nothing touches the root namespace. Needs root.

OPTIONS
    --runs N         iperf3 runs per path and protocol (default 3; at least 5
                     with --baseline)
    --seconds S      length of each iperf3 run in seconds (default 5)
    --probes N       round-trip probes per latency measurement (default 2000)
    --quick          1 run of 2 s, 300 probes, 3 traversal trials, 3 deploys,
                     5 s agent windows, 2 s proxy runs, 3 failover trials and
                     2 rollout trials, for development (flags given after
                     --quick still apply)
    --only LIST      comma-separated subset of: warren, wireguard-go,
                     boringtun-cli, veth, relay, scheduler, deploy, agent,
                     proxy, failover, rollout (default: all eleven; relay is
                     the relay and NAT traversal section, scheduler the
                     placement section, deploy and agent the workload
                     sections, proxy the ingress proxies, failover a worker
                     killed under load, rollout rolling updates and drains
                     under load)
    --proxy-seconds S
                     length of each wrk run of the proxy section (default 5;
                     the one-connection runs take half as long, at least 1 s;
                     h2load's runs 3/5 as long, at least 1 s)
    --traversal-trials N
                     trials per NAT pairing in the traversal part (default 10)
    --failover-trials N
                     workers killed, one per trial, in the failover section
                     (default 20)
    --rollout-trials N
                     trials (a rolling update and a drain each) of the
                     rollout section (default 4)
    --write FILE     also write the results, as Markdown, between the
                     <!-- bench:start --> and <!-- bench:end --> markers of
                     FILE (created if missing; the rest of FILE is kept),
                     with the comparison tables when --baseline is given.
                     The data-plane paths and relay are one part of it,
                     replaced whole when any of them runs; scheduler, deploy,
                     agent, proxy, failover and rollout are parts of their own, each
                     replaced only when it runs, so `--only deploy --write
                     FILE` leaves the other parts as they were
    --baseline WARREN
                     also measure the warren binary WARREN as the path
                     warren-baseline and compare warren with it (see above);
                     needs warren among the --only paths, or relay
    -h, --help       print this text

ENVIRONMENT
    WARREN_BIN       the warren binary to benchmark and to run the lab clusters
                     with (default: warren next to this binary, i.e. in the same
                     target directory's release/; `make bench` builds it first)
    WARREN_BASELINE_BIN
                     the binary for --baseline, when that flag is not given

EXIT STATUS
    0 on success; 1 on any failure (a one-line reason on stderr), including
    Ctrl-C, after the lab has been cleaned up.

EXAMPLES
    make bench
    cargo run --release -p warren-bench -- --write docs/benchmarks.md
    cargo run --release -p warren-bench -- --quick --only warren,wireguard-go
    cargo run --release -p warren-bench -- --only deploy,agent --write docs/benchmarks.md
    cargo run --release -p warren-bench -- --only proxy --write docs/benchmarks.md
    cargo run --release -p warren-bench -- --only failover --failover-trials 3
    cargo run --release -p warren-bench -- --only rollout --rollout-trials 3 --write docs/benchmarks.md
    make bench-baseline BASE=main~1 BENCH_ARGS=\"--quick --only warren\"
        builds warren at main~1 in a temporary git worktree (kept in
        target/baseline/COMMIT for the next time) and runs this benchmark
        with --baseline that binary and BENCH_ARGS
";

/// What to run, from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// iperf3 runs per path and protocol.
    pub runs: usize,
    /// Length of each iperf3 run, in seconds.
    pub seconds: u32,
    /// Probes per latency measurement.
    pub probes: usize,
    /// The paths to measure, in canonical order.
    pub paths: Vec<PathKind>,
    /// The Markdown file to update, if any.
    pub write: Option<PathBuf>,
    /// Whether `--quick` was given (noted in the report).
    pub quick: bool,
    /// Whether to run the relay and NAT traversal section.
    pub relay: bool,
    /// Whether to run the scheduler section.
    pub scheduler: bool,
    /// Whether to run the deploy-to-healthy section.
    pub deploy: bool,
    /// Whether to run the agent footprint section.
    pub agent: bool,
    /// Deploys the deploy section times.
    pub deploys: usize,
    /// Length of each agent measurement window, in seconds.
    pub agent_window: u32,
    /// Whether to run the ingress proxy section.
    pub proxy: bool,
    /// Length of each 64-connection wrk run of the proxy section, seconds.
    pub proxy_seconds: u32,
    /// Whether to run the failover section.
    pub failover: bool,
    /// Trials (workers killed) of the failover section.
    pub failover_trials: usize,
    /// Whether to run the rollout section.
    pub rollout: bool,
    /// Trials (a rolling update and a drain each) of the rollout section.
    pub rollout_trials: usize,
    /// Trials per NAT pairing in the traversal part.
    pub traversal_trials: usize,
    /// The warren binary to compare warren with (`--baseline`).
    pub baseline: Option<PathBuf>,
    /// The `--runs` asked for, when a baseline raised it to
    /// [`MIN_BASELINE_RUNS`].
    pub runs_raised_from: Option<usize>,
}

/// The fewest runs a comparison with a baseline makes.
pub const MIN_BASELINE_RUNS: usize = 5;

impl Default for Options {
    fn default() -> Self {
        Options {
            runs: 3,
            seconds: 5,
            probes: 2000,
            paths: PathKind::ALL.to_vec(),
            write: None,
            quick: false,
            relay: true,
            scheduler: true,
            deploy: true,
            agent: true,
            deploys: 20,
            agent_window: 20,
            proxy: true,
            proxy_seconds: 5,
            failover: true,
            failover_trials: 20,
            rollout: true,
            rollout_trials: 4,
            traversal_trials: 10,
            baseline: None,
            runs_raised_from: None,
        }
    }
}

impl Options {
    /// Whether any section of the report's main part (data-plane paths,
    /// relay) runs.
    pub fn main_part(&self) -> bool {
        !self.paths.is_empty() || self.relay
    }

    /// Whether any section on a lab cluster with Docker workers (deploy,
    /// agent, proxy, failover, rollout) runs.
    pub fn lab_workers(&self) -> bool {
        self.deploy || self.agent || self.proxy || self.failover || self.rollout
    }

    /// The longest a latency-under-load measurement may take, in seconds.
    pub fn load_cap(&self) -> u32 {
        2 * self.seconds.max(5)
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Print [`HELP`].
    Help,
    /// Run the benchmark.
    Run(Options),
}

/// Parses the arguments (without the program name); `baseline_env` is
/// `$WARREN_BASELINE_BIN`, which `--baseline` overrides.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    baseline_env: Option<OsString>,
) -> Result<Command> {
    let mut o = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String> {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("{flag} needs a value (see --help)"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--quick" => {
                o.quick = true;
                o.runs = 1;
                o.seconds = 2;
                o.probes = 300;
                o.traversal_trials = 3;
                o.deploys = 3;
                o.agent_window = 5;
                o.proxy_seconds = 2;
                o.failover_trials = 3;
                o.rollout_trials = 2;
            }
            "--proxy-seconds" => o.proxy_seconds = positive(&flag, &value()?)?,
            "--traversal-trials" => o.traversal_trials = positive(&flag, &value()?)?,
            "--failover-trials" => o.failover_trials = positive(&flag, &value()?)?,
            "--rollout-trials" => o.rollout_trials = positive(&flag, &value()?)?,
            "--runs" => o.runs = positive(&flag, &value()?)?,
            "--seconds" => o.seconds = positive(&flag, &value()?)?,
            "--probes" => o.probes = positive(&flag, &value()?)?,
            "--write" => o.write = Some(PathBuf::from(value()?)),
            "--only" => only(&value()?, &mut o)?,
            "--baseline" => o.baseline = Some(non_empty(&flag, value()?)?.into()),
            _ => bail!("unknown argument {arg:?} (see --help)"),
        }
    }
    if o.baseline.is_none() {
        o.baseline = baseline_env.filter(|v| !v.is_empty()).map(PathBuf::from);
    }
    if o.baseline.is_some() {
        with_baseline(&mut o)?;
    }
    Ok(Command::Run(o))
}

/// Adds the `warren-baseline` path right after `warren` and raises the
/// runs to [`MIN_BASELINE_RUNS`].
fn with_baseline(o: &mut Options) -> Result<()> {
    if let Some(at) = o.paths.iter().position(|&k| k == PathKind::Warren) {
        o.paths.insert(at + 1, PathKind::WarrenBaseline);
    } else if !o.paths.is_empty() {
        bail!("--baseline compares warren with another warren binary: add warren to --only");
    }
    if o.runs < MIN_BASELINE_RUNS {
        o.runs_raised_from = Some(o.runs);
        o.runs = MIN_BASELINE_RUNS;
    }
    Ok(())
}

fn non_empty(flag: &str, v: String) -> Result<String> {
    if v.is_empty() {
        bail!("{flag} wants a path to a warren binary");
    }
    Ok(v)
}

fn positive<T: std::str::FromStr + PartialOrd + Default>(flag: &str, v: &str) -> Result<T> {
    match v.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => bail!("{flag} wants a positive whole number, not {v:?}"),
    }
}

/// Sets the paths and sections `--only` names in `o`, clearing the others.
fn only(list: &str, o: &mut Options) -> Result<()> {
    let mut wanted = Vec::new();
    (
        o.relay,
        o.scheduler,
        o.deploy,
        o.agent,
        o.proxy,
        o.failover,
        o.rollout,
    ) = (false, false, false, false, false, false, false);
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name {
            "relay" => o.relay = true,
            "scheduler" => o.scheduler = true,
            "deploy" => o.deploy = true,
            "agent" => o.agent = true,
            "proxy" => o.proxy = true,
            "failover" => o.failover = true,
            "rollout" => o.rollout = true,
            _ if name == PathKind::WarrenBaseline.name() => {
                bail!("warren-baseline is not a path for --only: --baseline WARREN adds it")
            }
            _ => wanted.push(PathKind::from_name(name).with_context(|| {
                format!(
                    "unknown path {name:?} in --only: use warren, wireguard-go, boringtun-cli, \
                     veth, relay, scheduler, deploy, agent, proxy, failover, rollout"
                )
            })?),
        }
    }
    o.paths = PathKind::ALL
        .into_iter()
        .filter(|k| wanted.contains(k))
        .collect();
    if !o.main_part()
        && !o.scheduler
        && !o.deploy
        && !o.agent
        && !o.proxy
        && !o.failover
        && !o.rollout
    {
        bail!("--only needs at least one path or section");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options> {
        run_env(args, None)
    }

    fn run_env(args: &[&str], baseline_env: Option<&str>) -> Result<Options> {
        match parse(
            args.iter().map(|s| s.to_string()),
            baseline_env.map(OsString::from),
        )? {
            Command::Run(o) => Ok(o),
            Command::Help => bail!("help"),
        }
    }

    #[test]
    fn defaults_and_flags() -> Result<()> {
        assert_eq!(run(&[])?, Options::default());
        let o = run(&[
            "--quick",
            "--runs=2",
            "--only",
            "veth,warren",
            "--write",
            "x.md",
        ])?;
        assert_eq!((o.runs, o.seconds, o.probes, o.quick), (2, 2, 300, true));
        assert_eq!(o.paths, vec![PathKind::Warren, PathKind::Veth]);
        assert!(!o.relay);
        assert_eq!(o.traversal_trials, 3);
        let r = run(&["--only", "relay", "--traversal-trials", "4"])?;
        assert!(r.relay && r.paths.is_empty());
        assert_eq!(r.traversal_trials, 4);
        assert_eq!(o.write, Some(PathBuf::from("x.md")));
        assert_eq!(parse(["-h".to_string()], None)?, Command::Help);
        assert_eq!(o.baseline, None);
        Ok(())
    }

    #[test]
    fn only_picks_the_workload_sections_alone() -> Result<()> {
        let all = run(&[])?;
        assert!(all.deploy && all.agent && all.main_part());
        let o = run(&["--only", "deploy"])?;
        assert!(o.deploy && !o.agent && !o.main_part(), "{o:?}");
        let o = run(&["--only", "agent,scheduler"])?;
        assert!(o.agent && o.scheduler && !o.deploy && !o.relay && o.paths.is_empty());
        assert!(!o.main_part(), "the scheduler is a part of its own");
        assert!(run(&["--only", "scheduler"])?.scheduler);
        assert!(run(&["--only", "relay"])?.main_part());
        let o = run(&["--quick", "--only=deploy,agent"])?;
        assert_eq!((o.deploys, o.agent_window), (3, 5));
        assert!(all.proxy && !o.proxy);
        let o = run(&["--only", "proxy", "--quick", "--proxy-seconds", "3"])?;
        assert!(o.proxy && !o.main_part() && !o.deploy, "{o:?}");
        assert_eq!(o.proxy_seconds, 3);
        assert_eq!(run(&["--quick"])?.proxy_seconds, 2);
        assert!(all.failover && !o.failover);
        assert_eq!(all.failover_trials, 20);
        let o = run(&["--only", "failover", "--quick"])?;
        assert!(
            o.failover && !o.main_part() && !o.deploy && !o.proxy,
            "{o:?}"
        );
        assert_eq!(o.failover_trials, 3);
        let o = run(&["--quick", "--only", "failover", "--failover-trials=5"])?;
        assert_eq!(o.failover_trials, 5);
        assert!(all.rollout && !o.rollout);
        assert_eq!(all.rollout_trials, 4);
        let o = run(&["--only", "rollout", "--quick"])?;
        assert!(o.rollout && !o.main_part() && !o.failover, "{o:?}");
        assert_eq!(o.rollout_trials, 2);
        let o = run(&["--only", "rollout", "--rollout-trials", "3"])?;
        assert_eq!(o.rollout_trials, 3);
        Ok(())
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &["--runs"][..],
            &["--runs", "0"],
            &["--seconds", "x"],
            &["--only", "kernel"],
            &["--only", "warren-baseline"],
            &["--failover-trials", "0"],
            &["--rollout-trials", "0"],
            &["--frobnicate"],
            &["--baseline"],
            &["--baseline="],
            // A baseline is compared with warren, which --only leaves out here.
            &["--baseline", "old/warren", "--only", "veth"],
        ] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_baseline_adds_its_path_and_runs() -> Result<()> {
        let o = run(&["--quick", "--baseline", "old/warren"])?;
        assert_eq!(o.baseline, Some(PathBuf::from("old/warren")));
        assert_eq!(
            o.paths,
            vec![
                PathKind::Warren,
                PathKind::WarrenBaseline,
                PathKind::WireguardGo,
                PathKind::BoringtunCli,
                PathKind::Veth
            ]
        );
        assert_eq!((o.runs, o.runs_raised_from), (MIN_BASELINE_RUNS, Some(1)));
        // The order of the flags does not matter; more runs stay.
        let o = run(&["--baseline=old/warren", "--only", "warren", "--runs", "7"])?;
        assert_eq!(o.paths, vec![PathKind::Warren, PathKind::WarrenBaseline]);
        assert_eq!((o.runs, o.runs_raised_from), (7, None));
        // The relay section alone compares the relays.
        let o = run(&["--only", "relay", "--baseline", "b"])?;
        assert!(o.relay && o.paths.is_empty());
        assert_eq!((o.runs, o.runs_raised_from), (5, Some(3)));
        Ok(())
    }

    #[test]
    fn the_environment_names_a_baseline_the_flag_overrides() -> Result<()> {
        let o = run_env(&["--only", "warren"], Some("/env/warren"))?;
        assert_eq!(o.baseline, Some(PathBuf::from("/env/warren")));
        assert_eq!(o.paths, vec![PathKind::Warren, PathKind::WarrenBaseline]);
        let o = run_env(&["--baseline", "/flag/warren"], Some("/env/warren"))?;
        assert_eq!(o.baseline, Some(PathBuf::from("/flag/warren")));
        // Set but empty is unset.
        assert_eq!(run_env(&[], Some(""))?, Options::default());
        Ok(())
    }
}
