//! The ingress proxy section: warren's proxy beside nginx, HAProxy and
//! Caddy as reverse proxies on the control plane's host, in the same run,
//! the targets interleaved round by round.
//!
//! One lab cluster: `warren serve --docker-host` (its host runs replicas
//! too, as the node `control`) and one `--direct` worker, `vm`, in a VPC
//! behind a cone NAT, each with its own Docker daemon holding an nginx
//! image made from the host's `/usr/sbin/nginx`
//! ([`warren_netns_tests::import_nginx_image`]) that serves a 1 KiB page.
//! Two services of one replica each are the upstreams of the two
//! [`Topology`]s: `local` on `control` (the proxies alone, no tunnel) and
//! `mesh` on `vm` (across the WireGuard mesh). warren routes them by host
//! name from its services; the other three proxies get the same routes
//! from [`crate::proxy_conf`].
//!
//! The load: [`Driver`]s, each a client program speaking one protocol, at
//! two [`Concurrency`] levels; the upstream is also loaded directly
//! ([`Target::Direct`], the baseline of "latency added"). wrk speaks
//! HTTP/1.1 in cleartext to each proxy's plain port with the topology's
//! host name; h2load speaks HTTP/2 over TLS to each proxy's HTTPS port
//! with the topology's TLS host name ([`Topology::tls_host`], routed to
//! the same service: warren redirects plain HTTP for a host that has a
//! certificate, so the wrk runs keep names without one). The upstreams
//! speak cleartext HTTP/1.1 only, so h2load has no direct runs. The
//! samples, the statistics and the tables are per driver.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use warren_netns_tests::cluster::{Cluster, DockerNode};
use warren_netns_tests::tcp::http_get_host;
use warren_netns_tests::{import_nginx_image, start_dockerd_with, wait_for_value, DockerNet};

use crate::about::first_line;
use crate::check_interrupt;
use crate::cpu;
use crate::h2load;
use crate::proxy_conf::{self, LogLines, Ports, Started, Tls, Upstreams};
use crate::workload::Circumstances;
use crate::wrk::{self, Load, LoadRun};

/// The upstreams' image, in both daemons (each imported with its own page).
pub const IMAGE: &str = "local/nginx:1";

/// The size of the page the upstreams serve, bytes.
pub const PAGE_BYTES: usize = 1024;

/// warren's log level in this section: its access log (`warren::access`,
/// info) on, nothing at debug.
pub const WARREN_LOG: &str = "info";

/// The name of the mesh device's thread in `warren serve` (see
/// `warren_os::thread`): its CPU time is the tunnel's, not the proxy's.
pub const DEVICE_THREAD: &str = "warren-device";

/// How long a target gets to answer its first request.
const READY: Duration = Duration::from_secs(30);

/// Each target's unrecorded first run, which fills the keep-alive pools.
pub const WARM_UP: Duration = Duration::from_secs(1);

/// Where the upstream is, relative to the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// On the proxy's own host (the `control` node): the proxies alone.
    Local,
    /// On a worker, across the WireGuard mesh.
    Mesh,
}

impl Topology {
    /// Both, in the order they are measured and reported.
    pub const ALL: [Topology; 2] = [Topology::Local, Topology::Mesh];

    /// The service's name (and the proxies' name for its route).
    pub fn name(self) -> &'static str {
        match self {
            Topology::Local => "local",
            Topology::Mesh => "mesh",
        }
    }

    /// The host name it is routed by.
    pub fn host(self) -> &'static str {
        match self {
            Topology::Local => "local.bench.test",
            Topology::Mesh => "mesh.bench.test",
        }
    }

    /// The host name it is routed by for HTTPS (the h2load runs): warren
    /// has a certificate for it, and none for [`Topology::host`].
    pub fn tls_host(self) -> &'static str {
        match self {
            Topology::Local => "local-tls.bench.test",
            Topology::Mesh => "mesh-tls.bench.test",
        }
    }

    /// The node its replica runs on.
    fn node(self) -> &'static str {
        match self {
            Topology::Local => "control",
            Topology::Mesh => "vm",
        }
    }

    /// How the report names it.
    pub fn title(self) -> &'static str {
        match self {
            Topology::Local => "upstream on the proxy's host (no tunnel)",
            Topology::Mesh => "upstream across the mesh (on `vm`, through WireGuard)",
        }
    }
}

