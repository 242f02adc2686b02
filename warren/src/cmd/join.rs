//! `warren join`: run the agent in the foreground.

use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use warren_agent::{JoinMode, JoinOptions};
use warren_wire::JoinToken;

/// Arguments of `warren join`.
#[derive(Args)]
#[command(
    about = "Join this machine to a cluster (runs the agent in the foreground)",
    long_about = "Join this machine to a warren cluster and keep it in the mesh (runs in the foreground).\n\n\
        The first time, it needs a join token from `warren token create`: it creates this \
        node's WireGuard key in --data-dir, connects to the control plane (checking its \
        certificate against the token), receives its mesh address, the peer map and its relay \
        ticket, brings up the mesh interface and prints `joined NAME MESH-IP (MODE)` once the \
        mesh works. Later starts with the same --data-dir rejoin with the stored credential, \
        keeping the name and mesh address; no token is needed.\n\n\
        --direct: the machine is on a private network (a VPC) where the other direct nodes \
        reach it at --private-address. --relay: the machine is behind NAT; it is reached \
        through the relays until NAT traversal finds a direct path.\n\n\
        Stops on SIGINT or SIGTERM, removing the interface.",
    after_help = "Examples:\n  \
        warren join --relay --token-file /etc/warren/token                # a home server\n  \
        warren join --direct --private-address 10.0.0.5 --token warren-join-1:…\n  \
        warren join --relay                                               # rejoin after a restart"
)]
pub struct JoinArgs {
    /// Join from behind NAT, through relays.
    #[arg(long, conflicts_with = "direct", required_unless_present = "direct")]
    relay: bool,
    /// Join on a private network, reachable at --private-address.
    #[arg(long, requires = "private_address")]
    direct: bool,
    /// This machine's address on its private network (with --direct).
    #[arg(long, value_name = "IP")]
    private_address: Option<IpAddr>,
    /// The join token (only for the first join). It stays visible in the
    /// process list while the agent runs: prefer --token-file or
    /// WARREN_TOKEN.
    #[arg(long, value_name = "TOKEN", env = "WARREN_TOKEN")]
    token: Option<String>,
    /// Read the join token from FILE (`-`: standard input), so it is not in
    /// the agent's command line.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// The node's name (default: the hostname).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Where the node's key and state live.
    #[arg(long, value_name = "DIR", env = "WARREN_DATA_DIR", default_value = super::serve::DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The WireGuard UDP port.
    #[arg(long, value_name = "PORT", default_value_t = 51820)]
    wg_port: u16,
    /// The mesh interface's name.
    #[arg(long, value_name = "NAME", default_value = "warren0")]
    iface: String,
    /// The node's Docker daemon, as a unix socket (`unix:///var/run/docker.sock`):
    /// the node runs the replicas the control plane places on it.
    #[arg(long, value_name = "URL", env = "WARREN_DOCKER_HOST")]
    docker_host: Option<String>,
    /// CPU cores offered to replicas (default: all the node's), e.g. 1.5.
    #[arg(long, value_name = "CORES", value_parser = parse_cores)]
    capacity_cpu: Option<u64>,
    /// Memory offered to replicas (default: all the node's), e.g. 2G.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    capacity_memory: Option<u64>,
}

/// The join token in `file` (`-`: standard input), without surrounding
/// whitespace.
fn read_token(file: &Path) -> Result<String> {
    let text = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the join token from standard input")?;
        text
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("reading the join token from {}", file.display()))?
    };
    let token = text.trim();
    if token.is_empty() {
        bail!("{} holds no join token", file.display());
    }
    Ok(token.to_owned())
}

fn parse_cores(text: &str) -> Result<u64, String> {
    warren_proto::service::parse_cpu(text)
        .map(u64::from)
        .ok_or_else(|| format!("{text:?} is not a number of cores (1, 0.5, 250m)"))
}

fn parse_memory(text: &str) -> Result<u64, String> {
    warren_proto::service::parse_size(text)
        .ok_or_else(|| format!("{text:?} is not a size (512M, 2G)"))
}

/// Runs `warren join`.
pub fn run(args: JoinArgs) -> Result<()> {
    let text = match (&args.token, &args.token_file) {
        (Some(text), _) => Some(text.clone()),
        (None, Some(file)) => Some(read_token(file)?),
        (None, None) => None,
    };
    let token = match text {
        Some(text) => Some(text.trim().parse::<JoinToken>()?),
        None => None,
    };
    let mode = match (args.direct, args.private_address) {
        (true, Some(ip)) => JoinMode::Direct(ip),
        (true, None) => bail!("--direct needs --private-address"),
        (false, _) => JoinMode::Relay,
    };
    let name = match args.name {
        Some(name) => name,
        None => hostname().context("reading the hostname (or pass --name)")?,
    };
    let options = JoinOptions {
        data_dir: args.data_dir,
        token,
        mode,
        name,
        wg_port: args.wg_port,
        iface: args.iface,
        docker_host: args.docker_host,
        capacity_cpu: args.capacity_cpu,
        capacity_memory: args.capacity_memory,
    };
    super::until_signal(|shutdown| {
        warren_agent::run(
            options,
            |usable| {
                println!(
                    "joined {} {} ({})",
                    usable.name, usable.mesh_ip, usable.mode
                );
                if !usable.control_connected {
                    println!("the control plane is unreachable: the mesh runs from the stored peer map, reconnecting");
                }
            },
            shutdown,
        )
    })
}

/// The machine's hostname, lowercased (node names are DNS labels).
fn hostname() -> Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")?;
    Ok(name.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_read_trimmed_and_an_empty_one_refused() {
        let dir = std::env::temp_dir().join(format!("warren-token-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "  warren-join-1:abc\n\n").unwrap();
        assert_eq!(read_token(&file).unwrap(), "warren-join-1:abc");
        std::fs::write(&file, "\n").unwrap();
        let empty = read_token(&file).unwrap_err().to_string();
        assert!(empty.ends_with("holds no join token"), "{empty}");
        let missing = read_token(&dir.join("nope")).unwrap_err().to_string();
        assert!(
            missing.starts_with("reading the join token from"),
            "{missing}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
