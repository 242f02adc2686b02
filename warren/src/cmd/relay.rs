//! `warren relay`: run a relay, and make the keys and tickets it checks.

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::{Args, Subcommand};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use warren_relay::{Server, ServerOptions};
use warren_relay_proto::{Config, ControlKey, RateLimit, SigningKey};
use warren_wire::PublicKey;

/// Arguments of `warren relay`: either a subcommand or the server's options.
#[derive(Args)]
#[command(
    about = "Run a relay, or make its keys and tickets",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    long_about = "Run a relay in the foreground, or make its keys and tickets.\n\n\
        A relay forwards WireGuard datagrams between nodes that cannot reach each other \
        directly. It never decrypts them (they stay end-to-end WireGuard) and forwards only \
        for nodes that registered with a ticket signed by the control key, proving that \
        they hold the ticket's WireGuard key and receive at the address they register from. \
        It also tells each node the address it sees the node's packets come from.\n\n\
        Serves on one UDP port until SIGINT or SIGTERM. The protocol is in docs/protocol.md, \
        deployment in docs/relay.md.",
    after_help = "Examples:\n  \
        warren relay keygen > control.key             # the control plane's signing key\n  \
        warren relay pubkey < control.key             # its public half, for relays\n  \
        warren relay --listen 0.0.0.0:3478 --control-key-file control.pub --metrics 127.0.0.1:9478\n  \
        warren relay ticket --signing-key-file control.key --node-key $(wg show wg0 public-key) --ttl 24h"
)]
pub struct RelayArgs {
    #[command(subcommand)]
    command: Option<RelayCommand>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// Keys and tickets.
#[derive(Subcommand)]
enum RelayCommand {
    /// Print a new random Ed25519 signing key (base64) for minting tickets.
    ///
    /// This is the control plane's secret: keep it off relays. Give relays
    /// its public half (`warren relay pubkey`).
    Keygen,
    /// Read a signing key (base64) on stdin and print its public key, the
    /// value of a relay's --control-key.
    Pubkey,
    /// Mint a ticket (base64) that lets a node register its key with relays.
    Ticket(TicketArgs),
}

/// Options of the relay server.
#[derive(Args)]
struct ServeArgs {
    /// UDP address to serve nodes on, e.g. 0.0.0.0:3478 or [::]:3478.
    #[arg(long, value_name = "IP:PORT", required = true)]
    listen: Option<SocketAddr>,
    /// The control plane's public key (base64, from `warren relay pubkey`):
    /// only tickets it signed are accepted.
    #[arg(
        long,
        value_name = "KEY",
        required_unless_present = "control_key_file",
        conflicts_with = "control_key_file"
    )]
    control_key: Option<String>,
    /// A file holding the control plane's public key (base64).
    #[arg(long, value_name = "FILE")]
    control_key_file: Option<PathBuf>,
    /// Serve Prometheus metrics on http://IP:PORT/metrics.
    #[arg(long, value_name = "IP:PORT")]
    metrics: Option<SocketAddr>,
    /// Most nodes registered at once; more are refused.
    #[arg(long, value_name = "N", default_value_t = Config::default().max_sessions)]
    max_nodes: usize,
    /// Each node's sustained rate through the relay, in bits per second,
    /// with an optional k/M/G suffix (e.g. 100M, 1G, 500kbit).
    #[arg(long, value_name = "BITS", default_value = "100M", value_parser = parse_bit_rate)]
    rate_limit: u64,
    /// Each node's sustained frames per second through the relay.
    #[arg(long, value_name = "N", default_value_t = RateLimit::default().packets_per_second)]
    packet_limit: u64,
}

/// Arguments of `warren relay ticket`.
#[derive(Args)]
struct TicketArgs {
    /// The signing key file (base64, from `warren relay keygen`).
    #[arg(long, value_name = "FILE")]
    signing_key_file: PathBuf,
    /// The node's WireGuard public key (base64).
    #[arg(long, value_name = "PUB")]
    node_key: String,
    /// How long the ticket is valid, e.g. 90s, 30m, 24h, 7d.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    ttl: Duration,
}

/// Runs `warren relay`.
pub fn run(args: RelayArgs) -> Result<()> {
    match args.command {
        Some(RelayCommand::Keygen) => keygen(),
        Some(RelayCommand::Pubkey) => pubkey(),
        Some(RelayCommand::Ticket(ticket)) => mint(ticket),
        None => serve(args.serve),
    }
}