/// A proxy of the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyKind {
    /// `warren serve`'s own proxy.
    Warren,
    /// nginx (the reference of the ratios).
    Nginx,
    /// HAProxy.
    Haproxy,
    /// Caddy.
    Caddy,
}

impl ProxyKind {
    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            ProxyKind::Warren => "warren",
            ProxyKind::Nginx => "nginx",
            ProxyKind::Haproxy => "haproxy",
            ProxyKind::Caddy => "caddy",
        }
    }

    /// The port it takes HTTP/1.1 on, on the control plane's host.
    pub fn port(self) -> u16 {
        match self {
            ProxyKind::Warren => 80,
            ProxyKind::Nginx => 8081,
            ProxyKind::Haproxy => 8082,
            ProxyKind::Caddy => 8083,
        }
    }

    /// The port it takes HTTPS (HTTP/2 by ALPN) on.
    pub fn tls_port(self) -> u16 {
        match self {
            ProxyKind::Warren => 443,
            ProxyKind::Nginx => 8441,
            ProxyKind::Haproxy => 8442,
            ProxyKind::Caddy => 8443,
        }
    }
}

/// What a run's load goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The upstream itself, at its `mesh-ip:host-port`.
    Direct,
    /// A proxy, by the topology's host name.
    Proxy(ProxyKind),
}

impl Target {
    /// Every target, in the order of the tables.
    pub const ALL: [Target; 5] = [
        Target::Direct,
        Target::Proxy(ProxyKind::Warren),
        Target::Proxy(ProxyKind::Nginx),
        Target::Proxy(ProxyKind::Haproxy),
        Target::Proxy(ProxyKind::Caddy),
    ];

    /// The proxies alone, in the same order.
    pub const PROXIES: [Target; 4] = [
        Target::Proxy(ProxyKind::Warren),
        Target::Proxy(ProxyKind::Nginx),
        Target::Proxy(ProxyKind::Haproxy),
        Target::Proxy(ProxyKind::Caddy),
    ];

    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct (no proxy)",
            Target::Proxy(kind) => kind.name(),
        }
    }
}

/// A client program and the protocol it speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// wrk: HTTP/1.1 keep-alive, cleartext.
    Wrk,
    /// h2load: HTTP/2 over TLS (ALPN h2), [`h2load::STREAMS`] streams per
    /// connection.
    H2load,
}

impl Driver {
    /// The drivers this section runs, in the order of a round.
    pub const ALL: [Driver; 2] = [Driver::Wrk, Driver::H2load];

    /// How the report names it.
    pub fn title(self) -> &'static str {
        match self {
            Driver::Wrk => "wrk, HTTP/1.1 keep-alive",
            Driver::H2load => "h2load, HTTP/2 over TLS",
        }
    }

    /// The targets it loads: h2load only the proxies (the upstreams speak
    /// neither TLS nor HTTP/2).
    pub fn targets(self) -> &'static [Target] {
        match self {
            Driver::Wrk => &Target::ALL,
            Driver::H2load => &Target::PROXIES,
        }
    }

    /// The concurrencies it runs at: h2load only loaded.
    pub fn concurrencies(self) -> &'static [Concurrency] {
        match self {
            Driver::Wrk => &Concurrency::ALL,
            Driver::H2load => &[Concurrency::Loaded],
        }
    }

    /// How long its loaded runs take, given wrk's (h2load's are shorter,
    /// to keep the section's length).
    pub fn seconds(self, loaded: u32) -> u32 {
        match self {
            Driver::Wrk => loaded,
            Driver::H2load => (loaded * 3 / 5).max(1),
        }
    }

    /// How a table's heading describes its loaded runs.
    pub fn load_text(self) -> String {
        let load = Concurrency::Loaded.load();
        match self {
            Driver::Wrk => format!("{} threads, {} connections", load.threads, load.connections),
            Driver::H2load => format!(
                "{} threads, {} connections × {} streams",
                load.threads,
                load.connections,
                h2load::STREAMS
            ),
        }
    }
}

