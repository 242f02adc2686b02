//! `warren proxy stats`: the ingress proxy's numbers per service.

use super::api::{ApiArgs, Client};
use super::fmt;
use super::table::{
    Align::{Left, Right},
    Table,
};
use anyhow::Result;
use clap::{Args, Subcommand};
use warren_control::proxy::stats::Summary;
use warren_control::proxy::ProxyStats;

/// Arguments of `warren proxy`.
#[derive(Args)]
#[command(
    about = "Inspect the ingress proxy: per-service requests, errors and latency",
    long_about = "Inspect the ingress proxy. `warren proxy stats` shows, per service, over the \
        last minute and since the control plane started: requests and requests per second, \
        answers by status class, failed attempts at replicas by kind (connect, closed before \
        answering, timeout, node offline), retries on another replica, and the 50th and 99th percentile of \
        the time to the response's headers; with the requests in flight to its replicas and \
        the client connections open now. The same numbers are on /metrics for Prometheus.",
    after_help = "Examples:\n  warren proxy stats\n  \
        warren proxy stats --json | jq '.services[] | {service, p99: .last_minute.p99_ms}'"
)]
pub struct ProxyArgs {
    #[command(subcommand)]
    command: ProxyCommand,
    #[command(flatten)]
    api: ApiArgs,
}

#[derive(Subcommand)]
enum ProxyCommand {
    /// Per service, over the last minute and since start.
    Stats {
        /// Print JSON: {"open_connections", "services":[{service, in_flight, last_minute, since_start}]}.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `warren proxy`.
pub fn run(args: ProxyArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    match args.command {
        ProxyCommand::Stats { json } => {
            let stats: ProxyStats = client.call("GET", "/v1/proxy/stats", None)?;
            if json {
                println!("{}", serde_json::to_string(&stats)?);
            } else {
                print!("{}", table(&stats));
            }
        }
    }
    Ok(())
}

fn table(stats: &ProxyStats) -> String {
    let mut out = format!("open client connections: {}\n", stats.open_connections);
    if stats.services.is_empty() {
        out.push_str("no requests yet\n");
        return out;
    }
    let mut table = Table::new([
        ("SERVICE", Left),
        ("SPAN", Left),
        ("REQUESTS", Right),
        ("RPS", Right),
        ("2XX", Right),
        ("3XX", Right),
        ("4XX", Right),
        ("5XX", Right),
        ("CONNECT/CLOSED/TIMEOUT/OFFLINE", Right),
        ("RETRIES", Right),
        ("P50", Right),
        ("P99", Right),
        ("IN FLIGHT", Right),
    ]);
    for service in &stats.services {
        let name = if service.summary.service.is_empty() {
            "(no route)"
        } else {
            service.summary.service.as_str()
        };
        for (span, summary) in [
            ("1m", &service.summary.last_minute),
            ("total", &service.summary.since_start),
        ] {
            row(&mut table, name, span, summary, service.in_flight);
        }
    }
    out.push_str(&table.to_string());
    out
}

fn row(table: &mut Table<13>, name: &str, span: &str, summary: &Summary, in_flight: u32) {
    let errors = format!(
        "{}/{}/{}/{}",
        summary.connect_errors, summary.closed_errors, summary.timeouts, summary.offline_errors
    );
    table.row([
        &name,
        &span,
        &summary.requests,
        &format!("{:.1}", summary.rps),
        &summary.status_2xx,
        &summary.status_3xx,
        &summary.status_4xx,
        &summary.status_5xx,
        &errors,
        &summary.retries,
        &fmt::rtt(summary.p50_ms),
        &fmt::rtt(summary.p99_ms),
        &in_flight,
    ]);
}
