//! `warren mesh` (the topology) and `warren ping NODE` (one node, through
//! the mesh, saying which path each reply took).

use super::api::{ApiArgs, Client};
use anyhow::{anyhow, Context, Result};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;
use warren_control::mesh_view::{MeshPath, MeshView};
use warren_proto::PathKind;

/// Arguments of `warren mesh`.
#[derive(Args)]
#[command(
    long_about = "Show the mesh: every node (name, mesh IP, how it joined, whether it is \
        connected, where from, when it last reported) and, for every ordered pair, the path \
        the first node of the pair uses to reach the second: direct or relayed, round-trip \
        time through the mesh, time since the last handshake, bytes each way. Nodes report \
        every 5 seconds.",
    after_help = "Examples:\n  warren mesh\n  warren mesh --watch\n  \
        warren mesh --dot | dot -Tsvg > mesh.svg\n  \
        warren mesh --json | jq '.paths[] | select(.kind == \"relayed\")'\n\n\
        The JSON is described in docs/mesh.md."
)]
pub struct MeshArgs {
    /// Print JSON: {"nodes":[…],"paths":[…],"relays":[…]} (docs/mesh.md).
    #[arg(long, conflicts_with = "dot")]
    json: bool,
    /// Print a Graphviz graph: direct paths solid, relayed dashed, none dotted.
    #[arg(long)]
    dot: bool,
    /// Redraw every 2 seconds until interrupted.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs `warren mesh`.
pub fn run(args: MeshArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    loop {
        let view: MeshView = client.call("GET", "/v1/mesh", None)?;
        let text = if args.json {
            format!("{}\n", serde_json::to_string(&view)?)
        } else if args.dot {
            dot(&view)
        } else {
            table(&view)
        };
        if !args.watch {
            print!("{text}");
            return Ok(());
        }
        // Clear the screen and draw again from the top.
        print!("\x1b[2J\x1b[H{text}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn or_dash<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Bytes in a unit a human reads at a glance.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn rtt(path: &MeshPath) -> String {
    path.rtt_ms
        .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2} ms"))
}

/// The human tables.
fn table(view: &MeshView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16}  {:<15}  {:<7}  {:<6}  {:<22}  LAST SEEN",
        "NODE", "MESH IP", "MODE", "ONLINE", "ENDPOINT"
    );
    for node in &view.nodes {
        let _ = writeln!(
            out,
            "{:<16}  {:<15}  {:<7}  {:<6}  {:<22}  {}",
            node.name,
            node.mesh_ip,
            node.mode,
            if node.online { "yes" } else { "no" },
            or_dash(node.endpoint.as_deref()),
            node.last_seen_secs
                .map_or_else(|| "-".to_owned(), |s| format!("{s}s ago")),
        );
    }
    out.push('\n');
    if view.paths.is_empty() {
        out.push_str("no paths reported yet (nodes report every 5 s)\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:<16}  {:<16}  {:<7}  {:>9}  {:>9}  {:>10}  {:>10}",
        "FROM", "TO", "PATH", "RTT", "HANDSHAKE", "SENT", "RECEIVED"
    );
    for path in &view.paths {
        let _ = writeln!(
            out,
            "{:<16}  {:<16}  {:<7}  {:>9}  {:>9}  {:>10}  {:>10}",
            path.from,
            path.to,
            path.kind,
            rtt(path),
            path.last_handshake_secs
                .map_or_else(|| "never".to_owned(), |s| format!("{s}s ago")),
            bytes(path.tx_bytes),
            bytes(path.rx_bytes),
        );
    }
    out
}

/// The Graphviz graph.
fn dot(view: &MeshView) -> String {
    let mut out = String::from("digraph warren {\n  node [shape=box, fontname=\"monospace\"];\n");
    for node in &view.nodes {
        let style = if node.online { "solid" } else { "dashed" };
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\\n{}\\n{}\", style={style}];",
            node.name, node.name, node.mesh_ip, node.mode
        );
    }
    for path in &view.paths {
        let style = match path.kind {
            PathKind::Direct => "solid",
            PathKind::Relayed => "dashed",
            PathKind::None => "dotted",
        };
        let _ = writeln!(
            out,
            "  \"{}\" -> \"{}\" [style={style}, label=\"{} {}\"];",
            path.from,
            path.to,
            path.kind,
            rtt(path)
        );
    }
    out.push_str("}\n");
    out
}