/// How many requests a run keeps in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concurrency {
    /// 2 client threads, 64 connections: throughput and latency under load.
    Loaded,
    /// 1 thread, 1 connection, a request at a time: the latency of one
    /// request on an idle path.
    Single,
}

impl Concurrency {
    /// Both, in the order they are measured in a round.
    pub const ALL: [Concurrency; 2] = [Concurrency::Loaded, Concurrency::Single];

    /// wrk's threads and connections.
    pub fn load(self) -> Load {
        match self {
            Concurrency::Loaded => Load {
                threads: 2,
                connections: 64,
            },
            Concurrency::Single => Load {
                threads: 1,
                connections: 1,
            },
        }
    }

    /// How long its runs take, given the loaded runs' length.
    pub fn seconds(self, loaded: u32) -> u32 {
        match self {
            Concurrency::Loaded => loaded,
            Concurrency::Single => (loaded / 2).max(1),
        }
    }
}

/// One run of one driver against one target.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The round (0-based) it belongs to.
    pub round: usize,
    /// The driver.
    pub driver: Driver,
    /// Its concurrency.
    pub concurrency: Concurrency,
    /// Where the upstream was.
    pub topology: Topology,
    /// What was loaded.
    pub target: Target,
    /// What the driver measured.
    pub run: LoadRun,
    /// CPU seconds of the proxy's processes (warren: `warren serve` but
    /// its mesh device's thread) over the run; `None` for the direct runs.
    pub proxy_cpu: Option<f64>,
    /// CPU seconds of the control plane's mesh device thread over the run:
    /// the tunnel every proxy's mesh traffic goes through.
    pub tunnel_cpu: f64,
    /// Access log lines the proxy wrote over the run.
    pub log_lines: Option<u64>,
}

/// What the section measured.
#[derive(Clone, Debug)]
pub struct ProxyResults {
    /// When, and how loaded the machine was.
    pub circumstances: Circumstances,
    /// `(program, version)` of the proxies and clients.
    pub versions: Vec<(String, String)>,
    /// Rounds made.
    pub rounds: usize,
    /// Length of a loaded run, seconds.
    pub seconds: u32,
    /// Threads of `warren serve` by name when the rounds ended, e.g.
    /// `warren ×1, warren-device ×1, …`.
    pub warren_threads: String,
    /// Every run, in the order made.
    pub samples: Vec<Sample>,
}

/// What the section needs to know.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Rounds (each target once per round, per concurrency and topology).
    pub rounds: usize,
    /// Length of a loaded run, seconds.
    pub seconds: u32,
}

/// The page an upstream of `topology` serves: its name in a comment, then
/// padding to [`PAGE_BYTES`].
fn page(topology: Topology) -> Vec<u8> {
    let mut page = format!(
        "<!doctype html><!-- warren-bench upstream {} -->\n<p>",
        topology.name()
    )
    .into_bytes();
    let tail = b"</p>\n";
    while page.len() + tail.len() < PAGE_BYTES {
        page.push(b'x');
    }
    page.extend_from_slice(tail);
    page
}

/// The marker of `topology`'s page.
fn marker(topology: Topology) -> String {
    format!("warren-bench upstream {} -->", topology.name())
}

