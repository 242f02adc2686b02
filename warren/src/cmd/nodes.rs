//! `warren nodes` and `warren node rm`: the cluster's nodes, through the
//! admin API.

use super::api::{ApiArgs, Client};
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

fn table(nodes: &[NodeInfo]) -> String {
    if nodes.is_empty() {
        return "no nodes yet (join one with `warren join --token …`)\n".to_owned();
    }
    let mut out = format!(
        "{:<20}  {:<15}  {:<6}  {:<7}  {}\n",
        "NAME", "MESH IP", "MODE", "ONLINE", "ENDPOINT"
    );
    for node in nodes {
        out.push_str(&format!(
            "{:<20}  {:<15}  {:<6}  {:<7}  {}\n",
            node.name,
            node.mesh_ip,
            node.mode,
            if node.online { "yes" } else { "no" },
            node.endpoint
                .as_deref()
                .or(node.private_address.as_deref())
                .unwrap_or("-"),
        ));
    }
    out
}
