//! `warren mesh` (the topology) and `warren ping NODE` (one node, through
//! the mesh, saying which path each reply took).

use super::api::{ApiArgs, Client};
use super::fmt;
use super::table::{
    Align::{Left, Right},
    Table,
};
use anyhow::{anyhow, Context, Result};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;
use warren_control::mesh_view::MeshView;
use warren_proto::PathKind;

/// Arguments of `warren mesh`.
#[derive(Args)]
#[command(
    about = "Show the mesh: nodes, and every pair's path (direct or relayed)",
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

/// The human tables: the nodes, then the paths.
fn table(view: &MeshView) -> String {
    let mut nodes = Table::new([
        ("NODE", Left),
        ("MESH IP", Left),
        ("MODE", Left),
        ("ONLINE", Left),
        ("ENDPOINT", Left),
        ("LAST SEEN", Left),
    ]);
    for node in &view.nodes {
        nodes.row([
            &node.name,
            &node.mesh_ip,
            &node.mode,
            &fmt::yes_no(node.online),
            &fmt::or_dash(node.endpoint.as_deref()),
            &fmt::or_dash(node.last_seen_secs.map(fmt::ago)),
        ]);
    }
    let mut out = format!("{nodes}\n");
    if view.paths.is_empty() {
        out.push_str("no paths reported yet (nodes report every 5 s)\n");
        return out;
    }
    let mut paths = Table::new([
        ("FROM", Left),
        ("TO", Left),
        ("PATH", Left),
        ("RTT", Right),
        ("HANDSHAKE", Right),
        ("SENT", Right),
        ("RECEIVED", Right),
    ]);
    for path in &view.paths {
        paths.row([
            &path.from,
            &path.to,
            &path.kind,
            &fmt::rtt(path.rtt_ms),
            &fmt::ago_or_never(path.last_handshake_secs),
            &fmt::bytes(path.tx_bytes),
            &fmt::bytes(path.rx_bytes),
        ]);
    }
    out.push_str(&paths.to_string());
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
            fmt::rtt(path.rtt_ms)
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
                        "reply from {} ({ip}): seq={seq} time={} via {path}",
                        target.name,
                        fmt::ms(rtt.as_secs_f64() * 1000.0)
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
    use warren_control::mesh_view::{MeshNode, MeshPath};
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
    fn a_long_name_widens_its_columns_and_absent_values_are_dashes() {
        let mut view = view();
        view.nodes.push(MeshNode {
            name: "build-server-eu-west-2a".to_owned(),
            mesh_ip: "100.96.0.14".parse().unwrap(),
            mode: Mode::Direct,
            online: false,
            endpoint: None,
            last_seen_secs: None,
        });
        view.paths.push(MeshPath {
            from: "build-server-eu-west-2a".to_owned(),
            to: "pi".to_owned(),
            kind: PathKind::None,
            rtt_ms: None,
            last_handshake_secs: None,
            tx_bytes: 0,
            rx_bytes: 5 * 1024 * 1024 * 1024 + 1,
        });
        assert_eq!(
            table(&view),
            "NODE                     MESH IP      MODE    ONLINE  ENDPOINT           LAST SEEN\n\
             pi                       100.96.0.2   relay   yes     198.51.100.7:4000  3s ago\n\
             build-server-eu-west-2a  100.96.0.14  direct  no      -                  -\n\
             \n\
             FROM                     TO   PATH         RTT  HANDSHAKE     SENT  RECEIVED\n\
             pi                       vps  relayed  1.25 ms    12s ago  3.0 MiB     100 B\n\
             build-server-eu-west-2a  pi   none           -      never      0 B   5.0 GiB\n"
        );
        view.paths.clear();
        assert!(table(&view).ends_with("\n\nno paths reported yet (nodes report every 5 s)\n"));
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
