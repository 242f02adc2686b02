//! `warren leave`: run on a node, drains it and removes it from the
//! cluster, through the node's own agent (no admin credential needed).

use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warren_agent::leave::{self, Answer};

/// Arguments of `warren leave`.
#[derive(Args)]
#[command(
    about = "Drain this node and remove it from the cluster",
    long_about = "Run on a node: drain it and remove it from the cluster. Its agent asks the \
        control plane, which places each of the node's replicas on another node and stops \
        it once its replacement is healthy (as `warren node drain` does); then the node is \
        removed (as `warren node rm` does: its credential stops working and its mesh address \
        is freed) and the agent stops and exits. Progress goes to stderr. Talks to the agent \
        through a socket in --data-dir, so it needs no admin credential, only the rights to \
        that directory (root). To come back, join again with a new token.",
    after_help = "Examples:\n  sudo warren leave\n  sudo warren leave --timeout 10m"
)]
pub struct LeaveArgs {
    /// The data directory `warren join` uses.
    #[arg(long, value_name = "DIR", env = "WARREN_DATA_DIR", default_value = super::serve::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// How long to wait for the replicas to move and the node to go.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// Runs `warren leave`.
pub fn run(args: LeaveArgs) -> Result<()> {
    let path = leave::socket_path(&args.data_dir);
    let mut stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "no agent runs with --data-dir {} (its socket {} is not there)",
            args.data_dir.display(),
            path.display()
        )
    })?;
    writeln!(stream, "{}", leave::REQUEST).context("asking the agent")?;
    let deadline = Instant::now() + args.timeout;
    let mut lines = BufReader::new(stream.try_clone().context("reading the agent")?);
    let mut line = String::new();
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(super::Exit::new(
                5,
                format!(
                    "the node still runs {} replica(s) after {}: see `warren services` for why they cannot move",
                    last.unwrap_or(0),
                    humantime::format_duration(args.timeout)
                ),
            )
            .into());
        }
        stream.set_read_timeout(Some(left))?;
        line.clear();
        match lines.read_line(&mut line) {
            // The agent exits once the node is removed.
            Ok(0) => break,
            Ok(_) => {}
            // The read timed out: the deadline is checked again.
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(error) => return Err(error).context("reading the agent"),
        }
        match Answer::parse(&line) {
            Some(Answer::Leaving) => {
                eprintln!("leaving the cluster: the replicas on this node move first")
            }
            Some(Answer::Unreachable) => {
                bail!("the agent is not connected to the control plane now; try again once it is (see `warren status`)")
            }
            Some(Answer::Replicas(count)) if last != Some(count) => {
                eprintln!("{count} replica(s) still on this node");
                last = Some(count);
            }
            Some(Answer::Replicas(_)) => {}
            None => bail!("the agent answered {:?}", line.trim_end()),
        }
    }
    eprintln!("left the cluster: this node was removed and its agent stopped");
    Ok(())
}