fn serve(args: ServeArgs) -> Result<()> {
    let listen = args
        .listen
        .ok_or_else(|| anyhow!("--listen IP:PORT is required"))?;
    let control_key = match (&args.control_key, &args.control_key_file) {
        (Some(text), _) => parse_control_key(text).context("--control-key")?,
        (None, Some(path)) => parse_control_key(&read_small(path)?)
            .with_context(|| format!("in {}", path.display()))?,
        (None, None) => bail!("--control-key or --control-key-file is required"),
    };
    if args.max_nodes == 0 {
        bail!("--max-nodes must be at least 1");
    }
    if args.rate_limit < 8 || args.packet_limit == 0 {
        bail!("--rate-limit and --packet-limit must be positive");
    }
    let options = ServerOptions {
        listen,
        metrics: args.metrics,
        control_key,
        config: Config {
            max_sessions: args.max_nodes,
            rate_limit: RateLimit {
                bytes_per_second: args.rate_limit / 8,
                packets_per_second: args.packet_limit,
                ..RateLimit::default()
            },
            ..Config::default()
        },
    };
    super::block_on(async move {
        let server = Server::bind(options).await?;
        let shutdown = super::shutdown_signal()?;
        tracing::info!(
            "relay listening on {}",
            server
                .local_addr()
                .context("reading the socket's address")?
        );
        if let Some(addr) = server.metrics_addr() {
            tracing::info!("metrics on http://{addr}/metrics");
        }
        server.run(shutdown).await;
        Ok(())
    })
}

fn keygen() -> Result<()> {
    let seed = warren_os::random::<32>()?;
    println!("{}", STANDARD.encode(seed));
    Ok(())
}

fn pubkey() -> Result<()> {
    let mut text = String::new();
    std::io::stdin()
        .take(1024)
        .read_to_string(&mut text)
        .context("reading the signing key from stdin")?;
    let key = parse_signing_key(&text).context("stdin")?;
    writeln!(
        std::io::stdout(),
        "{}",
        STANDARD.encode(key.control_key().0)
    )
    .context("writing stdout")?;
    Ok(())
}

fn mint(args: TicketArgs) -> Result<()> {
    let key = parse_signing_key(&read_small(&args.signing_key_file)?)
        .with_context(|| format!("in {}", args.signing_key_file.display()))?;
    let node_key = PublicKey::from_base64(&args.node_key)
        .map_err(|_| anyhow!("--node-key is not a base64 WireGuard public key (44 characters)"))?;
    let expires = SystemTime::now()
        .checked_add(args.ttl)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .ok_or_else(|| {
            anyhow!(
                "--ttl {} is out of range",
                humantime::format_duration(args.ttl)
            )
        })?
        .as_secs();
    println!("{}", key.mint(node_key, expires).to_base64());
    Ok(())
}

fn read_small(path: &Path) -> Result<String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(4096).read_to_string(&mut text))
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(text)
}

fn decode_32(text: &str) -> Option<[u8; 32]> {
    STANDARD.decode(text.trim()).ok()?.try_into().ok()
}

fn parse_control_key(text: &str) -> Result<ControlKey> {
    decode_32(text)
        .map(ControlKey)
        .ok_or_else(|| anyhow!("not a base64 Ed25519 public key (as `warren relay pubkey` prints)"))
}

fn parse_signing_key(text: &str) -> Result<SigningKey> {
    let seed = decode_32(text).ok_or_else(|| {
        anyhow!("not a base64 Ed25519 signing key (as `warren relay keygen` prints)")
    })?;
    Ok(SigningKey::from_seed(&seed)?)
}

/// Parses `100M`, `1G`, `500kbit`, `2.5Mbit/s` or a plain number of bits per second.
fn parse_bit_rate(text: &str) -> Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let number = lower
        .trim_end_matches("/s")
        .trim_end_matches("bps")
        .trim_end_matches("bit");
    let (digits, scale) = match number.char_indices().last() {
        Some((at, 'k')) => (number.get(..at), 1e3),
        Some((at, 'm')) => (number.get(..at), 1e6),
        Some((at, 'g')) => (number.get(..at), 1e9),
        _ => (Some(number), 1.0),
    };
    let value: f64 = digits
        .and_then(|d| d.trim().parse().ok())
        .filter(|v: &f64| v.is_finite() && *v > 0.0)
        .ok_or_else(|| anyhow!("expected bits per second like 100M, 1G or 500kbit"))?;
    Ok((value * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_rates_parse_with_suffixes() {
        assert_eq!(parse_bit_rate("100M").unwrap(), 100_000_000);
        assert_eq!(parse_bit_rate("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_bit_rate("500kbit").unwrap(), 500_000);
        assert_eq!(parse_bit_rate("2.5Mbit/s").unwrap(), 2_500_000);
        assert_eq!(parse_bit_rate("64000").unwrap(), 64_000);
        assert!(parse_bit_rate("fast").is_err());
        assert!(parse_bit_rate("-1M").is_err());
    }

    #[test]
    fn keys_parse_and_refuse_junk() {
        let seed = STANDARD.encode([5u8; 32]);
        let key = parse_signing_key(&format!("{seed}\n")).unwrap();
        let public = STANDARD.encode(key.control_key().0);
        assert_eq!(parse_control_key(&public).unwrap(), key.control_key());
        assert!(parse_control_key("AAAA").is_err());
        assert!(parse_signing_key("nope").is_err());
    }
}
