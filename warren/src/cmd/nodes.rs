//! `warren nodes`, `warren node rm|label|drain|activate`: the cluster's
//! nodes, through the admin API.

use super::api::{ApiArgs, Client};
use super::fmt;
use super::table::{
    Align::{Left, Right},
    Table,
};
use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use warren_control::api::NodeInfo;

/// Arguments of `warren nodes`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  warren nodes\n  warren nodes --json | jq '.nodes[] | select(.online | not)'"
)]
pub struct NodesArgs {
    /// Print JSON: {"nodes":[{"name","mesh_ip","mode","private_address","online","endpoint","joined","machine":{"arch","cpu_millis","memory","disk_free","docker"},"labels","replicas","leaving","drained"}]}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `warren node`.
#[derive(Args)]
pub struct NodeArgs {
    #[command(subcommand)]
    command: NodeCommand,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Remove a node: its credential stops working, its mesh address is
    /// freed, the other nodes and the control plane drop it, and its agent
    /// stops its containers and exits. A node that runs replicas leaves
    /// first: each replica is placed on another node, and goes once its
    /// replacement is healthy; this waits for that (progress on stderr)
    /// unless --no-wait. To bring the machine back, join it again with a
    /// new token.
    #[command(
        after_help = "Examples:\n  warren node rm pi\n  warren node rm pi --force      # now; its replicas are replaced elsewhere"
    )]
    Rm {
        /// The node's name, as `warren nodes` shows it.
        name: String,
        /// Remove it now, without moving its replicas first (they are
        /// replaced elsewhere afterwards, as if the node had died).
        #[arg(long)]
        force: bool,
        /// Return once the node is leaving, without waiting for it to go.
        #[arg(long, conflicts_with = "force")]
        no_wait: bool,
        /// How long to wait for its replicas to move.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
    /// Drain a node, for maintenance: each of its replicas is placed on
    /// another node, and goes (its container stopped, SIGTERM then SIGKILL
    /// after its grace) once its replacement is healthy and the proxy
    /// routes to it; nothing new is placed on the node until `warren node
    /// activate`. The node stays in the cluster, its agent connected.
    #[command(
        after_help = "Examples:\n  warren node drain pi --wait    # then patch and reboot pi\n  warren node drain pi --force   # now: what cannot move stops too\n  warren node activate pi"
    )]
    Drain {
        /// The node's name, as `warren nodes` shows it.
        name: String,
        /// Wait until no replica is left on it (progress on stderr).
        #[arg(long)]
        wait: bool,
        /// Stop the node's replicas now, without waiting for replacements
        /// to be healthy (requests in flight still finish, within each
        /// replica's stop grace): replicas that fit elsewhere are placed
        /// there, and those that cannot move (pinned to the node by a
        /// constraint, or with no room elsewhere) stop and wait for room.
        #[arg(long)]
        force: bool,
        /// How long --wait waits for its replicas to move.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, requires = "wait")]
        timeout: Duration,
    },
    /// Undo `warren node drain`: replicas may be placed on the node again
    /// (those already running elsewhere stay there).
    #[command(after_help = "Examples:\n  warren node activate pi")]
    Activate {
        /// The node's name, as `warren nodes` shows it.
        name: String,
    },
    /// Set or remove labels of a node, for `warren deploy --constraint
    /// KEY==VALUE`. Every node also has the labels `node` (its name) and
    /// `arch` (`amd64`, `arm64`…), which cannot be set. Replicas already
    /// placed stay where they are.
    #[command(
        after_help = "Examples:\n  warren node label pi zone=home disk=ssd\n  warren node label pi --rm disk\n  warren deploy web --image nginx --constraint zone==home"
    )]
    Label {
        /// The node's name, as `warren nodes` shows it.
        name: String,
        /// Labels to set: KEY=VALUE (letters, digits, '-', '_', '.').
        labels: Vec<String>,
        /// A label to remove.
        #[arg(long = "rm", value_name = "KEY")]
        remove: Vec<String>,
    },
}

/// Runs `warren nodes`.
pub fn list(args: NodesArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let listed: serde_json::Value = client.call("GET", "/v1/nodes", None)?;
    if args.json {
        println!("{listed}");
        return Ok(());
    }
    let nodes: Vec<NodeInfo> = serde_json::from_value(listed["nodes"].clone())?;
    print!("{}", table(&nodes));
    Ok(())
}