/// Builds the cluster, starts the proxies and measures.
pub fn run(plan: Plan) -> Result<ProxyResults> {
    let circumstances = Circumstances::now();
    let versions = versions();
    eprintln!("proxy: building the cluster (control plane with its own Docker daemon, vm)");
    let mut control_docker = None;
    let mut tls = None;
    let cluster =
        Cluster::on_control_host_logging("bench-proxy", WARREN_LOG, |lab, _, host, _| {
            tls = Some(Tls::write(&lab.subdir("tls")?)?);
            let dockerd = start_dockerd_with(lab, &host.ns, DockerNet::Bridge)?;
            import_nginx_image(&dockerd, IMAGE, &page(Topology::Local))?;
            let args = vec![
                "--docker-host".to_owned(),
                dockerd.host(),
                // Either listen flag replaces both defaults: both given.
                "--http-listen".to_owned(),
                format!("0.0.0.0:{}", ProxyKind::Warren.port()),
                "--https-listen".to_owned(),
                format!("0.0.0.0:{}", ProxyKind::Warren.tls_port()),
                // As many workers as the other proxies have.
                "--proxy-workers".to_owned(),
                crate::proxy_conf::WORKERS.to_string(),
            ];
            control_docker = Some(dockerd);
            Ok(args)
        })?;
    let _control_docker = control_docker.context("the control host's Docker daemon")?;
    let tls = tls.context("the certificate")?;
    let mut vm = DockerNode::in_vpc(&cluster, Topology::Mesh.node())?;
    import_nginx_image(&vm.dockerd, IMAGE, &page(Topology::Mesh))?;
    vm.join(&cluster, Some(&cluster.token()?))?;
    let upstreams = deploy(&cluster).with_context(|| vm.agent_log_tail(20))?;
    for topology in Topology::ALL {
        let (cert, key) = (
            tls.cert.display().to_string(),
            tls.key.display().to_string(),
        );
        cluster.admin(&[
            "cert",
            "set",
            topology.tls_host(),
            "--cert",
            &cert,
            "--key",
            &key,
        ])?;
    }
    eprintln!(
        "proxy: upstreams {}",
        upstreams
            .0
            .iter()
            .map(|(t, a)| format!("{} {a}", t.name()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let dir = cluster.lab.subdir("proxies")?;
    let script = dir.join("report.lua");
    std::fs::write(&script, wrk::SCRIPT).context("write wrk's script")?;
    let mut started = Vec::new();
    for kind in [ProxyKind::Nginx, ProxyKind::Haproxy, ProxyKind::Caddy] {
        started.push(proxy_conf::start(
            &cluster.lab,
            &cluster.control.ns,
            &dir,
            kind,
            Ports::of(kind),
            &tls,
            &upstreams,
        )?);
    }
    let serve_pid = cluster.serve.pid();
    cpu::check_runs(serve_pid, &warren_netns_tests::wg::warren_bin()?)?;
    let mut bench = Bench {
        cluster: &cluster,
        script,
        h2load_log: dir.join("h2load.log"),
        upstreams,
        warren_log: LogLines::new(
            cluster.serve.log_path().to_path_buf(),
            Some("warren::access"),
        ),
        proxies: started,
        pids: Vec::new(),
        serve_pid,
    };
    bench.ready()?;
    bench.warm_up()?;
    let samples = bench.rounds(plan)?;
    let warren_threads = thread_summary(serve_pid)?;
    for p in &bench.proxies {
        if !p.proc.is_running() {
            bail!(
                "{} died during the runs: {}",
                p.kind.name(),
                p.proc.describe()
            );
        }
    }
    Ok(ProxyResults {
        circumstances: circumstances.ended(),
        versions,
        rounds: plan.rounds,
        seconds: plan.seconds,
        warren_threads,
        samples,
    })
}

/// Deploys the two upstream services, each pinned to its node, and returns
/// their replicas' addresses.
fn deploy(cluster: &Cluster) -> Result<Upstreams> {
    for topology in Topology::ALL {
        let constraint = format!("node=={}", topology.node());
        cluster.admin(&[
            "deploy",
            topology.name(),
            "--image",
            IMAGE,
            "--port",
            "8080",
            "--host",
            topology.host(),
            "--host",
            topology.tls_host(),
            "--constraint",
            &constraint,
            "--health-http",
            "/",
            "--wait",
        ])?;
    }
    let replicas = cluster.replicas()?;
    let mut upstreams = Vec::new();
    for topology in Topology::ALL {
        let replica = replicas
            .iter()
            .find(|r| r["service"] == topology.name())
            .with_context(|| format!("no replica of {} in warren ps", topology.name()))?;
        if replica["node"] != topology.node() {
            bail!(
                "{} runs on {}, not {}",
                topology.name(),
                replica["node"],
                topology.node()
            );
        }
        let addr: SocketAddr = replica["addresses"][0]
            .as_str()
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("no address in {replica}"))?;
        upstreams.push((topology, addr));
    }
    Ok(Upstreams(upstreams))
}

/// The versions the report names.
fn versions() -> Vec<(String, String)> {
    let line =
        |program: &str, args: &[&str]| first_line(program, args).unwrap_or_else(|_| "?".to_owned());
    // nginx prints its version on stderr.
    let nginx = std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned());
    let haproxy = line("haproxy", &["-v"]);
    let haproxy = haproxy.split(" - ").next().unwrap_or(&haproxy).to_owned();
    vec![
        ("nginx".to_owned(), nginx),
        ("haproxy".to_owned(), haproxy),
        (
            "caddy".to_owned(),
            format!("caddy {}", line("caddy", &["version"])),
        ),
        ("wrk".to_owned(), wrk::version()),
        ("h2load".to_owned(), h2load::version()),
    ]
}

/// The running targets and how to read them.
struct Bench<'a> {
    cluster: &'a Cluster,
    script: PathBuf,
    /// h2load's per-request log of the last run.
    h2load_log: PathBuf,
    upstreams: Upstreams,
    warren_log: LogLines,
    proxies: Vec<Started>,
    /// The processes of each of `proxies` (nginx's master and workers).
    pids: Vec<Vec<u32>>,
    serve_pid: u32,
}

