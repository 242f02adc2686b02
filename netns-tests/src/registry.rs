//! An image registry inside a lab namespace: Debian's `docker-registry`
//! (the CNCF distribution registry) on that namespace's loopback, where a
//! daemon in the same namespace pushes and pulls over plain HTTP (Docker
//! treats `127.0.0.0/8` registries as insecure ones without being told).
//! It stands in for Docker Hub, which the lab cannot reach.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cmd;
use crate::lab::Lab;
use crate::netns::Netns;
use crate::process::{Proc, Spawn};

/// How long the registry gets to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running registry; it stops with the lab (or when dropped with it).
pub struct Registry {
    /// Where it listens, inside its namespace.
    pub addr: SocketAddr,
    /// The process.
    pub proc: Proc,
}

impl Registry {
    /// `NAME:TAG` as an image reference on this registry
    /// (`127.0.0.1:5000/NAME:TAG`).
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.addr)
    }
}

/// Starts a registry on `127.0.0.1:port` inside `ns`, storing its blobs in
/// the lab's directory.
pub fn start_registry(lab: &Lab, ns: &Netns, port: u16) -> Result<Registry> {
    let bin = cmd::require_bin("docker-registry")?;
    let dir = lab.subdir(&format!("registry-{port}"))?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n",
            dir.join("data").display()
        ),
    )
    .context("writing the registry's config")?;
    let proc = lab.spawn(
        ns,
        Spawn::new(bin)
            .args(["serve".to_owned(), config.display().to_string()])
            .name(format!("registry-{port}")),
    )?;
    proc.wait_for(
        &format!("the registry on {addr} in {ns} to accept connections"),
        START_TIMEOUT,
        || {
            ns.run_in(|| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok())
                .unwrap_or(false)
        },
    )?;
    Ok(Registry { addr, proc })
}
