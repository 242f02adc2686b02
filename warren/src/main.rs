//! `warren`: the one binary of the warren cluster fabric.
//!
//! This file only parses the command line, sets up logging and maps errors
//! to one line on stderr and a non-zero exit; each command lives in `cmd/`.

mod cmd;
mod log_writer;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// warren — a cluster fabric on a userspace WireGuard mesh.
///
/// warren joins a handful of machines (VPSes, VMs in a VPC, a Raspberry Pi
/// behind NAT) into one private mesh network, with no kernel module needed.
#[derive(Parser)]
#[command(
    name = "warren",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Logging: set WARREN_LOG (e.g. WARREN_LOG=debug) to change the log level.\n\
See `warren <command> --help` for each command."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The commands. Those without a doc comment here have a manual of their
/// own (`about` and `long_about` on their arguments): a doc comment on the
/// variant would replace it, and `--help` would show one line.
#[derive(Subcommand)]
enum Command {
    Serve(Box<cmd::serve::ServeArgs>),
    Join(cmd::join::JoinArgs),
    Mesh(cmd::mesh::MeshArgs),
    /// Ping a node through the mesh, showing the path each reply took.
    Ping(cmd::mesh::PingArgs),
    Status(cmd::status::StatusArgs),
    /// List the cluster's nodes.
    Nodes(cmd::nodes::NodesArgs),
    /// Manage one node: drain it for maintenance, activate it again, set
    /// its labels, or remove it (`warren node drain|activate|label|rm`).
    Node(cmd::nodes::NodeArgs),
    Leave(cmd::leave::LeaveArgs),
    Events(cmd::events::EventsArgs),
    Deploy(Box<cmd::services::DeployArgs>),
    /// List the services: desired, running and healthy replicas.
    Services(cmd::services::ServicesArgs),
    /// List the replicas: where each runs and answers, and how it is.
    Ps(cmd::services::PsArgs),
    /// Set a service's replica count.
    Scale(cmd::services::ScaleArgs),
    /// Remove a service and its replicas.
    Rm(cmd::services::RmArgs),
    History(cmd::history::HistoryArgs),
    Rollback(cmd::history::RollbackArgs),
    Logs(cmd::logs::LogsArgs),
    Routes(cmd::routes::RoutesArgs),
    Proxy(cmd::proxy::ProxyArgs),
    Cert(cmd::cert::CertArgs),
    Exec(cmd::logs::ExecArgs),
    Token(cmd::token::TokenArgs),
    /// Print the public key standalone relays trust (`warren relay --control-key`).
    ControlKey(cmd::serve::ControlKeyArgs),
    /// Run or inspect a userspace WireGuard interface.
    #[command(subcommand)]
    Device(cmd::device::DeviceCommand),
    Relay(cmd::relay::RelayArgs),
    /// Print a new random WireGuard private key (base64), like `wg genkey`.
    Genkey,
    /// Read a private key (base64) on stdin and print its public key, like `wg pubkey`.
    Pubkey,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return refused_arguments(error),
    };
    let log = init_logging();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(*args),
        Command::Token(args) => cmd::token::run(args),
        Command::Join(args) => cmd::join::run(args),
        Command::Nodes(args) => cmd::nodes::list(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Mesh(args) => cmd::mesh::run(args),
        Command::Ping(args) => cmd::mesh::ping(args),
        Command::Node(args) => cmd::nodes::node(args),
        Command::Leave(args) => cmd::leave::run(args),
        Command::Events(args) => cmd::events::run(args),
        Command::Deploy(args) => cmd::services::deploy(*args),
        Command::Services(args) => cmd::services::services(args),
        Command::Ps(args) => cmd::services::ps(args),
        Command::Scale(args) => cmd::services::scale(args),
        Command::Rm(args) => cmd::services::rm(args),
        Command::History(args) => cmd::history::history(args),
        Command::Rollback(args) => cmd::history::rollback(args),
        Command::Logs(args) => cmd::logs::logs(args),
        Command::Routes(args) => cmd::routes::run(args),
        Command::Proxy(args) => cmd::proxy::run(args),
        Command::Cert(args) => cmd::cert::run(args),
        Command::Exec(args) => cmd::logs::exec(args),
        Command::ControlKey(args) => cmd::serve::control_key(args),
        Command::Device(command) => cmd::device::run(command),
        Command::Relay(args) => cmd::relay::run(args),
        Command::Genkey => cmd::keys::genkey(),
        Command::Pubkey => cmd::keys::pubkey(),
    };
    // What was logged is written before the error line, in order.
    drop(log);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if !cmd::is_silent(&error) {
                eprintln!("warren: error: {}", one_line(&error));
            }
            ExitCode::from(cmd::exit_status(&error))
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the
/// line already holds (library errors often name their cause in their own
/// message too).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

/// Logs to stderr through the batching writer (straight to stderr if its
/// thread cannot start); the guard writes what is queued when `main` ends.
fn init_logging() -> Option<log_writer::LogFlush> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal());
    match log_writer::BatchedStderr::start() {
        Some((writer, flush)) => {
            logs.with_writer(writer).init();
            Some(flush)
        }
        None => {
            logs.with_writer(std::io::stderr).init();
            None
        }
    }
}

/// A command line clap refused: a value that is not what its flag takes
/// (`--port abc`) is input refused like any other, one line and exit 4;
/// everything else (help, version, unknown flags, usage) as clap has it.
fn refused_arguments(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::InvalidUtf8 => {
            let text = error.to_string();
            let line = text.lines().next().unwrap_or_default();
            eprintln!("warren: {}", line.trim());
            ExitCode::from(4)
        }
        _ => error.exit(),
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every command with a manual of its own shows it on `--help` (a doc
    /// comment on its variant would cut it to one line).
    #[test]
    fn commands_with_a_manual_show_it_on_help() {
        let mut cli = Cli::command();
        for name in [
            "serve", "join", "mesh", "status", "deploy", "token", "relay", "logs", "exec",
        ] {
            let command = cli
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no command {name}"));
            let manual = command
                .get_long_about()
                .unwrap_or_else(|| panic!("{name} has no manual"))
                .to_string();
            let help = command.render_long_help().to_string();
            // The manual's opening words (the rendering rewraps the rest).
            let opening: String = manual.chars().take(40).collect();
            assert!(help.starts_with(&opening), "{name} --help lost its manual");
        }
    }
}
