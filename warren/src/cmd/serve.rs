//! `warren serve` (the control plane) and `warren control-key`.

use anyhow::Result;
use clap::Args;
use ip_network::Ipv4Network;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use warren_control::acme::AcmeOptions;
use warren_control::proxy::ProxyLimits;
use warren_control::{FailureDetection, Identity, ProxyOptions, ServeOptions};

/// The data directory when none is given.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/warren";

/// Arguments of `warren serve`.
#[derive(Args)]
#[command(
    about = "Run the control plane (admin API, state, embedded relay)",
    long_about = "Run the control plane in the foreground.\n\n\
        On first start it creates its identities in --data-dir: the admin credential the CLI \
        uses, the TLS certificate agents pin through their join token, its WireGuard key and \
        the key that signs relay tickets. Later starts reuse them. Its state (join tokens, \
        and nodes with their mesh addresses) is a SQLite database in the same directory: \
        nothing it acknowledged is lost if it is killed.\n\n\
        It serves the admin API for `warren token`, `warren nodes` and friends (on \
        127.0.0.1 by default: the admin credential is the only protection), and an embedded \
        relay that admits the nodes it issues tickets to, unless --no-relay.\n\n\
        With --docker-host, this host runs replicas too, on its own Docker daemon: it is the \
        node `control` to placement (mode `control`, at the control plane's mesh address), \
        in `warren nodes` and `warren ps`, with `warren logs` and `warren exec` for its \
        replicas, run by the same code as an agent's (`warren join --docker-host`). Without \
        it, nothing is placed here.\n\n\
        Stops on SIGINT or SIGTERM (replicas on this host keep running).",
    after_help = "Examples:\n  \
        warren serve                                       # everything on its defaults\n  \
        warren serve --advertise-address 203.0.113.7       # behind a NAT or on a cloud VM\n  \
        warren serve --no-relay --mesh-cidr 10.77.0.0/16\n  \
        warren serve --docker-host unix:///var/run/docker.sock   # run replicas here too\n  \
        warren token create --ttl 2h --uses 3              # then, on a worker: warren join --token …"
)]
pub struct ServeArgs {
    /// Where the identities and the state live.
    #[arg(long, value_name = "DIR", env = "WARREN_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The QUIC endpoint agents connect to.
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:7443")]
    listen: SocketAddr,
    /// The admin API the CLI talks to.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:7080")]
    api_listen: SocketAddr,
    /// The address agents reach this host at, put in join tokens (default:
    /// the --listen address, or this host's own addresses when it is a
    /// wildcard).
    #[arg(long, value_name = "IP")]
    advertise_address: Option<IpAddr>,
    /// The mesh network's address range; the control plane takes its first address.
    #[arg(long, value_name = "CIDR", default_value = "100.96.0.0/16")]
    mesh_cidr: Ipv4Network,
    /// The embedded relay's UDP address.
    #[arg(
        long,
        value_name = "IP:PORT",
        default_value = "0.0.0.0:3478",
        conflicts_with = "no_relay"
    )]
    relay_listen: SocketAddr,
    /// Run no embedded relay (relays run standalone: `warren relay`, trusting `warren control-key`).
    #[arg(long)]
    no_relay: bool,
    /// A standalone relay nodes should use (repeat for several; tried in order after the embedded one).
    #[arg(long = "relay", value_name = "IP:PORT")]
    relays: Vec<SocketAddr>,
    /// The control plane's WireGuard UDP port.
    #[arg(long, value_name = "PORT", default_value_t = 51820)]
    wg_port: u16,
    /// The control plane's mesh interface.
    #[arg(long, value_name = "NAME", default_value = "warren0")]
    iface: String,
    /// How long the relay tickets nodes get last; connected nodes get a fresh
    /// one every third of it, and a removed node's relay access ends with its
    /// last one on standalone relays (the embedded relay cuts it at once).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_ticket_lifetime)]
    ticket_lifetime: Duration,
    /// The host ports replicas publish on, on their node's mesh address.
    #[arg(long, value_name = "LOW-HIGH", default_value = "20000-29999", value_parser = parse_port_range)]
    host_ports: std::ops::RangeInclusive<u16>,
    /// This host's Docker daemon, as a unix socket (`unix:///var/run/docker.sock`):
    /// the control plane's host then runs replicas too, as the node `control`.
    #[arg(long, value_name = "URL")]
    docker_host: Option<String>,
    /// Where the ingress proxy takes plain HTTP (repeat for several;
    /// default: port 80 on every IPv4 and IPv6 address).
    #[arg(
        long = "http-listen",
        value_name = "IP:PORT",
        conflicts_with = "no_proxy"
    )]
    http_listen: Vec<SocketAddr>,
    /// Where the ingress proxy takes HTTPS, certificates chosen by SNI
    /// (repeat for several; default: port 443 on every IPv4 and IPv6
    /// address). Plain HTTP for a host with a certificate is redirected here.
    #[arg(
        long = "https-listen",
        value_name = "IP:PORT",
        conflicts_with = "no_proxy"
    )]
    https_listen: Vec<SocketAddr>,
    /// Run no ingress proxy (services' --host routes then go nowhere).
    #[arg(long)]
    no_proxy: bool,
    /// The ACME directory the proxy gets certificates from, by HTTP-01 on
    /// port 80, for the hosts of services with `--tls auto` (Let's Encrypt:
    /// https://acme-v02.api.letsencrypt.org/directory).
    #[arg(long, value_name = "URL", conflicts_with = "no_proxy")]
    acme_directory: Option<String>,
    /// The ACME account's contact address (expiry warnings go there).
    #[arg(long, value_name = "EMAIL", requires = "acme_directory")]
    acme_email: Option<String>,
    /// CA certificates (PEM) to trust for the ACME directory's HTTPS
    /// instead of the system's (a private or test CA).
    #[arg(long, value_name = "FILE", requires = "acme_directory")]
    acme_ca_file: Option<PathBuf>,
    /// How many threads the proxy runs on, each serving the connections it
    /// accepts (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    proxy_workers: Option<u16>,
    /// The largest request body the proxy passes on (413 beyond).
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_body_size)]
    proxy_max_body: u64,
    /// How often the control plane pings each agent's connection (the
    /// agent acknowledges every ping).
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    heartbeat: Duration,
    /// How long a node may be silent before it is offline: its connection
    /// is closed and the proxy stops routing to its replicas at once.
    /// Several heartbeats long; the node notices as well and reconnects.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    node_timeout: Duration,
    /// How long a node is offline before its replicas are placed again on
    /// other nodes (default: the node timeout). Longer for nodes on flaky
    /// links: routing stops at once, replacement waits. A restarted control
    /// plane gives nodes at least 10 s to reconnect before it replaces any.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    replace_after: Option<Duration>,
    /// Post every cluster event (what `warren events --json` prints) as
    /// JSON to this http:// or https:// URL (repeat for several; HTTPS
    /// trusts the system's CAs). Failures are logged; events stay in
    /// `warren events`.
    #[arg(long = "webhook", value_name = "URL", value_parser = parse_webhook)]
    webhooks: Vec<http::Uri>,
}

