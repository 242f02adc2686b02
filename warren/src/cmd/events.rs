//! `warren events`: what happened to the cluster's nodes and replicas, from
//! the control plane's record of its last 10,000 events, and as it happens.

use super::api::{ApiArgs, Client};
use anyhow::Result;
use clap::Args;
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};
use warren_control::events::Event;

/// How long one request of `--follow` waits for the next event (under the
/// CLI's 30 s request timeout).
const FOLLOW_WAIT_SECS: u32 = 20;

/// Arguments of `warren events`.
#[derive(Args)]
#[command(
    about = "Show what happened to the cluster's nodes and replicas",
    long_about = "Show the cluster's last events, oldest first: nodes going offline, coming \
        back, lost (their replicas rescheduled elsewhere), drained and activated; replicas \
        placed, started, healthy, unhealthy and removed. The control plane keeps the last \
        10,000. With --follow, keep printing events as they happen until interrupted.",
    after_help = "Examples:\n  warren events\n  warren events --follow\n  \
        warren events --json --follow | jq -c 'select(.kind == \"node_offline\")'"
)]
pub struct EventsArgs {
    /// How many of the last events to show first.
    #[arg(long, short = 'n', default_value_t = 50, value_name = "N")]
    limit: u32,
    /// Keep printing events as they happen.
    #[arg(long, short = 'f')]
    follow: bool,
    /// Print each event as a JSON object on a line of its own:
    /// {"id","at_ms","kind",...} with the kind's fields (node, service,
    /// replica, generation, replicas).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs `warren events`.
pub fn run(args: EventsArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let listed: Value = client.call("GET", &format!("/v1/events?limit={}", args.limit), None)?;
    let mut last = print(&listed, args.json)?;
    if !args.follow {
        return Ok(());
    }
    loop {
        let path = format!("/v1/events?after={last}&limit=1000&wait={FOLLOW_WAIT_SECS}");
        let listed: Value = client.call("GET", &path, None)?;
        last = print(&listed, args.json)?.max(last);
    }
}

/// Prints the events of an answer; returns the id to follow from (the
/// latest one the answer knows of).
fn print(listed: &Value, json: bool) -> Result<u64> {
    let events: Vec<Event> = serde_json::from_value(listed["events"].clone())?;
    for event in &events {
        if json {
            println!("{}", serde_json::to_string(event)?);
        } else {
            println!("{}", line(event));
        }
    }
    let last = listed["last"].as_u64().unwrap_or_default();
    Ok(events.last().map_or(last, |e| e.id.max(last)))
}

/// `2026-12-01T19:40:01.123Z  node_offline       vm: offline, …`.
fn line(event: &Event) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(event.at_ms);
    format!(
        "{}  {:<18} {}",
        humantime::format_rfc3339_millis(at),
        event.what.kind(),
        event.what.describe()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_control::events::What;

    #[test]
    fn a_line_has_the_time_the_kind_and_what_happened() {
        let event = Event {
            id: 1,
            at_ms: 1_800_000_000_123,
            what: What::NodeOffline {
                node: "vm".to_owned(),
            },
        };
        assert_eq!(
            line(&event),
            "2027-01-15T08:00:00.123Z  node_offline       vm: offline, the proxy stops routing to it"
        );
    }
}
