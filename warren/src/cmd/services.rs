//! `warren deploy`, `services`, `ps`, `scale` and `rm`: services and their
//! replicas, through the admin API.

use super::api::{ApiArgs, Client};
use super::fmt;
use super::table::{Align::Left, Align::Right, Table};
use super::Exit;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warren_control::api::workloads::Deployed;
use warren_control::cluster::{ReplicaView, ServiceView};
use warren_proto::assignment::{Health, ReplicaState};
use warren_proto::service::{parse_cpu, parse_size};
use warren_proto::{
    Constraint, HealthCheck, Probe, RestartPolicy, ServiceSpec, TlsMode, UpdateOrder, UpdatePolicy,
};

/// Arguments of `warren deploy`.
#[derive(Args)]
#[command(
    about = "Deploy a service: its replicas placed across the nodes",
    long_about = "Deploy a service: NAME runs IMAGE as --replicas replicas, placed by the control \
        plane on the nodes that run replicas (`warren join --docker-host`), direct and relayed \
        alike, spread across them. Each --port is published on a host port of the replica's node \
        (from `warren serve --host-ports`), on the node's mesh address only: `warren ps` shows \
        where each replica answers.\n\n\
        Deploying an existing NAME with the same spec changes nothing but the replica count; a \
        changed spec is a new generation, rolled out replica by replica. A spec that breaks a \
        rule, or replicas that do not fit, are refused with one line (exit status 4) and change \
        nothing. --wait follows the deploy until every replica is healthy, or exits 5 with the \
        reason.",
    after_help = "Examples:\n  \
        warren deploy web --image local/busybox:1 --replicas 3 --port 8080 --health-http / -- httpd -f -p 8080 -h /www\n  \
        warren deploy db --image postgres:16 --memory 1G --constraint zone==vps --env-file db.env"
)]
pub struct DeployArgs {
    /// The service's name (a DNS label).
    name: String,
    /// The image to run; it must be on the nodes or pullable by them.
    #[arg(long)]
    image: String,
    /// How many replicas (0 or more).
    #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
    replicas: i64,
    /// A container port to publish (repeatable).
    #[arg(
        long = "port",
        value_name = "CONTAINER_PORT",
        allow_negative_numbers = true
    )]
    ports: Vec<i64>,
    /// A host name the proxy routes to the service's first --port
    /// (repeatable); `*.example.com` stands for any one label.
    #[arg(long = "host", value_name = "HOSTNAME")]
    hosts: Vec<String>,
    /// Route only paths under this prefix, for each --host (`/api` takes
    /// `/api` and `/api/…`, not `/apix`); the longest prefix wins.
    #[arg(long, value_name = "PREFIX")]
    path: Option<String>,
    /// Take the --path prefix off before passing a request on (it is passed
    /// on unchanged otherwise).
    #[arg(long)]
    strip_prefix: bool,
    /// Keep each client on one replica while it stays healthy, by a cookie.
    #[arg(long)]
    sticky: bool,
    /// `auto`: the proxy gets certificates for the --host names by ACME
    /// when `warren serve` has an ACME directory (not for wildcards, which
    /// HTTP-01 cannot prove; a `warren cert set` certificate wins); `off`: never.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    tls: TlsMode,
    /// Speak HTTP/2 without TLS (h2c, prior knowledge) to the replicas, as
    /// gRPC servers want; clients reach it over HTTPS with HTTP/2.
    #[arg(long)]
    upstream_h2: bool,
    /// An environment variable (repeatable).
    #[arg(long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// A file of K=V lines (blank lines and # comments skipped).
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// CPU reserved and allowed per replica, in cores (0.5, 2, 250m).
    #[arg(long, value_name = "CORES")]
    cpu: Option<String>,
    /// Memory reserved and allowed per replica (256M, 1G).
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,
    /// Healthy when `GET PATH` on the first port answers 2xx or 3xx.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["health_tcp", "health_cmd"])]
    health_http: Option<String>,
    /// Healthy when the first port accepts a TCP connection.
    #[arg(long, conflicts_with = "health_cmd")]
    health_tcp: bool,
    /// Healthy when this command (run in the container by sh -c) exits 0.
    #[arg(long, value_name = "CMD")]
    health_cmd: Option<String>,
    /// Between health checks.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    health_interval: Duration,
    /// How long one check may take.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    health_timeout: Duration,
    /// Failed checks in a row that make a replica unhealthy.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        allow_negative_numbers = true
    )]
    health_retries: u32,
    /// How long after a start failures do not count.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    health_start_period: Duration,
    /// Where replicas may run: KEY==VALUE or KEY!=VALUE on node labels
    /// (`node`, `arch`, and those of `warren node label`) (repeatable).
    #[arg(long = "constraint", value_name = "KEY==VALUE|KEY!=VALUE")]
    constraints: Vec<String>,
    /// When a replica's container is restarted: always, on-failure or never.
    #[arg(long, value_name = "POLICY", default_value = "always")]
    restart: String,
    /// How long a new generation has to roll out (every replica healthy):
    /// past it, it is rolled back to the last generation that completed
    /// (see `warren history`).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    healthy_deadline: Duration,
    /// How many replicas a rollout replaces at once (with start-first, new
    /// ones start beside the old ones that still serve; each old one goes
    /// when a new one is healthy).
    #[arg(long, value_name = "N", default_value_t = 1)]
    update_parallelism: u32,
    /// How long a rollout waits after replacing one batch of replicas
    /// before it starts the next.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = humantime::parse_duration)]
    update_delay: Duration,
    /// start-first: a new replica starts and turns healthy before an old
    /// one stops (the service never drops below its replica count, and
    /// needs room for one batch more); stop-first: an old replica stops
    /// before its replacement starts (for services that cannot run twice
    /// at once).
    #[arg(long, value_name = "ORDER", default_value = "start-first")]
    update_order: UpdateOrder,
    /// How long a new replica's health checks must pass before it counts
    /// as healthy, takes traffic and lets the rollout go on.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    min_healthy_time: Duration,
    /// How long a replica that goes has: the proxy first lets the requests
    /// in flight to it finish (for up to this long), then its container
    /// gets SIGTERM and, this long after, SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    stop_grace: Duration,
    /// Do not roll a generation back when it misses its healthy deadline:
    /// its rollout is marked failed and stops where it is (the older
    /// replicas that still serve keep serving).
    #[arg(long, conflicts_with = "auto_rollback")]
    no_auto_rollback: bool,
    /// Roll a generation that misses its healthy deadline back to the last
    /// one that completed (the default; for scripts that say so).
    #[arg(long)]
    auto_rollback: bool,
    /// Wait until every replica is healthy and those of older generations
    /// are gone: the rollout is done (exit 5 with the reason if one fails).
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    wait_timeout: Duration,
    /// The command and its arguments (after `--`; default: the image's).
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `warren services`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  warren services\n  warren services --json | jq '.services[] | select(.healthy < .desired)'"
)]
pub struct ServicesArgs {
    /// Print JSON: {"services":[{"name","image","generation","desired","running","healthy","ports"}]}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `warren ps`.
#[derive(Args)]
#[command(after_help = "Examples:\n  warren ps\n  warren ps web --json")]
pub struct PsArgs {
    /// Only this service's replicas.
    service: Option<String>,
    /// Print JSON: {"replicas":[{"id","service","generation","node","mode","addresses","state","health","restarts","cpu_millis","memory","placed"}]}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `warren scale`.
#[derive(Args)]
pub struct ScaleArgs {
    /// The service.
    name: String,
    /// The replica count wanted (0 or more).
    #[arg(allow_negative_numbers = true)]
    replicas: i64,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `warren rm`.
#[derive(Args)]
pub struct RmArgs {
    /// The service to remove, with its replicas.
    name: String,
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs `warren deploy`.
pub fn deploy(args: DeployArgs) -> Result<()> {
    // Every mistake in the flags is input refused: exit 4.
    let spec = spec_of(&args).map_err(|error| Exit::new(4, format!("{error:#}")))?;
    let client = Client::new(&args.api)?;
    let deployed: Deployed =
        client.call("POST", "/v1/services", Some(serde_json::to_value(&spec)?))?;
    for replica in &deployed.replicas {
        eprintln!("{}  on {}", replica.id, replica.node);
    }
    eprintln!(
        "deployed {} (generation {}, {} replicas)",
        deployed.service,
        deployed.generation,
        deployed.replicas.len()
    );
    if args.wait {
        wait_healthy(&client, &spec.name, args.wait_timeout)?;
    }
    Ok(())
}

/// The spec the flags describe, checked here so a mistake is named before
/// anything is sent.
fn spec_of(args: &DeployArgs) -> Result<ServiceSpec> {
    let mut env = Vec::new();
    if let Some(file) = &args.env_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            env.push(pair(line)?);
        }
    }
    for item in &args.env {
        env.push(pair(item)?);
    }
    let probe = match (&args.health_http, args.health_tcp, &args.health_cmd) {
        (Some(path), _, _) => Some(Probe::Http { path: path.clone() }),
        (None, true, _) => Some(Probe::Tcp),
        (None, false, Some(cmd)) => Some(Probe::Command {
            argv: vec!["sh".to_owned(), "-c".to_owned(), cmd.clone()],
        }),
        (None, false, None) => None,
    };
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let spec = ServiceSpec {
        name: args.name.clone(),
        image: args.image.clone(),
        replicas: replica_count(args.replicas)?,
        ports: args
            .ports
            .iter()
            .map(|port| container_port(*port))
            .collect::<Result<_, _>>()?,
        hosts: args.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        path: args.path.clone(),
        strip_prefix: args.strip_prefix,
        sticky: args.sticky,
        tls: args.tls,
        upstream_h2: args.upstream_h2,
        env,
        command: args.command.clone(),
        cpu_millis: match &args.cpu {
            Some(cpu) => Some(parse_cpu(cpu).with_context(|| {
                format!("--cpu {cpu:?} is not a number of cores (0.5, 2, 250m)")
            })?),
            None => None,
        },
        memory: match &args.memory {
            Some(size) => Some(
                parse_size(size)
                    .with_context(|| format!("--memory {size:?} is not a size (256M, 1G)"))?,
            ),
            None => None,
        },
        health: probe.map(|probe| HealthCheck {
            probe,
            interval_ms: millis(args.health_interval),
            timeout_ms: millis(args.health_timeout),
            retries: args.health_retries,
            start_period_ms: millis(args.health_start_period),
        }),
        constraints: args
            .constraints
            .iter()
            .map(|c| c.parse::<Constraint>())
            .collect::<Result<_, _>>()?,
        restart: args.restart.parse::<RestartPolicy>()?,
        update: UpdatePolicy {
            healthy_deadline_secs: u32::try_from(args.healthy_deadline.as_secs())
                .unwrap_or(u32::MAX),
            auto_rollback: !args.no_auto_rollback,
            parallelism: args.update_parallelism,
            delay_ms: millis(args.update_delay),
            order: args.update_order,
            min_healthy_ms: millis(args.min_healthy_time),
        },
        stop_grace_ms: millis(args.stop_grace),
    };
    spec.validate()?;
    Ok(spec)
}

fn pair(item: &str) -> Result<(String, String)> {
    match item.split_once('=') {
        Some((key, value)) => Ok((key.to_owned(), value.to_owned())),
        None => bail!("{item:?} is not K=V"),
    }
}

/// Follows the service until every replica of its generation is healthy
/// and none of an older one is left: its rollout is done.
pub(super) fn wait_healthy(client: &Client, name: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let services: Value = client.call("GET", "/v1/services", None)?;
        let services: Vec<ServiceView> = serde_json::from_value(services["services"].clone())?;
        let service = services
            .into_iter()
            .find(|s| s.name == name)
            .with_context(|| format!("the service {name} went away"))?;
        let replicas: Value = client.call("GET", "/v1/replicas", None)?;
        let replicas: Vec<ReplicaView> = serde_json::from_value(replicas["replicas"].clone())?;
        let mine: Vec<&ReplicaView> = replicas
            .iter()
            .filter(|r| r.service == name && r.generation == service.generation)
            .collect();
        if let Some(failed) = mine.iter().find_map(|r| match &r.state {
            ReplicaState::Failed { reason } => Some((r.id.clone(), r.node.clone(), reason.clone())),
            _ => None,
        }) {
            return Err(super::Exit::new(
                5,
                format!(
                    "replica {} on {} cannot start: {}",
                    failed.0, failed.1, failed.2
                ),
            )
            .into());
        }
        let count = |state: ReplicaState| mine.iter().filter(|r| r.state == state).count();
        let pulling = match count(ReplicaState::Pulling) {
            0 => String::new(),
            n => format!(", pulling {n}"),
        };
        // Replicas of older generations go once the new ones serve (and
        // their requests in flight have finished).
        let older = replicas
            .iter()
            .filter(|r| r.service == name && r.generation != service.generation)
            .count();
        let going = match older {
            0 => String::new(),
            n => format!(", {n} older still going"),
        };
        let progress = format!(
            "{}: placed {}{pulling}, running {}, healthy {}/{}{going}",
            name,
            mine.len(),
            count(ReplicaState::Running),
            service.healthy,
            service.desired
        );
        if progress != last {
            eprintln!("{progress}");
            last = progress;
        }
        if service.healthy >= service.desired && mine.len() as u32 >= service.desired && older == 0
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(super::Exit::new(
                5,
                format!(
                    "{name} is not healthy after {}",
                    humantime::format_duration(timeout)
                ),
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs `warren services`.
pub fn services(args: ServicesArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let listed: Value = client.call("GET", "/v1/services", None)?;
    if args.json {
        println!("{listed}");
        return Ok(());
    }
    let services: Vec<ServiceView> = serde_json::from_value(listed["services"].clone())?;
    if services.is_empty() {
        println!("no services yet (deploy one with `warren deploy NAME --image IMAGE`)");
        return Ok(());
    }
    let mut table = Table::new([
        ("NAME", Left),
        ("IMAGE", Left),
        ("GEN", Right),
        ("DESIRED", Right),
        ("RUNNING", Right),
        ("HEALTHY", Right),
        ("PORTS", Left),
    ]);
    for s in &services {
        let ports: Vec<String> = s.ports.iter().map(u16::to_string).collect();
        table.row([
            &s.name,
            &s.image,
            &s.generation,
            &s.desired,
            &s.running,
            &s.healthy,
            &fmt::or_dash((!ports.is_empty()).then(|| ports.join(","))),
        ]);
    }
    print!("{table}");
    Ok(())
}

/// Runs `warren ps`.
pub fn ps(args: PsArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let listed: Value = client.call("GET", "/v1/replicas", None)?;
    let mut replicas: Vec<ReplicaView> = serde_json::from_value(listed["replicas"].clone())?;
    if let Some(service) = &args.service {
        replicas.retain(|r| &r.service == service);
    }
    if args.json {
        println!("{}", json!({ "replicas": replicas }));
        return Ok(());
    }
    if replicas.is_empty() {
        println!("no replicas");
        return Ok(());
    }
    let now = warren_os::unix_now();
    let mut table = Table::new([
        ("ID", Left),
        ("SERVICE", Left),
        ("NODE", Left),
        ("MODE", Left),
        ("ADDRESS", Left),
        ("STATE", Left),
        ("HEALTH", Left),
        ("RESTARTS", Right),
        ("CPU", Right),
        ("MEMORY", Right),
        ("AGE", Right),
    ]);
    for r in &replicas {
        let state = match &r.state {
            ReplicaState::Running if r.draining => "draining".to_owned(),
            ReplicaState::Pending => "pending".to_owned(),
            ReplicaState::Pulling => "pulling".to_owned(),
            ReplicaState::Running => "running".to_owned(),
            ReplicaState::Exited { code } => format!("exited ({code})"),
            ReplicaState::Failed { .. } => "failed".to_owned(),
            _ => "unknown".to_owned(),
        };
        let health = match r.health {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        };
        table.row([
            &r.id,
            &r.service,
            &r.node,
            &fmt::or_dash(r.mode),
            &fmt::or_dash((!r.addresses.is_empty()).then(|| r.addresses.join(","))),
            &state,
            &health,
            &r.restarts,
            &fmt::or_dash(r.cpu_millis.map(|m| format!("{:.2}", m as f64 / 1000.0))),
            &fmt::or_dash(r.memory.map(fmt::bytes)),
            &fmt::relative(r.placed, now),
        ]);
    }
    print!("{table}");
    for r in &replicas {
        if let ReplicaState::Failed { reason } = &r.state {
            println!("{}: {reason}", r.id);
        }
    }
    Ok(())
}

/// Runs `warren scale`.
pub fn scale(args: ScaleArgs) -> Result<()> {
    let replicas = replica_count(args.replicas)?;
    let client = Client::new(&args.api)?;
    let path = format!("/v1/services/{}/replicas", args.name);
    let deployed: Deployed = client.call("PUT", &path, Some(json!({ "replicas": replicas })))?;
    eprintln!(
        "{} now has {} replicas",
        deployed.service,
        deployed.replicas.len()
    );
    Ok(())
}

/// Runs `warren rm`.
pub fn rm(args: RmArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let _: Value = client.call("DELETE", &format!("/v1/services/{}", args.name), None)?;
    eprintln!("removed {}", args.name);
    Ok(())
}

/// A replica count from the command line: 0 or more (exit 4 otherwise,
/// like every input the control plane refuses).
fn replica_count(count: i64) -> Result<u32, Exit> {
    u32::try_from(count)
        .map_err(|_| Exit::new(4, format!("{count} replicas: the count must be 0 or more")))
}

/// A container port from the command line (port 0 passes here: the spec
/// rules refuse it with their own line).
fn container_port(port: i64) -> Result<u16, Exit> {
    u16::try_from(port)
        .map_err(|_| Exit::new(4, format!("port {port} is not a port number (1-65535)")))
}
