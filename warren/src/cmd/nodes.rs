//! `warren nodes` and `warren node rm`: the cluster's nodes, through the
//! admin API.

use super::api::{ApiArgs, Client};
use super::fmt;
use super::table::{Align::Left, Table};
use anyhow::Result;
use clap::{Args, Subcommand};
use warren_control::api::NodeInfo;

/// Arguments of `warren nodes`.
#[derive(Args)]
#[command(
    after_help = "Examples:\n  warren nodes\n  warren nodes --json | jq '.nodes[] | select(.online | not)'"
)]
pub struct NodesArgs {
    /// Print JSON: {"nodes":[{"name","mesh_ip","mode","private_address","online","endpoint","joined"}]}.
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
    /// stops. To bring the machine back, join it again with a new token.
    Rm {
        /// The node's name, as `warren nodes` shows it.
        name: String,
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
        NodeCommand::Rm { name } => {
            let _: serde_json::Value = client.call("DELETE", &format!("/v1/nodes/{name}"), None)?;
            eprintln!("removed node {name}");
        }
    }
    Ok(())
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
    ]);
    for node in nodes {
        let endpoint = node.endpoint.as_deref().or(node.private_address.as_deref());
        table.row([
            &node.name,
            &node.mesh_ip,
            &node.mode,
            &fmt::yes_no(node.online),
            &fmt::or_dash(endpoint),
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
        }
    }

    /// A relayed node seen from its public address, a direct one known by
    /// its private address only, and one whose name is longer than 20.
    fn nodes() -> Vec<NodeInfo> {
        let mut pi = node("pi", "100.96.0.2", Mode::Relay, true);
        pi.endpoint = Some("198.51.100.7:4000".to_owned());
        let mut vm = node("vm", "100.96.0.3", Mode::Direct, false);
        vm.private_address = Some("10.0.0.5".to_owned());
        let long = node(
            "build-server-eu-west-2a",
            "100.96.0.14",
            Mode::Direct,
            false,
        );
        vec![pi, vm, long]
    }

    #[test]
    fn the_table_says_where_each_node_is_and_a_long_name_widens_its_column() {
        assert_eq!(
            table(&nodes()),
            "NAME                     MESH IP      MODE    ONLINE  ENDPOINT\n\
             pi                       100.96.0.2   relay   yes     198.51.100.7:4000\n\
             vm                       100.96.0.3   direct  no      10.0.0.5\n\
             build-server-eu-west-2a  100.96.0.14  direct  no      -\n"
        );
        assert!(table(&[]).contains("warren join"));
    }
}