fn parse_webhook(text: &str) -> Result<http::Uri, String> {
    warren_control::webhooks::parse(text).map_err(|e| e.to_string())
}

/// A duration of at least 100 ms (`500ms`, `2s`, `1m`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration < Duration::from_millis(100) {
        return Err("at least 100ms".to_owned());
    }
    Ok(duration)
}

fn parse_body_size(text: &str) -> Result<u64, String> {
    warren_proto::service::parse_size(text)
        .ok_or_else(|| format!("{text:?} is not a size (10M, 1G)"))
}

fn parse_port_range(text: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let bad = || format!("{text:?} is not a port range LOW-HIGH (1024-65535)");
    let (low, high) = text.split_once('-').ok_or_else(bad)?;
    let (low, high): (u16, u16) = (
        low.parse().map_err(|_| bad())?,
        high.parse().map_err(|_| bad())?,
    );
    if low == 0 || low > high {
        return Err(bad());
    }
    Ok(low..=high)
}

/// A ticket lifetime: at least 3 s (renewals come every third), at most 30 days.
fn parse_ticket_lifetime(text: &str) -> Result<Duration, String> {
    let lifetime = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if lifetime < Duration::from_secs(3) || lifetime > Duration::from_secs(30 * 24 * 3600) {
        return Err("between 3s and 30d".to_owned());
    }
    Ok(lifetime)
}