/// Runs `warren node`.
pub fn node(args: NodeArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    match args.command {
        NodeCommand::Rm {
            name,
            force,
            no_wait,
            timeout,
        } => {
            let path = if force {
                format!("/v1/nodes/{name}?force=true")
            } else {
                format!("/v1/nodes/{name}")
            };
            let answer: Value = client.call("DELETE", &path, None)?;
            if answer["removed"] == true {
                eprintln!("removed node {name}");
            } else if no_wait {
                eprintln!(
                    "node {name} is leaving: its {} replica(s) are moving; it goes once they have",
                    answer["replicas"]
                );
            } else {
                wait_gone(&client, &name, timeout)?;
                eprintln!("removed node {name}: its replicas moved");
            }
        }
        NodeCommand::Drain {
            name,
            wait,
            force,
            timeout,
        } => {
            let path = match force {
                true => format!("/v1/nodes/{name}/drain?force=true"),
                false => format!("/v1/nodes/{name}/drain"),
            };
            let answer: Value = client.call("POST", &path, None)?;
            if let Some(stopped @ 1..) = answer["stopped"].as_u64() {
                eprintln!("stopping the {stopped} replica(s) on node {name} now");
            }
            match answer["replicas"].as_u64() {
                Some(0) => eprintln!("drained node {name}: no replica on it"),
                _ if wait => {
                    wait_empty(&client, &name, timeout)?;
                    eprintln!("drained node {name}: its replicas moved");
                }
                replicas => eprintln!(
                    "draining node {name}: its {} replica(s) are moving (see `warren nodes`)",
                    replicas.unwrap_or_default()
                ),
            }
        }
        NodeCommand::Activate { name } => {
            let _: Value = client.call("POST", &format!("/v1/nodes/{name}/activate"), None)?;
            eprintln!("node {name} is active: replicas may be placed on it");
        }
        NodeCommand::Label {
            name,
            labels,
            remove,
        } => {
            let body = json!({ "set": labels, "unset": remove });
            let answer: Value =
                client.call("POST", &format!("/v1/nodes/{name}/labels"), Some(body))?;
            let labels: std::collections::BTreeMap<String, String> =
                serde_json::from_value(answer["labels"].clone())?;
            println!("{name}: {}", labels_text(&labels));
        }
    }
    Ok(())
}

/// Follows a leaving node until it is gone.
fn wait_gone(client: &Client, name: &str, timeout: Duration) -> Result<()> {
    let done = |node: Option<&NodeInfo>| node.is_none();
    let stuck = format!("or `warren node rm {name} --force`");
    follow_moves(client, name, "leaving", timeout, &stuck, done)
}

/// Follows a drained node until no replica is left on it.
fn wait_empty(client: &Client, name: &str, timeout: Duration) -> Result<()> {
    let done = |node: Option<&NodeInfo>| node.is_none_or(|n| n.replicas == 0);
    let stuck = format!(
        "the node stays drained (`warren node drain {name} --force` stops them, `warren node activate {name}` undoes it)"
    );
    follow_moves(client, name, "draining", timeout, &stuck, done)
}

