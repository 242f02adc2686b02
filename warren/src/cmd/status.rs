//! `warren status`: this machine's own view of the mesh, from the status
//! file its agent (or control plane) keeps in the data directory. Needs no
//! admin credential.

use super::fmt;
use super::table::{
    Align::{Left, Right},
    Table,
};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;
use warren_proto::{Status, STATUS_FILE};

/// A status older than this means the agent is not running.
const STALE_SECS: u64 = 30;

/// Arguments of `warren status`.
#[derive(Args)]
#[command(
    about = "This machine's own view: who it is, and how it reaches each peer",
    long_about = "Show this machine's own view: its name, mesh address and join mode, whether \
        it is connected to the control plane, and how it reaches each peer (direct or \
        relayed, endpoint, round-trip time, last handshake, bytes). Read from the status file \
        the running agent (or control plane) refreshes every 5 seconds in --data-dir; no admin \
        credential is needed.",
    after_help = "Examples:\n  warren status\n  warren status --json | jq '.peers[] | {name, kind}'"
)]
pub struct StatusArgs {
    /// Print the status file's JSON: {"name","mesh_ip","mode","iface","control_connected","updated","peers":[…]}.
    #[arg(long)]
    json: bool,
    /// The data directory `warren join` (or `warren serve`) uses.
    #[arg(long, value_name = "DIR", env = "WARREN_DATA_DIR", default_value = super::serve::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
}

/// Runs `warren status`.
pub fn run(args: StatusArgs) -> Result<()> {
    let candidates = [
        args.data_dir.join("agent").join(STATUS_FILE),
        args.data_dir.join(STATUS_FILE),
    ];
    let Some(path) = candidates.iter().find(|p| p.exists()) else {
        bail!(
            "no status in {}: this machine has not joined a cluster (warren join), or uses another --data-dir",
            args.data_dir.display()
        );
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let status: Status = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a warren status file", path.display()))?;
    if args.json {
        println!("{text}");
        return Ok(());
    }
    print!("{}", render(&status, warren_os::unix_now()));
    Ok(())
}

fn render(status: &Status, now: u64) -> String {
    let age = now.saturating_sub(status.updated);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node     {} ({}, {}) on {}",
        status.name, status.mesh_ip, status.mode, status.iface
    );
    let state = if age > STALE_SECS {
        format!(
            "unknown: the agent last wrote this {} (is it running?)",
            fmt::ago(age)
        )
    } else if status.control_connected {
        "connected".to_owned()
    } else {
        "disconnected (the mesh keeps running; the agent reconnects)".to_owned()
    };
    let _ = writeln!(out, "control  {state}");
    out.push('\n');
    if status.peers.is_empty() {
        out.push_str("no peers yet\n");
        return out;
    }
    let mut peers = Table::new([
        ("PEER", Left),
        ("MESH IP", Left),
        ("PATH", Left),
        ("ENDPOINT", Left),
        ("RTT", Right),
        ("HANDSHAKE", Right),
    ]);
    for peer in &status.peers {
        peers.row([
            &peer.name,
            &peer.mesh_ip,
            &peer.path.kind,
            &fmt::or_dash(peer.path.endpoint),
            &fmt::rtt(peer.path.rtt_ms),
            &fmt::ago_or_never(peer.path.last_handshake_secs),
        ]);
    }
    out.push_str(&peers.to_string());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::{PathReport, PeerStatus};

    #[test]
    fn the_view_says_who_this_is_and_how_each_peer_is_reached() {
        let status = Status {
            name: "pi".to_owned(),
            mesh_ip: "100.96.0.2".parse().unwrap(),
            mode: warren_proto::Mode::Relay,
            iface: "warren0".to_owned(),
            control_connected: true,
            updated: 1000,
            peers: vec![PeerStatus {
                name: "control".to_owned(),
                mesh_ip: "100.96.0.1".parse().unwrap(),
                path: PathReport {
                    public_key: warren_wire::PublicKey::from_bytes([1; 32]),
                    kind: warren_proto::PathKind::Relayed,
                    endpoint: Some("203.0.113.1:3478".parse().unwrap()),
                    rtt_ms: Some(0.5),
                    last_handshake_secs: Some(7),
                    tx_bytes: 1,
                    rx_bytes: 2,
                },
            }],
        };
        let mut long = status.clone();
        long.peers.push(PeerStatus {
            name: "build-server-eu-west-2a".to_owned(),
            mesh_ip: "100.96.0.14".parse().unwrap(),
            path: PathReport {
                public_key: warren_wire::PublicKey::from_bytes([2; 32]),
                kind: warren_proto::PathKind::None,
                endpoint: None,
                rtt_ms: None,
                last_handshake_secs: None,
                tx_bytes: 0,
                rx_bytes: 0,
            },
        });
        assert_eq!(
            render(&long, 1003),
            "node     pi (100.96.0.2, relay) on warren0\n\
             control  connected\n\
             \n\
             PEER                     MESH IP      PATH     ENDPOINT              RTT  HANDSHAKE\n\
             control                  100.96.0.1   relayed  203.0.113.1:3478  0.50 ms     7s ago\n\
             build-server-eu-west-2a  100.96.0.14  none     -                       -      never\n"
        );
        let text = render(&status, 1003);
        assert!(
            text.starts_with("node     pi (100.96.0.2, relay) on warren0\ncontrol  connected\n"),
            "{text}"
        );
        let last: Vec<&str> = text.lines().last().unwrap().split_whitespace().collect();
        assert_eq!(
            last,
            [
                "control",
                "100.96.0.1",
                "relayed",
                "203.0.113.1:3478",
                "0.50",
                "ms",
                "7s",
                "ago"
            ]
        );
        assert!(render(&status, 2000)
            .contains("control  unknown: the agent last wrote this 1000s ago (is it running?)\n"));
    }
}