/// Arguments of `warren control-key`.
#[derive(Args)]
pub struct ControlKeyArgs {
    /// The control plane's data directory.
    #[arg(long, value_name = "DIR", env = "WARREN_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

/// Runs `warren serve`.
pub fn run(args: ServeArgs) -> Result<()> {
    if args.heartbeat >= args.node_timeout {
        anyhow::bail!(
            "--heartbeat ({}) must be shorter than --node-timeout ({}): a node would be offline between two heartbeats",
            humantime::format_duration(args.heartbeat),
            humantime::format_duration(args.node_timeout)
        );
    }
    let failure = FailureDetection {
        heartbeat: args.heartbeat,
        node_timeout: args.node_timeout,
        replace_after: args.replace_after.unwrap_or(args.node_timeout),
    };
    let options = ServeOptions {
        data_dir: args.data_dir,
        listen: args.listen,
        api_listen: args.api_listen,
        advertise_address: args.advertise_address,
        relay_listen: (!args.no_relay).then_some(args.relay_listen),
        mesh_cidr: args.mesh_cidr,
        relays: args.relays,
        wg_port: args.wg_port,
        iface: args.iface,
        ticket_lifetime: args.ticket_lifetime,
        host_ports: args.host_ports,
        docker_host: args.docker_host,
        failure,
        webhooks: args.webhooks,
        proxy: (!args.no_proxy).then(|| {
            let default_listen = args.http_listen.is_empty() && args.https_listen.is_empty();
            let everywhere = |port: u16| {
                vec![
                    SocketAddr::from(([0, 0, 0, 0], port)),
                    SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)),
                ]
            };
            ProxyOptions {
                http_listen: if default_listen {
                    everywhere(80)
                } else {
                    args.http_listen
                },
                https_listen: if default_listen {
                    everywhere(443)
                } else {
                    args.https_listen
                },
                default_listen,
                limits: ProxyLimits {
                    max_body: args.proxy_max_body,
                    workers: args
                        .proxy_workers
                        .map_or_else(warren_control::proxy::workers, usize::from),
                    ..ProxyLimits::default()
                },
                acme: args.acme_directory.map(|directory| AcmeOptions {
                    directory,
                    email: args.acme_email,
                    ca_file: args.acme_ca_file,
                }),
            }
        }),
    };
    super::until_signal(|shutdown| {
        warren_control::serve(
            options,
            |started| {
                let control: Vec<String> = started
                    .control_addrs
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let relay = started
                    .relay
                    .map_or_else(|| "none".to_owned(), |addr| addr.to_string());
                let http: Vec<String> = started
                    .http
                    .iter()
                    .map(|a| format!("http://{a}"))
                    .chain(started.https.iter().map(|a| format!("https://{a}")))
                    .collect();
                let proxy = if http.is_empty() {
                    "none".to_owned()
                } else {
                    http.join(", ")
                };
                tracing::info!(
                    "control plane up: admin API http://{}, relay {relay}, proxy {proxy}, agents reach it at {}",
                    started.api,
                    control.join(", ")
                );
            },
            shutdown,
        )
    })
}

/// Prints the public key standalone relays need (`warren relay --control-key`).
pub fn control_key(args: ControlKeyArgs) -> Result<()> {
    use base64::Engine as _;
    let identity = Identity::load_or_create(&args.data_dir)?;
    println!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(identity.control_key().0)
    );
    Ok(())
}