/// Arguments of `warren ping`.
#[derive(Args)]
#[command(after_help = "Examples:\n  warren ping pi\n  warren ping vps-2 --count 10")]
pub struct PingArgs {
    /// The node to ping (a name from `warren nodes`, or `control`).
    node: String,
    /// How many probes, one a second.
    #[arg(long, short = 'c', value_name = "N", default_value_t = 4)]
    count: u32,
    /// This machine's mesh interface (whose path to the node is shown).
    #[arg(long, value_name = "NAME", default_value = "warren0")]
    iface: String,
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs `warren ping`: UDP echoes to the node's mesh address, each reply
/// labelled with the path this machine's device used at that moment.
pub fn ping(args: PingArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let view: MeshView = client.call("GET", "/v1/mesh", None)?;
    let target = view
        .nodes
        .iter()
        .find(|n| n.name == args.node)
        .ok_or_else(|| anyhow!("no node is called {:?} (see `warren nodes`)", args.node))?;
    let ip = target.mesh_ip;
    let socket = PathBuf::from(warren_device::uapi_server::DEFAULT_UAPI_DIR)
        .join(format!("{}.sock", args.iface));
    println!("PING {} ({ip}) through the mesh", target.name);
    let mut answered = 0;
    super::block_on(async {
        for seq in 1..=args.count {
            let rtt = warren_device::paths::ping(ip, Duration::from_secs(1))
                .await
                .context("sending the probe")?;
            let path = path_to(&socket, ip, &view).unwrap_or_else(|| "unknown path".to_owned());
            match rtt {
                Some(rtt) => {
                    answered += 1;
                    println!(
                        "reply from {} ({ip}): seq={seq} time={:.2} ms via {path}",
                        target.name,
                        rtt.as_secs_f64() * 1000.0
                    );
                }
                None => println!("no reply from {} ({ip}): seq={seq} (1 s)", target.name),
            }
            if seq < args.count {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        Ok(())
    })?;
    println!("{answered}/{} replies", args.count);
    if answered == 0 {
        anyhow::bail!("{} did not answer through the mesh", target.name);
    }
    Ok(())
}

/// `direct (ENDPOINT)` or `relay ENDPOINT`: how this machine's device
/// reaches the peer that owns `ip`, now.
fn path_to(socket: &std::path::Path, ip: std::net::Ipv4Addr, view: &MeshView) -> Option<String> {
    let state = warren_device::stats::query_state(socket).ok()?;
    let peer = state.peers.iter().find(|peer| {
        peer.allowed_ips
            .iter()
            .any(|net| net.contains(std::net::IpAddr::V4(ip)))
    })?;
    let endpoint = peer.endpoint?;
    Some(if view.relays.contains(&endpoint) {
        format!("relay {endpoint}")
    } else {
        format!("direct {endpoint}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_control::mesh_view::MeshNode;
    use warren_proto::Mode;

    fn view() -> MeshView {
        MeshView {
            nodes: vec![MeshNode {
                name: "pi".to_owned(),
                mesh_ip: "100.96.0.2".parse().unwrap(),
                mode: Mode::Relay,
                online: true,
                endpoint: Some("198.51.100.7:4000".to_owned()),
                last_seen_secs: Some(3),
            }],
            paths: vec![MeshPath {
                from: "pi".to_owned(),
                to: "vps".to_owned(),
                kind: PathKind::Relayed,
                rtt_ms: Some(1.25),
                last_handshake_secs: Some(12),
                tx_bytes: 3 * 1024 * 1024,
                rx_bytes: 100,
            }],
            relays: Vec::new(),
        }
    }

    #[test]
    fn the_table_and_the_graph_say_how_each_pair_is_connected() {
        let text = table(&view());
        let rows: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[1],
            [
                "pi",
                "100.96.0.2",
                "relay",
                "yes",
                "198.51.100.7:4000",
                "3s",
                "ago"
            ]
        );
        assert_eq!(
            rows[4],
            ["pi", "vps", "relayed", "1.25", "ms", "12s", "ago", "3.0", "MiB", "100", "B"]
        );
        let graph = dot(&view());
        assert!(graph.starts_with("digraph warren {"), "{graph}");
        assert!(
            graph.contains("\"pi\" -> \"vps\" [style=dashed, label=\"relayed 1.25 ms\"];"),
            "{graph}"
        );
    }
}
