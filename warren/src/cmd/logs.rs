//! `warren logs` and `warren exec`: a replica's output and a command run in
//! it, from its node's Docker daemon through the control plane (which
//! reaches every node over the agent's own connection, also behind NAT).

use super::api::{ApiArgs, Client};
use super::Exit;
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::json;
use std::io::{BufRead, Write};
use std::time::Duration;
use warren_control::api::streams::StreamRecord;
use warren_proto::OutputStream;

/// Arguments of `warren logs`.
#[derive(Args)]
#[command(
    about = "Print a service's output: every replica's, through the control plane",
    long_about = "Print the output (stdout and stderr) of a service's replicas, read from each \
        replica's node's Docker daemon through the control plane's connection to the node's \
        agent: a replica on a Raspberry Pi behind NAT is read like one next door.\n\n\
        Without --replica, every replica's lines are printed as they arrive, each prefixed with \
        its replica's id (`web-2 | …`); with --replica, the lines are printed as they are. Lines \
        the container wrote to stderr go to stderr. A replica whose node is down is one line on \
        stderr (`web-2: node pi is down`) and the other replicas are still shown.\n\n\
        --previous shows each replica's last exited container instead of its current one: the \
        output of the run that crashed, which the agent keeps until the next exit replaces it.\n\n\
        --tail and --since apply to each replica's output (Docker counts --since in whole \
        seconds); --follow keeps every stream open until its container stops or warren is \
        interrupted.\n\n\
        Exit status: 0 when every replica could be read; 1 when one could not (its node is \
        down, or it has no exited container for --previous), after showing the others; 4 for \
        a service or replica that does not exist.",
    after_help = "Examples:\n  \
        warren logs web\n  \
        warren logs web --replica web-2 --follow\n  \
        warren logs web --tail 20 --since 10m\n  \
        warren logs web --replica 2 --previous"
)]
pub struct LogsArgs {
    /// The service, as `warren services` lists it.
    service: String,
    /// Only this replica: its id (`web-2`) or number (`2`), as `warren ps` shows.
    #[arg(long, value_name = "ID")]
    replica: Option<String>,
    /// Keep printing new output until the containers stop (or Ctrl-C).
    #[arg(long, short = 'f')]
    follow: bool,
    /// Only the last N lines of each replica's output so far.
    #[arg(long, value_name = "N")]
    tail: Option<u64>,
    /// Only output of the last DURATION (30s, 10m, 2h).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// The last exited (crashed) container of each replica instead of the current one.
    #[arg(long)]
    previous: bool,
    #[command(flatten)]
    api: ApiArgs,
}

/// Arguments of `warren exec`.
#[derive(Args)]
#[command(
    about = "Run a command in a replica, with its exit status",
    long_about = "Run a command in a replica's running container (no TTY, no stdin), through the \
        control plane's connection to the replica's node, and print its output: stdout to \
        stdout, stderr to stderr, line by line as it comes. Without --replica, the first running \
        replica on a connected node is used, so one node being down does not stop it. The \
        command runs as the container's own processes do; interrupting warren does not stop \
        it.\n\n\
        Exit status: the command's own (126 when it cannot be started, as with `docker exec`); \
        1 when it could not be run (its node is down, the container is not running); 4 for a \
        service or replica that does not exist, or a service without a running replica.",
    after_help = "Examples:\n  \
        warren exec web -- cat /etc/hostname\n  \
        warren exec web --replica web-2 -- sh -c 'ls /www; exit 3'"
)]
pub struct ExecArgs {
    /// The service, as `warren services` lists it.
    service: String,
    /// The replica to run in: its id (`web-2`) or number (`2`).
    #[arg(long, value_name = "ID")]
    replica: Option<String>,
    /// The command and its arguments (after `--`), run without a shell.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
    #[command(flatten)]
    api: ApiArgs,
}

