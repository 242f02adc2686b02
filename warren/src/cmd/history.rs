//! `warren history` and `warren rollback`: a service's generations, and an
//! earlier one's spec deployed again.

use super::api::{ApiArgs, Client};
use super::table::{
    Align::{Left, Right},
    Table,
};
use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};
use std::time::{Duration, UNIX_EPOCH};
use warren_control::api::workloads::{Deployed, Generation};
use warren_control::store::Outcome;

/// Arguments of `warren history`.
#[derive(Args)]
#[command(
    about = "List a service's generations: when, what changed, how the rollout went",
    long_about = "List a service's generations, oldest first. A generation is made by each \
        deploy that changes the spec (scaling does not); its rollout replaces the replicas of \
        the older ones one by one, each old one going once a new one is healthy. OUTCOME is \
        `completed` (every replica of it healthy, no older one left), `rolling out`, \
        `superseded` (a newer generation came before it completed), `rolled back` (it missed \
        its --healthy-deadline and the last completed generation's spec was deployed again) or \
        `failed` (it missed its deadline and was not rolled back).",
    after_help = "Examples:\n  warren history web\n  warren history web --json | jq '.generations[-1]'"
)]
pub struct HistoryArgs {
    /// The service.
    name: String,
    /// Print JSON: {"service","generations":[{"generation","created","changed","outcome","finished","note","image"}]}.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `warren rollback`.
#[derive(Args)]
#[command(
    about = "Deploy an earlier generation's spec again",
    long_about = "Deploy the spec of an earlier generation of a service again (the one before \
        the current by default), at the service's current replica count. It is a new \
        generation, rolled out like any deploy: its replicas replace the current ones one by \
        one, each current one going once a new one is healthy. `warren history` shows it as \
        `rollback to N`.",
    after_help = "Examples:\n  warren rollback web --wait\n  warren rollback web --to 3"
)]
pub struct RollbackArgs {
    /// The service.
    name: String,
    /// The generation whose spec to deploy (default: the one before the current).
    #[arg(long, value_name = "GENERATION")]
    to: Option<u64>,
    /// Wait until every replica of the new generation is healthy and the
    /// older ones are gone.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration, requires = "wait")]
    wait_timeout: Duration,
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs `warren history`.
pub fn history(args: HistoryArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let listed: Value = client.call("GET", &format!("/v1/services/{}/history", args.name), None)?;
    if args.json {
        println!("{listed}");
        return Ok(());
    }
    let generations: Vec<Generation> = serde_json::from_value(listed["generations"].clone())?;
    print!("{}", table(&generations));
    Ok(())
}

/// Runs `warren rollback`.
pub fn rollback(args: RollbackArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let body = json!({ "to": args.to });
    let path = format!("/v1/services/{}/rollback", args.name);
    let deployed: Deployed = client.call("POST", &path, Some(body))?;
    eprintln!(
        "rolling back {}: generation {}, {} replicas",
        deployed.service,
        deployed.generation,
        deployed.replicas.len()
    );
    if args.wait {
        super::services::wait_healthy(&client, &args.name, args.wait_timeout)?;
    }
    Ok(())
}

/// The human table of `warren history`.
fn table(generations: &[Generation]) -> String {
    let mut table = Table::new([
        ("GEN", Right),
        ("DEPLOYED", Left),
        ("IMAGE", Left),
        ("CHANGED", Left),
        ("OUTCOME", Left),
    ]);
    for g in generations {
        let deployed =
            humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(g.created));
        let changed = match (&g.note, g.changed.is_empty()) {
            (Some(note), _) => format!("{note}: {}", g.changed.join(", ")),
            (None, true) => "-".to_owned(),
            (None, false) => g.changed.join(", "),
        };
        let outcome = match g.outcome {
            Outcome::RollingOut => "rolling out",
            Outcome::Completed => "completed",
            Outcome::Superseded => "superseded",
            Outcome::RolledBack => "rolled back",
            Outcome::Failed => "failed",
        };
        table.row([
            &g.generation.to_string(),
            &deployed.to_string(),
            &g.image,
            &changed,
            &outcome.to_owned(),
        ]);
    }
    table.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_says_what_changed_and_how_each_rollout_went() {
        let generation = |n, changed: &[&str], outcome, note: Option<&str>| Generation {
            generation: n,
            created: 1_800_000_000 + n,
            changed: changed.iter().map(|c| (*c).to_owned()).collect(),
            outcome,
            finished: None,
            note: note.map(str::to_owned),
            image: "local/busybox:1".to_owned(),
        };
        let text = table(&[
            generation(1, &[], Outcome::Completed, None),
            generation(2, &["command"], Outcome::Completed, None),
            generation(3, &["command"], Outcome::RollingOut, Some("rollback to 1")),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("GEN"), "{text}");
        assert!(
            lines[1].contains("2027-01-15T08:00:01Z") && lines[1].ends_with("completed"),
            "{text}"
        );
        assert!(
            lines[2].contains("command") && lines[2].contains("completed"),
            "{text}"
        );
        assert!(
            lines[3].contains("rollback to 1: command") && lines[3].ends_with("rolling out"),
            "{text}"
        );
    }
}