impl Bench<'_> {
    /// Where `driver`'s load on `target` goes for `topology`, and the host
    /// it asks for (`Host`, or the URI's for h2load).
    fn endpoint(
        &self,
        driver: Driver,
        target: Target,
        topology: Topology,
    ) -> Result<(SocketAddr, Option<&'static str>)> {
        Ok(match (driver, target) {
            (Driver::H2load, Target::Direct) => bail!("h2load has no direct runs"),
            (_, Target::Direct) => (self.upstreams.of(topology)?, None),
            (Driver::Wrk, Target::Proxy(kind)) => (
                SocketAddr::from((self.cluster.control.ip, kind.port())),
                Some(topology.host()),
            ),
            (Driver::H2load, Target::Proxy(kind)) => (
                SocketAddr::from((self.cluster.control.ip, kind.tls_port())),
                Some(topology.tls_host()),
            ),
        })
    }

    /// One run of `driver` against `target` for `topology`.
    fn load(
        &self,
        driver: Driver,
        target: Target,
        topology: Topology,
        concurrency: Concurrency,
        duration: Duration,
    ) -> Result<LoadRun> {
        let (addr, host) = self.endpoint(driver, target, topology)?;
        let ns = &self.cluster.control.ns;
        match driver {
            Driver::Wrk => wrk::run(ns, &self.script, addr, host, concurrency.load(), duration),
            Driver::H2load => h2load::run(
                ns,
                &self.h2load_log,
                addr,
                host.context("h2load needs a host name")?,
                concurrency.load(),
                h2load::Length::Duration(duration),
            ),
        }
    }

    /// Waits until every target answers each topology's page, and until
    /// nginx has its workers.
    fn ready(&mut self) -> Result<()> {
        for target in Target::ALL {
            for topology in Topology::ALL {
                let (addr, host) = self.endpoint(Driver::Wrk, target, topology)?;
                let host = host.map_or_else(|| addr.to_string(), str::to_owned);
                let want = marker(topology);
                let ns = &self.cluster.control.ns;
                wait_for_value(
                    &format!("{} to answer for {}", target.name(), topology.name()),
                    READY,
                    || {
                        let answer = http_get_host(ns, addr, &host, "/").ok()?;
                        let ok = answer.split(' ').nth(1) == Some("200");
                        (ok && answer.contains(&want)).then_some(())
                    },
                )
                .with_context(|| self.describe(target))?;
            }
        }
        // HTTPS: one HTTP/2 request answered (which checks ALPN and reads
        // h2load's output as the runs will).
        for &target in Driver::H2load.targets() {
            for topology in Topology::ALL {
                let (addr, host) = self.endpoint(Driver::H2load, target, topology)?;
                let host = host.context("h2load needs a host name")?;
                let ns = &self.cluster.control.ns;
                let mut last = None;
                let answered = wait_for_value(
                    &format!("{} to answer HTTP/2 for {}", target.name(), topology.name()),
                    READY,
                    || {
                        let one = wrk::Load {
                            threads: 1,
                            connections: 1,
                        };
                        let run = h2load::run(
                            ns,
                            &self.h2load_log,
                            addr,
                            host,
                            one,
                            h2load::Length::Requests(1),
                        );
                        match run {
                            Ok(r) if r.requests == 1 => Some(()),
                            other => {
                                last = Some(format!("{other:?}"));
                                None
                            }
                        }
                    },
                );
                answered.with_context(|| {
                    format!(
                        "last: {}\n{}",
                        last.unwrap_or_default(),
                        self.describe(target)
                    )
                })?;
            }
        }
        let mut pids = Vec::new();
        for p in &self.proxies {
            let want = if p.kind == ProxyKind::Nginx {
                1 + proxy_conf::WORKERS as usize
            } else {
                1
            };
            let found = wait_for_value(
                &format!("{} to have {want} processes", p.kind.name()),
                READY,
                || {
                    let found = proxy_conf::with_children(p.proc.pid());
                    (found.len() == want).then_some(found)
                },
            )?;
            pids.push(found);
        }
        self.pids = pids;
        Ok(())
    }

    /// What to say of a target that failed.
    fn describe(&self, target: Target) -> String {
        match target {
            Target::Direct => String::new(),
            Target::Proxy(ProxyKind::Warren) => self.cluster.serve.describe(),
            Target::Proxy(kind) => self
                .proxies
                .iter()
                .find(|p| p.kind == kind)
                .map(|p| p.proc.describe())
                .unwrap_or_default(),
        }
    }

    /// One short unrecorded run per target and topology.
    fn warm_up(&mut self) -> Result<()> {
        eprintln!("proxy: warming up");
        for driver in Driver::ALL {
            for topology in Topology::ALL {
                for &target in driver.targets() {
                    check_interrupt()?;
                    self.load(driver, target, topology, Concurrency::Loaded, WARM_UP)
                        .with_context(|| format!("{driver:?}: {}", self.describe(target)))?;
                }
            }
        }
        // The warm-up's log lines count for no run.
        self.warren_log.take()?;
        for p in &mut self.proxies {
            p.log.take()?;
        }
        Ok(())
    }

    /// Every round: for each concurrency and topology, every target in
    /// turn (starting one further each round, so no target is always
    /// first).
    fn rounds(&mut self, plan: Plan) -> Result<Vec<Sample>> {
        let mut samples = Vec::new();
        let per_round: usize = Driver::ALL
            .iter()
            .map(|d| d.concurrencies().len() * Topology::ALL.len() * d.targets().len())
            .sum();
        let total = plan.rounds * per_round;
        for round in 0..plan.rounds {
            for driver in Driver::ALL {
                let targets = driver.targets();
                for &concurrency in driver.concurrencies() {
                    for topology in Topology::ALL {
                        for i in 0..targets.len() {
                            check_interrupt()?;
                            let target = targets[(i + round) % targets.len()];
                            let seconds = concurrency.seconds(driver.seconds(plan.seconds));
                            let sample = self
                                .once(round, driver, concurrency, topology, target, seconds)
                                .with_context(|| {
                                    format!(
                                        "round {}: {:?} {} {} ({:?})\n{}",
                                        round + 1,
                                        driver,
                                        target.name(),
                                        topology.name(),
                                        concurrency,
                                        self.describe(target)
                                    )
                                })?;
                            samples.push(sample);
                            eprintln!(
                                "[{}/{total}] {}",
                                samples.len(),
                                progress_line(&samples[samples.len() - 1])
                            );
                        }
                    }
                }
            }
        }
        Ok(samples)
    }

    /// One run, with the CPU time and log lines around it.
    fn once(
        &mut self,
        round: usize,
        driver: Driver,
        concurrency: Concurrency,
        topology: Topology,
        target: Target,
        seconds: u32,
    ) -> Result<Sample> {
        self.log_lines(target)?;
        let before = self.cpu(target)?;
        let started = Instant::now();
        let run = self.load(
            driver,
            target,
            topology,
            concurrency,
            Duration::from_secs(u64::from(seconds)),
        )?;
        let after = self.cpu(target)?;
        let log_lines = self.log_lines(target)?;
        if run.requests == 0 {
            bail!(
                "no request completed in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Ok(Sample {
            round,
            driver,
            concurrency,
            topology,
            target,
            run,
            proxy_cpu: before.0.zip(after.0).map(|(b, a)| a - b),
            tunnel_cpu: after.1 - before.1,
            log_lines,
        })
    }

    /// CPU seconds so far: of the target's proxy (none for direct runs),
    /// and of the control plane's mesh device thread.
    fn cpu(&self, target: Target) -> Result<(Option<f64>, f64)> {
        let hz = cpu::clock_ticks()?;
        let threads = cpu::thread_ticks(self.serve_pid)?;
        let device: u64 = threads
            .iter()
            .filter(|(name, _)| name == DEVICE_THREAD)
            .map(|(_, t)| t)
            .sum();
        if !threads.iter().any(|(name, _)| name == DEVICE_THREAD) {
            bail!("warren serve has no {DEVICE_THREAD} thread: the tunnel's CPU time is unknown");
        }
        let proxy = match target {
            Target::Direct => None,
            Target::Proxy(ProxyKind::Warren) => {
                let all: u64 = threads.iter().map(|(_, t)| t).sum();
                Some((all - device) as f64 / hz)
            }
            Target::Proxy(kind) => {
                let at = self
                    .proxies
                    .iter()
                    .position(|p| p.kind == kind)
                    .context("a proxy that was not started")?;
                Some(cpu::cpu_seconds(&self.pids[at])?)
            }
        };
        Ok((proxy, device as f64 / hz))
    }

    /// The access log lines `target` wrote since the last call.
    fn log_lines(&mut self, target: Target) -> Result<Option<u64>> {
        Ok(match target {
            Target::Direct => None,
            Target::Proxy(ProxyKind::Warren) => Some(self.warren_log.take()?),
            Target::Proxy(kind) => match self.proxies.iter_mut().find(|p| p.kind == kind) {
                Some(p) => Some(p.log.take()?),
                None => None,
            },
        })
    }
}

