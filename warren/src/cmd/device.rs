//! `warren device`: run a userspace WireGuard interface by hand.

use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand};
use serde::{Serialize, Serializer};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use warren_device::netlink::IfAddress;
use warren_device::stats::{query_stats, DropReport};
use warren_device::uapi_server::DEFAULT_UAPI_DIR;
use warren_device::{Device, DeviceOptions, DEFAULT_MTU};
use warren_mesh::DropReason;
use warren_wire::{PublicKey, Ticket};

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
    #[command(long_about = stats_long_about())]
    Stats(StatsArgs),
}

/// The long help of `warren device stats`. It names the reasons from
/// [`DropReason::ALL`], so that a new reason appears in it by itself.
fn stats_long_about() -> String {
    let reasons: Vec<String> = DropReason::ALL
        .into_iter()
        .map(|reason| match gloss(reason) {
            Some(gloss) => format!("{reason} ({gloss})"),
            None => reason.to_string(),
        })
        .collect();
    format!(
        "Show why packets were dropped, for the interface and each peer.\n\n\
         Counts every datagram and packet the device refused since it started, by reason: \
         {}. Endpoints, handshakes and byte counts are in `wg show IFACE`.",
        reasons.join(", ")
    )
}

/// What a drop reason's name does not say by itself.
fn gloss(reason: DropReason) -> Option<&'static str> {
    match reason {
        DropReason::InvalidMac => Some("not addressed to this key"),
        DropReason::SourceNotAllowed => Some("inner source outside the peer's allowed IPs"),
        DropReason::NoRoute => Some("no peer for the destination"),
        _ => None,
    }
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
        println!("{}", stats_json(&args.iface, &report)?);
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

/// What `warren device stats --json` prints; the counts keep the order of
/// `report` (that of [`DropReason::ALL`]).
#[derive(Serialize)]
struct StatsJson<'a> {
    interface: &'a str,
    drops: Counts<'a>,
    peers: Vec<PeerJson<'a>>,
}

#[derive(Serialize)]
struct PeerJson<'a> {
    public_key: &'a PublicKey,
    drops: Counts<'a>,
}

/// `{"reason": count, …}`.
struct Counts<'a>(&'a [(DropReason, u64)]);

impl Serialize for Counts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .iter()
                .map(|(reason, count)| (reason.as_str(), count)),
        )
    }
}

fn stats_json(iface: &str, report: &DropReport) -> serde_json::Result<String> {
    serde_json::to_string(&StatsJson {
        interface: iface,
        drops: Counts(&report.device),
        peers: report
            .peers
            .iter()
            .map(|peer| PeerJson {
                public_key: &peer.public_key,
                drops: Counts(&peer.drops),
            })
            .collect(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use warren_device::stats::PeerDrops;

    fn report() -> DropReport {
        DropReport {
            device: vec![(DropReason::Malformed, 3), (DropReason::NoRoute, 12)],
            peers: vec![
                PeerDrops {
                    public_key: PublicKey::from_bytes([1; 32]),
                    drops: vec![(DropReason::Replayed, 2), (DropReason::Malformed, 1)],
                },
                PeerDrops {
                    public_key: PublicKey::from_bytes([2; 32]),
                    drops: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn the_json_keeps_the_report_order() {
        assert_eq!(
            stats_json("wg0", &report()).unwrap(),
            "{\"interface\":\"wg0\",\"drops\":{\"malformed\":3,\"no_route\":12},\"peers\":[\
             {\"public_key\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\",\
             \"drops\":{\"replayed\":2,\"malformed\":1}},\
             {\"public_key\":\"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\",\"drops\":{}}]}"
        );
        assert_eq!(
            stats_json("wg\"0", &DropReport::default()).unwrap(),
            r#"{"interface":"wg\"0","drops":{},"peers":[]}"#
        );
    }

    #[test]
    fn the_long_help_lists_every_drop_reason_in_order() {
        let mut device = DeviceCommand::augment_subcommands(clap::Command::new("device"));
        let stats = device.find_subcommand_mut("stats").unwrap();
        let short = stats.render_help().to_string();
        assert!(
            short.starts_with("Show why packets were dropped, for the interface and each peer\n"),
            "{short}"
        );
        // clap wraps the text: read it as words.
        let help = stats.render_long_help().to_string();
        let words = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let (intro, rest) = words.split_once(" by reason: ").unwrap();
        assert_eq!(
            intro,
            "Show why packets were dropped, for the interface and each peer. \
             Counts every datagram and packet the device refused since it started,"
        );
        let (list, outro) = rest.split_once(". Endpoints").unwrap();
        assert!(outro.starts_with(", handshakes and byte counts are in `wg show IFACE`."));
        let listed: Vec<&str> = list
            .split(", ")
            .map(|item| item.split(' ').next().unwrap())
            .collect();
        let all: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(listed, all);
        assert!(
            list.contains("invalid_mac (not addressed to this key)"),
            "{list}"
        );
    }
}
