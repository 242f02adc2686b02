//! `warren device`: run a userspace WireGuard interface by hand.

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use warren_device::netlink::IfAddress;
use warren_device::stats::{query_stats, DropReport};
use warren_device::uapi_server::DEFAULT_UAPI_DIR;
use warren_device::{Device, DeviceOptions, DEFAULT_MTU};
use warren_mesh::DropReason;
use warren_wire::Ticket;

/// Userspace WireGuard interfaces.
#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Create a WireGuard interface and serve it in the foreground.
    ///
    /// Creates the TUN interface IFACE, gives it its addresses and MTU, and
    /// serves WireGuard on one UDP port until interrupted (SIGINT or SIGTERM),
    /// then removes the interface, its routes and its UAPI socket.
    ///
    /// Peers come from --config (a wg(8)/wg-quick file) and can be changed
    /// at any time with the standard tools through the UAPI socket
    /// /var/run/wireguard/IFACE.sock, e.g. `wg show IFACE` or
    /// `wg set IFACE peer KEY allowed-ips 10.9.0.2/32 endpoint 203.0.113.2:51820`.
    /// A route through IFACE is added for every allowed-IPs prefix outside
    /// the interface's own subnets (default routes excepted).
    ///
    /// Without a private key in the configuration, a random one is used;
    /// `wg show IFACE public-key` prints its public key.
    #[command(
        after_help = "Examples:\n  warren device up wg0 --address 10.9.0.1/24 --config /etc/warren/wg0.conf\n  \
         warren device up wg0 --address 10.9.0.1/24 --listen-port 51820 &\n  \
         wg set wg0 private-key ./key peer <PUBKEY> allowed-ips 10.9.0.2/32 endpoint 203.0.113.2:51820"
    )]
    Up(UpArgs),
    /// Show why packets were dropped, for the interface and each peer.
    ///
    /// Counts every datagram and packet the device refused since it started,
    /// by reason: malformed, invalid_mac (not addressed to this key),
    /// unknown_peer, unauthenticated, replayed, unexpected, no_session,
    /// under_load, source_not_allowed (inner source outside the peer's
    /// allowed IPs), no_route (no peer for the destination), no_endpoint,
    /// not_ip, too_large. Endpoints, handshakes and byte counts are in
    /// `wg show IFACE`.
    Stats(StatsArgs),
}

/// Arguments of `warren device stats`.
#[derive(Args)]
pub struct StatsArgs {
    /// Interface name.
    #[arg(default_value = "warren0")]
    iface: String,
    /// Print JSON: {"interface", "drops": {reason: count}, "peers": [{"public_key", "drops"}]}.
    #[arg(long)]
    json: bool,
}

/// Arguments of `warren device up`.
#[derive(Args)]
pub struct UpArgs {
    /// Interface name (at most 15 characters).
    #[arg(default_value = "warren0")]
    iface: String,
    /// Address of the interface with its subnet, e.g. 10.9.0.1/24 (repeatable).
    /// Adds to the `Address =` lines of --config.
    #[arg(long = "address", value_name = "IP/PREFIX", value_parser = parse_if_address)]
    addresses: Vec<IfAddress>,
    /// Interface MTU [default: the config's `MTU =`, else 1384, which leaves
    /// room for the relay's framing on a 1500-byte path].
    #[arg(long)]
    mtu: Option<u32>,
    /// UDP port to listen on; 0 picks a free port [default: the config's
    /// `ListenPort =`, else 0].
    #[arg(long, value_name = "PORT")]
    listen_port: Option<u16>,
    /// A wg(8) configuration file ([Interface] PrivateKey, ListenPort,
    /// FwMark, and wg-quick's Address and MTU; [Peer] sections).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// A relay to register with (repeatable; the first one registered is
    /// used). Peers are reached through it until a direct path proves
    /// itself, and whenever the direct path goes quiet.
    #[arg(long = "relay", value_name = "IP:PORT")]
    relays: Vec<SocketAddr>,
    /// File holding this device's relay ticket (base64, as printed by
    /// `warren relay ticket`), required with --relay. The ticket is for the
    /// device's key, so set the key with --config.
    #[arg(long, value_name = "FILE", requires = "relays")]
    ticket: Option<PathBuf>,
}