fn progress_line(s: &Sample) -> String {
    format!(
        "{:?} {} {} {}c: {:.0} req/s, p50 {:.0} / p99 {:.0} / p99.9 {:.0} µs, {} errors{}",
        s.driver,
        s.target.name(),
        s.topology.name(),
        s.concurrency.load().connections,
        s.run.rps(),
        s.run.p50_us,
        s.run.p99_us,
        s.run.p999_us,
        s.run.errors,
        s.proxy_cpu
            .map_or_else(String::new, |c| format!(", {c:.2} CPU s")),
    )
}

/// `warren serve`'s threads by name: `name ×count`, joined.
fn thread_summary(pid: u32) -> Result<String> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for (name, _) in cpu::thread_ticks(pid)? {
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name, 1)),
        }
    }
    Ok(counts
        .iter()
        .map(|(n, c)| format!("`{n}` ×{c}"))
        .collect::<Vec<_>>()
        .join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_a_kib_and_name_their_topology() {
        for t in Topology::ALL {
            let p = page(t);
            assert_eq!(p.len(), PAGE_BYTES);
            assert!(String::from_utf8_lossy(&p).contains(&marker(t)));
        }
        assert!(!String::from_utf8_lossy(&page(Topology::Local)).contains(&marker(Topology::Mesh)));
    }
}
