//! `warren`: the one binary of the warren cluster fabric.
//!
//! This file only parses the command line, sets up logging and maps errors
//! to one line on stderr and a non-zero exit; each command lives in `cmd/`.

mod cmd;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

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

#[derive(Subcommand)]
enum Command {
    /// Run or inspect a userspace WireGuard interface.
    #[command(subcommand)]
    Device(cmd::device::DeviceCommand),
    /// Run a relay, or make its keys and tickets.
    Relay(cmd::relay::RelayArgs),
    /// Print a new random WireGuard private key (base64), like `wg genkey`.
    Genkey,
    /// Read a private key (base64) on stdin and print its public key, like `wg pubkey`.
    Pubkey,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Device(command) => cmd::device::run(command),
        Command::Relay(args) => cmd::relay::run(args),
        Command::Genkey => cmd::keys::genkey(),
        Command::Pubkey => cmd::keys::pubkey(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("warren: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
