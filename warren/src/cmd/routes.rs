//! `warren routes`: what the ingress proxy sends where.

use super::api::{ApiArgs, Client};
use super::fmt;
use super::table::{
    Align::{Left, Right},
    Table,
};
use anyhow::Result;
use clap::Args;
use warren_control::api::routes::RoutesInfo;

/// Arguments of `warren routes`.
#[derive(Args)]
#[command(
    about = "Show the ingress proxy's routes: host/path → service → healthy replicas",
    long_about = "Show the ingress proxy's routes: for each service deployed with --host, its \
        hosts and path prefix, and the healthy replicas the proxy sends requests to now, each \
        with its node, its mesh address, how the control plane reaches that node (direct, \
        relayed, or local on its own host) and the last round trip to it. A route with no \
        replica listed answers 503 until one turns healthy.",
    after_help = "Examples:\n  warren routes\n  \
        warren routes --json | jq '.routes[] | {service, n: (.upstreams | length)}'\n\n\
        Routing, retries and headers are described in docs/ingress.md."
)]
pub struct RoutesArgs {
    /// Print JSON: {"proxy": bool, "routes":[{service, hosts, path, strip_prefix, sticky, upstreams:[…]}]}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs `warren routes`.
pub fn run(args: RoutesArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let info: RoutesInfo = client.call("GET", "/v1/routes", None)?;
    if args.json {
        println!("{}", serde_json::to_string(&info)?);
        return Ok(());
    }
    print!("{}", table(&info));
    Ok(())
}

fn table(info: &RoutesInfo) -> String {
    let mut out = String::new();
    if !info.proxy {
        out.push_str("the control plane runs no proxy (warren serve --no-proxy)\n");
    }
    if info.routes.is_empty() {
        out.push_str("no routes: deploy a service with --host and --port\n");
        return out;
    }
    let mut table = Table::new([
        ("HOST", Left),
        ("PATH", Left),
        ("SERVICE", Left),
        ("REPLICA", Left),
        ("NODE", Left),
        ("ADDRESS", Left),
        ("VIA", Left),
        ("RTT", Right),
    ]);
    for route in &info.routes {
        let path = if route.strip_prefix {
            format!("{} (stripped)", route.path)
        } else {
            route.path.clone()
        };
        for host in &route.hosts {
            if route.upstreams.is_empty() {
                table.row([host, &path, &route.service, &"-", &"-", &"-", &"-", &"-"]);
            }
            for upstream in &route.upstreams {
                table.row([
                    host,
                    &path,
                    &route.service,
                    &upstream.replica,
                    &upstream.node,
                    &upstream.address,
                    &upstream.path,
                    &fmt::rtt(upstream.rtt_ms),
                ]);
            }
        }
    }
    out.push_str(&table.to_string());
    out
}