/// Prints how many replicas are still on the node `name` as they move off
/// (`doing`: leaving, draining) until `done` says so, or fails after
/// `timeout` with `stuck` as the way out.
fn follow_moves(
    client: &Client,
    name: &str,
    doing: &str,
    timeout: Duration,
    stuck: &str,
    done: impl Fn(Option<&NodeInfo>) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        let listed: Value = client.call("GET", "/v1/nodes", None)?;
        let nodes: Vec<NodeInfo> = serde_json::from_value(listed["nodes"].clone())?;
        let node = nodes.into_iter().find(|n| n.name == name);
        if done(node.as_ref()) {
            return Ok(());
        }
        let replicas = node.map_or(0, |n| n.replicas);
        if last != Some(replicas) {
            eprintln!("{name}: {doing}, {replicas} replica(s) still on it");
            last = Some(replicas);
        }
        if Instant::now() >= deadline {
            return Err(super::Exit::new(
                5,
                format!(
                    "{name} still runs {replicas} replica(s) after {}: see `warren services` for why they cannot move; {stuck}",
                    humantime::format_duration(timeout)
                ),
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `zone=home,disk=ssd`, or `-`.
fn labels_text(labels: &std::collections::BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "-".to_owned();
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

/// The human table of `warren nodes`.
fn table(nodes: &[NodeInfo]) -> String {
    if nodes.is_empty() {
        return "no nodes yet (join one with `warren join --token …`)\n".to_owned();
    }
    let mut table = Table::new([
        ("NAME", Left),
        ("MESH IP", Left),
        ("MODE", Left),
        ("ONLINE", Left),
        ("ENDPOINT", Left),
        ("ARCH", Left),
        ("CPU", Right),
        ("MEMORY", Right),
        ("DISK FREE", Right),
        ("REPLICAS", Right),
        ("LABELS", Left),
    ]);
    for node in nodes {
        let endpoint = node.endpoint.as_deref().or(node.private_address.as_deref());
        let machine = node.machine.as_ref();
        let online = if node.leaving {
            format!("{} (leaving)", fmt::yes_no(node.online))
        } else if node.drained {
            format!("{} (drained)", fmt::yes_no(node.online))
        } else {
            fmt::yes_no(node.online).to_owned()
        };
        table.row([
            &node.name,
            &node.mesh_ip,
            &node.mode,
            &online,
            &fmt::or_dash(endpoint),
            &fmt::or_dash(machine.map(|m| &m.arch)),
            &fmt::or_dash(machine.map(|m| format!("{:.1}", m.cpu_millis as f64 / 1000.0))),
            &fmt::or_dash(machine.map(|m| fmt::bytes(m.memory))),
            &fmt::or_dash(machine.and_then(|m| m.disk_free).map(fmt::bytes)),
            &node.replicas,
            &labels_text(&node.labels),
        ]);
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::Mode;

    fn node(name: &str, mesh_ip: &str, mode: Mode, online: bool) -> NodeInfo {
        NodeInfo {
            name: name.to_owned(),
            mesh_ip: mesh_ip.to_owned(),
            mode,
            private_address: None,
            online,
            endpoint: None,
            joined: 0,
            machine: None,
            labels: Default::default(),
            replicas: 0,
            leaving: false,
            drained: false,
        }
    }

    /// A relayed node seen from its public address, a direct one known by
    /// its private address only, and one whose name is longer than 20.
    fn nodes() -> Vec<NodeInfo> {
        let mut pi = node("pi", "100.96.0.2", Mode::Relay, true);
        pi.endpoint = Some("198.51.100.7:4000".to_owned());
        pi.machine = Some(warren_control::api::nodes::Machine {
            arch: "arm64".to_owned(),
            cpu_millis: 4000,
            memory: 8 << 30,
            disk_free: Some(30 << 30),
            docker: "20.10.24".to_owned(),
        });
        pi.replicas = 2;
        pi.labels.insert("zone".to_owned(), "home".to_owned());
        pi.labels.insert("disk".to_owned(), "ssd".to_owned());
        let mut vm = node("vm", "100.96.0.3", Mode::Direct, false);
        vm.private_address = Some("10.0.0.5".to_owned());
        vm.leaving = true;
        let long = node(
            "build-server-eu-west-2a",
            "100.96.0.14",
            Mode::Direct,
            false,
        );
        vec![pi, vm, long]
    }

    #[test]
    fn the_table_says_where_each_node_is_what_it_has_and_a_long_name_widens_its_column() {
        assert_eq!(
            table(&nodes()),
            "NAME                     MESH IP      MODE    ONLINE        ENDPOINT           ARCH   CPU   MEMORY  DISK FREE  REPLICAS  LABELS\n\
             pi                       100.96.0.2   relay   yes           198.51.100.7:4000  arm64  4.0  8.0 GiB   30.0 GiB         2  disk=ssd,zone=home\n\
             vm                       100.96.0.3   direct  no (leaving)  10.0.0.5           -        -        -          -         0  -\n\
             build-server-eu-west-2a  100.96.0.14  direct  no            -                  -        -        -          -         0  -\n"
        );
        assert!(table(&[]).contains("warren join"));
    }
}