/// Runs `warren logs`.
pub fn logs(args: LogsArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let mut query = Vec::new();
    if let Some(replica) = &args.replica {
        query.push(format!("replica={}", encode(replica)));
    }
    if args.follow {
        query.push("follow=true".to_owned());
    }
    if let Some(tail) = args.tail {
        query.push(format!("tail={tail}"));
    }
    if let Some(since) = args.since {
        query.push(format!("since={}", since.as_secs().max(1)));
    }
    if args.previous {
        query.push("previous=true".to_owned());
    }
    let mut path = format!("/v1/services/{}/logs", encode(&args.service));
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let answer = client.stream("GET", &path, None)?;
    let prefix = args.replica.is_none();
    let mut failed = false;
    for record in records(answer) {
        match record? {
            StreamRecord::Line {
                replica,
                stream,
                text,
            } => {
                let line = if prefix {
                    format!("{replica} | {text}")
                } else {
                    text
                };
                print_line(stream, &line)?;
            }
            StreamRecord::Down { replica, node } => {
                failed = true;
                eprintln!("{replica}: node {} is down", printable(&node));
            }
            StreamRecord::Error { replica, reason } => {
                failed = true;
                eprintln!("{replica}: {}", printable(&reason));
            }
            _ => {}
        }
    }
    if failed {
        // Each replica that could not be read already has its line.
        return Err(Exit::silent(1).into());
    }
    Ok(())
}

/// Runs `warren exec`: exits with the command's exit status.
pub fn exec(args: ExecArgs) -> Result<()> {
    let client = Client::new(&args.api)?;
    let path = format!("/v1/services/{}/exec", encode(&args.service));
    let body = json!({ "replica": args.replica, "command": args.command });
    let answer = client.stream("POST", &path, Some(body))?;
    for record in records(answer) {
        match record? {
            StreamRecord::Line { stream, text, .. } => print_line(stream, &text)?,
            StreamRecord::Exit { code: 0, .. } => return Ok(()),
            StreamRecord::Exit { code, .. } => {
                return Err(Exit::silent(u8::try_from(code).unwrap_or(1)).into());
            }
            StreamRecord::Error { replica, reason } => {
                bail!("{replica}: {}", printable(&reason))
            }
            StreamRecord::Down { replica, node } => {
                bail!("{replica}: node {} is down", printable(&node))
            }
            _ => {}
        }
    }
    bail!("the answer ended before the command's exit status (the control plane stopped?)")
}

/// The records of a newline-delimited JSON answer, as they arrive.
fn records(answer: impl BufRead) -> impl Iterator<Item = Result<StreamRecord>> {
    answer
        .lines()
        .filter(|line| !matches!(line, Ok(line) if line.trim().is_empty()))
        .map(|line| {
            let line = line.context("reading the admin API's answer")?;
            serde_json::from_str(&line)
                .context("the admin API's answer is not what this warren expects")
        })
}

/// Prints `line` where its stream goes (a closed stdout ends the command).
fn print_line(stream: OutputStream, line: &str) -> Result<()> {
    match stream {
        OutputStream::Stderr => {
            let _ = writeln!(std::io::stderr(), "{line}");
            Ok(())
        }
        OutputStream::Stdout => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}")
                .and_then(|()| out.flush())
                .context("writing to stdout")
        }
    }
}

/// `text` for a URL path segment or query value: unreserved characters as
/// they are, every other byte percent-encoded.
fn encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `text` without control characters, so a node's message cannot drive the
/// terminal it is printed on.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_percent_encoded() {
        assert_eq!(encode("web-2"), "web-2");
        assert_eq!(encode("a b/c?d&e"), "a%20b%2Fc%3Fd%26e");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn records_are_read_line_by_line_and_junk_is_an_error() {
        let answer = b"{\"kind\":\"down\",\"replica\":\"web-2\",\"node\":\"pi\"}\n\n{\"kind\":\"exit\",\"replica\":\"web-1\",\"code\":3}\nnope\n";
        let read: Vec<Result<StreamRecord>> = records(&answer[..]).collect();
        assert_eq!(read.len(), 3);
        assert!(matches!(&read[0], Ok(StreamRecord::Down { node, .. }) if node == "pi"));
        assert!(matches!(&read[1], Ok(StreamRecord::Exit { code: 3, .. })));
        assert!(read[2].is_err());
        assert_eq!(printable("x\u{1b}[2Jy"), "x?[2Jy");
    }
}