/// Runs a `warren device` subcommand.
pub fn run(command: DeviceCommand) -> Result<()> {
    match command {
        DeviceCommand::Up(args) => up(args),
        DeviceCommand::Stats(args) => stats(args),
    }
}

fn up(args: UpArgs) -> Result<()> {
    let mut options = DeviceOptions::new(args.iface);
    if let Some(path) = &args.config {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let file = warren_uapi::parse_config_file(&text)
            .with_context(|| format!("in {}", path.display()))?;
        options
            .addresses
            .extend(file.addresses.iter().map(|address| IfAddress {
                address: address.addr,
                prefix_len: address.prefix_len,
            }));
        options.mtu = file.mtu.unwrap_or(DEFAULT_MTU);
        options.config = Some(file.set);
    }
    options.addresses.extend(args.addresses);
    if let Some(mtu) = args.mtu {
        options.mtu = mtu;
    }
    options.relays = args.relays;
    if let Some(path) = &args.ticket {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let ticket = Ticket::from_base64(text.trim())
            .map_err(|error| anyhow!("{}: not a relay ticket: {error}", path.display()))?;
        options.ticket = Some(ticket);
    }
    if let Some(port) = args.listen_port {
        options.listen_port = port;
        if let Some(config) = options.config.as_mut() {
            config.listen_port = Some(port);
        }
    }
    super::block_on(async move {
        let name = options.name.clone();
        let device = Device::create(options)
            .await
            .with_context(|| format!("bringing up {name}"))?;
        device.run(super::shutdown_signal()?).await?;
        Ok(())
    })
}

fn stats(args: StatsArgs) -> Result<()> {
    let socket = Path::new(DEFAULT_UAPI_DIR).join(format!("{}.sock", args.iface));
    let report =
        query_stats(&socket).with_context(|| format!("reading the counters of {}", args.iface))?;
    if args.json {
        println!("{}", stats_json(&args.iface, &report));
    } else {
        print!("{}", stats_text(&args.iface, &report));
    }
    Ok(())
}

fn stats_text(iface: &str, report: &DropReport) -> String {
    let mut text = format!("interface: {iface}\n  dropped: {}\n", report.device_total());
    for (reason, count) in &report.device {
        text.push_str(&format!("    {reason:<20} {count}\n"));
    }
    for peer in &report.peers {
        let total: u64 = peer.drops.iter().map(|(_, count)| count).sum();
        text.push_str(&format!(
            "\npeer: {}\n  dropped: {total}\n",
            peer.public_key
        ));
        for (reason, count) in &peer.drops {
            text.push_str(&format!("    {reason:<20} {count}\n"));
        }
    }
    text
}

fn stats_json(iface: &str, report: &DropReport) -> String {
    // Every string here is an interface name, a base64 key or a reason name:
    // none needs escaping beyond what `{:?}` does for ASCII.
    let counts = |drops: &[(DropReason, u64)]| {
        let fields: Vec<String> = drops
            .iter()
            .map(|(reason, count)| format!("\"{reason}\":{count}"))
            .collect();
        format!("{{{}}}", fields.join(","))
    };
    let peers: Vec<String> = report
        .peers
        .iter()
        .map(|peer| {
            format!(
                "{{\"public_key\":\"{}\",\"drops\":{}}}",
                peer.public_key,
                counts(&peer.drops)
            )
        })
        .collect();
    format!(
        "{{\"interface\":{iface:?},\"drops\":{},\"peers\":[{}]}}",
        counts(&report.device),
        peers.join(",")
    )
}

/// Parses `10.9.0.1/24` (an address with its subnet's prefix length).
fn parse_if_address(text: &str) -> Result<IfAddress> {
    let (address, prefix) = text
        .split_once('/')
        .ok_or_else(|| anyhow!("expected ADDRESS/PREFIX, e.g. 10.9.0.1/24"))?;
    let address: IpAddr = address
        .parse()
        .map_err(|_| anyhow!("{address:?} is not an IP address"))?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix_len: u8 = prefix
        .parse()
        .ok()
        .filter(|len| *len <= max)
        .ok_or_else(|| anyhow!("prefix length must be 0..={max}"))?;
    Ok(IfAddress {
        address,
        prefix_len,
    })
}
