//! A handle on one network namespace of a lab, with the few configuration
//! commands tests need, and [`Netns::run_in`] / [`Netns::spawn_thread`] to run
//! Rust code of the test process inside the namespace.
//!
//! A [`Netns`] is only a name: the [`crate::Lab`] that created it deletes the
//! namespace when it is dropped, so a handle may be cloned freely.

use std::ffi::OsStr;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};

use crate::cmd;

/// Next explicit veth interface index (see [`Netns::veth_to`]).
static VETH_INDEX: AtomicU32 = AtomicU32::new(0);

/// Directory where `ip netns` keeps its namespace handles.
pub const NETNS_DIR: &str = "/var/run/netns";

/// A named network namespace (`ip netns` style, a file in [`NETNS_DIR`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Netns {
    name: String,
}

impl std::fmt::Display for Netns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Netns {
    /// A handle on an existing namespace called `name`; nothing is created.
    pub fn from_name(name: impl Into<String>) -> Netns {
        Netns { name: name.into() }
    }

    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/var/run/netns/NAME`, for `nsenter --net=` and `setns`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// A [`Command`] that runs `prog` inside the namespace (`ip netns exec`).
    pub fn command(&self, prog: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(prog);
        c
    }

    /// Runs `args` (program first) inside the namespace and returns stdout;
    /// a failure carries the command line and stderr.
    pub fn exec<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(args);
        cmd::run(&mut c)
    }

    /// Runs `ip -n NAME ARGS...` and returns stdout.
    pub fn ip<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new("ip");
        c.args(["-n", &self.name]).args(args);
        cmd::run(&mut c)
    }

    /// Runs `iptables -w ARGS...` inside the namespace.
    pub fn iptables<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command("iptables");
        c.arg("-w").args(args);
        cmd::run(&mut c)
    }

    /// Sets a sysctl of this namespace (`sysctl -qw KEY=VALUE` inside it).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec(["sysctl", "-qw", &format!("{key}={value}")])
            .map(drop)
    }

    /// Reads a sysctl of this namespace.
    pub fn sysctl_get(&self, key: &str) -> Result<String> {
        Ok(self.exec(["sysctl", "-n", key])?.trim().to_owned())
    }

    /// Adds an address (`"10.0.0.1/24"`) to `iface`.
    pub fn add_addr(&self, iface: &str, cidr: &str) -> Result<()> {
        self.ip(["addr", "add", cidr, "dev", iface]).map(drop)
    }

    /// Brings `iface` up.
    pub fn link_up(&self, iface: &str) -> Result<()> {
        self.ip(["link", "set", iface, "up"]).map(drop)
    }

    /// Sets the MTU of `iface`.
    pub fn set_mtu(&self, iface: &str, mtu: u32) -> Result<()> {
        self.ip(["link", "set", iface, "mtu", &mtu.to_string()])
            .map(drop)
    }

    /// Adds a default route via `gateway`.
    pub fn default_route(&self, gateway: Ipv4Addr) -> Result<()> {
        self.ip(["route", "add", "default", "via", &gateway.to_string()])
            .map(drop)
    }

    /// Adds a route to `dst` (a CIDR) via `gateway`.
    pub fn add_route(&self, dst: &str, gateway: Ipv4Addr) -> Result<()> {
        self.ip(["route", "add", dst, "via", &gateway.to_string()])
            .map(drop)
    }

    /// Creates a veth pair with `local_if` in this namespace and `remote_if`
    /// in `remote`, directly inside the namespaces (nothing touches the root
    /// namespace). Both ends stay down.
    ///
    /// The two ends get distinct, explicit interface indexes: the kernel
    /// starts transmitting on the end brought up first only when its
    /// link-watch work runs, which it does at once for a stacked device whose
    /// index differs from its peer's but up to a second later otherwise (two
    /// fresh namespaces' first interfaces would both be index 2).
    pub fn veth_to(&self, local_if: &str, remote: &Netns, remote_if: &str) -> Result<()> {
        let mut last = None;
        for _ in 0..4 {
            let i = VETH_INDEX.fetch_add(2, Ordering::Relaxed) % 1_000_000 + 1_000;
            let r = self.ip([
                "link",
                "add",
                local_if,
                "index",
                &i.to_string(),
                "type",
                "veth",
                "peer",
                "name",
                remote_if,
                "netns",
                remote.name(),
                "index",
                &(i + 1).to_string(),
            ]);
            match r {
                Ok(_) => return Ok(()),
                // An index already taken in one of the namespaces reads the
                // same as a name taken: retry with other indexes.
                Err(e) if format!("{e:#}").contains("File exists") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("veth {local_if}: no attempt made")))
    }

    /// Waits until every interface in `ifaces` is operationally up.
    ///
    /// Needed after bringing up a veth pair: the end brought up first gets
    /// its carrier from the second, and the kernel only starts transmitting
    /// on it (and reports it UP) when its link-watch work runs, which is
    /// rate-limited to once a second when both ends share an ifindex (as two
    /// fresh namespaces' first interfaces do). Until then its packets are
    /// silently dropped.
    pub fn wait_oper_up(&self, ifaces: &[&str], timeout: std::time::Duration) -> Result<()> {
        let mut last = String::new();
        let up = crate::wait::wait_for(
            &format!("{ifaces:?} in {} to be up", self.name),
            timeout,
            || {
                last = self.ip(["-br", "link"]).unwrap_or_default();
                ifaces.iter().all(|want| {
                    last.lines().any(|l| {
                        let mut f = l.split_whitespace();
                        let name = f.next().unwrap_or("").split('@').next().unwrap_or("");
                        name == *want && f.next() == Some("UP")
                    })
                })
            },
        );
        up.with_context(|| format!("links:\n{last}"))
    }

    /// Creates a bridge `name` in this namespace, stops bridged frames from
    /// going through this namespace's iptables (`bridge-nf-call-iptables=0`)
    /// and brings it up.
    pub fn add_bridge(&self, name: &str) -> Result<()> {
        self.ip(["link", "add", name, "type", "bridge"])?;
        self.sysctl("net.bridge.bridge-nf-call-iptables", "0")?;
        self.link_up(name)
    }

    /// Attaches `iface` to bridge `bridge` and brings it up.
    pub fn attach_to_bridge(&self, iface: &str, bridge: &str) -> Result<()> {
        self.ip(["link", "set", iface, "master", bridge])?;
        self.link_up(iface)
    }

    /// Runs `f` on a fresh thread that has entered this namespace first, so
    /// sockets `f` creates live in the namespace; returns `f`'s result.
    ///
    /// A panic in `f` is resumed on the calling thread.
    pub fn run_in<T, F>(&self, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let file = self.open()?;
        let name = self.name.clone();
        std::thread::scope(|s| {
            let handle = std::thread::Builder::new()
                .name(format!("in-{name}"))
                .spawn_scoped(s, move || -> Result<T> {
                    enter(&file, &name)?;
                    Ok(f())
                })
                .context("cannot spawn a thread")?;
            match handle.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Starts `f` on a background thread inside this namespace and returns its
    /// handle once the thread has entered the namespace (so an error entering
    /// it is reported here, not later).
    pub fn spawn_thread<T, F>(&self, f: F) -> Result<JoinHandle<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let file = self.open()?;
        let name = self.name.clone();
        let (tx, rx) = mpsc::sync_channel::<Result<()>>(1);
        let handle = std::thread::Builder::new()
            .name(format!("in-{name}"))
            .spawn(move || {
                let entered = enter(&file, &name);
                let ok = entered.is_ok();
                // The receiver waits for this message; it cannot be gone.
                let _ = tx.send(entered);
                if !ok {
                    // Never run `f` outside the namespace.
                    std::panic::resume_unwind(Box::new("setns failed"));
                }
                f()
            })
            .context("cannot spawn a thread")?;
        rx.recv()
            .map_err(|_| anyhow!("thread for namespace {} died before entering it", self.name))??;
        Ok(handle)
    }

    fn open(&self) -> Result<File> {
        File::open(self.path())
            .with_context(|| format!("cannot open network namespace {}", self.path().display()))
    }

    /// Process ids of every process whose network namespace is this one
    /// (`ip netns pids`).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let out = cmd::run_args(["ip", "netns", "pids", &self.name])?;
        Ok(out
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect())
    }
}

/// Moves the calling thread into the network namespace open as `file`.
fn enter(file: &File, name: &str) -> Result<()> {
    // SAFETY: setns on a valid, open namespace file descriptor only changes
    // the calling thread's network namespace.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("setns into network namespace {name}"));
    }
    Ok(())
}
