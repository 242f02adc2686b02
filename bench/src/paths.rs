//! The measured paths: two lab hosts on a veth link, joined by nothing (raw
//! veth) or by a WireGuard tunnel of one implementation on both ends.

use std::net::Ipv4Addr;
use std::path::{Path as FsPath, PathBuf};

use anyhow::{bail, Context, Result};
use warren_netns_tests::wg::start_warren;
use warren_netns_tests::{start_wg, two_hosts, Lab, Netns, TwoHosts, WgIface, WgImpl};

/// MTU of every tunnel interface.
pub const MTU: u32 = 1420;
/// WireGuard listen port on both hosts.
const WG_PORT: u16 = 51820;

/// One of the measured paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// warren ↔ warren.
    Warren,
    /// warren ↔ warren with the `--baseline` binary, the one `Warren` is
    /// compared against. Not in [`PathKind::ALL`]: `--baseline` adds it.
    WarrenBaseline,
    /// wireguard-go ↔ wireguard-go: the reference of the "vs wg-go" ratios.
    WireguardGo,
    /// boringtun-cli ↔ boringtun-cli.
    BoringtunCli,
    /// No tunnel: the two hosts' veth addresses.
    Veth,
}

impl PathKind {
    /// Every path `--only` can name, in the order runs are interleaved and
    /// reported (a baseline comes right after `Warren`).
    pub const ALL: [PathKind; 4] = [
        PathKind::Warren,
        PathKind::WireguardGo,
        PathKind::BoringtunCli,
        PathKind::Veth,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            PathKind::Warren => "warren",
            PathKind::WarrenBaseline => "warren-baseline",
            PathKind::WireguardGo => "wireguard-go",
            PathKind::BoringtunCli => "boringtun-cli",
            PathKind::Veth => "veth",
        }
    }

    /// Parses a name as [`PathKind::name`] prints it (`boringtun` and `wg-go`
    /// are accepted too), except `warren-baseline`, which `--baseline` adds.
    pub fn from_name(name: &str) -> Option<PathKind> {
        match name {
            "warren" => Some(PathKind::Warren),
            "wireguard-go" | "wg-go" => Some(PathKind::WireguardGo),
            "boringtun-cli" | "boringtun" => Some(PathKind::BoringtunCli),
            "veth" => Some(PathKind::Veth),
            _ => None,
        }
    }

    /// The WireGuard implementation on both ends, `None` for raw veth.
    pub fn wg_impl(self) -> Option<WgImpl> {
        match self {
            PathKind::Warren | PathKind::WarrenBaseline => Some(WgImpl::Warren),
            PathKind::WireguardGo => Some(WgImpl::WireguardGo),
            PathKind::BoringtunCli => Some(WgImpl::BoringtunCli),
            PathKind::Veth => None,
        }
    }
}

/// The warren binaries of a run: the one under test and, with
/// `--baseline`, the one it is compared against.
#[derive(Clone, Debug, Default)]
pub struct WarrenBins {
    /// Runs the `warren` path (and the relay section).
    pub current: Option<PathBuf>,
    /// Runs the `warren-baseline` path (and the baseline relay).
    pub baseline: Option<PathBuf>,
}

impl WarrenBins {
    /// The binary that runs `kind`'s tunnel; `None` for the other
    /// implementations.
    pub fn of(&self, kind: PathKind) -> Option<&FsPath> {
        match kind {
            PathKind::Warren => self.current.as_deref(),
            PathKind::WarrenBaseline => self.baseline.as_deref(),
            _ => None,
        }
    }
}

/// A built path: its lab (namespaces `a` and `b`) and, for tunnels, the two
/// interfaces. Traffic goes from `a` (client) to `b` (server). Dropping it
/// stops the tunnel processes and removes the namespaces.
pub struct Path {
    /// Which path this is.
    pub kind: PathKind,
    // Fields drop in order: the interfaces' processes stop before the lab
    // removes their namespaces.
    tunnel: Option<(WgIface, WgIface)>,
    hosts: TwoHosts,
    lab: Lab,
}

impl Path {
    /// Builds the path in a lab of its own; a warren path runs its binary
    /// from `bins`.
    pub fn setup(kind: PathKind, bins: &WarrenBins) -> Result<Path> {
        let lab = Lab::new(&format!("bench{}", kind.name()))?;
        let hosts = two_hosts(&lab)?;
        let tunnel = match kind.wg_impl() {
            None => None,
            Some(imp) => Some(
                tunnel(&lab, &hosts, imp, bins.of(kind))
                    .with_context(|| format!("setting up the {} tunnel", kind.name()))?,
            ),
        };
        Ok(Path {
            kind,
            tunnel,
            hosts,
            lab,
        })
    }

    /// The path's lab.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The sending side's namespace.
    pub fn client(&self) -> &Netns {
        &self.hosts.a.ns
    }

    /// The receiving side's namespace.
    pub fn server(&self) -> &Netns {
        &self.hosts.b.ns
    }

    /// The address the client sends to: the server's tunnel address, or its
    /// veth address without a tunnel.
    pub fn server_ip(&self) -> Ipv4Addr {
        match &self.tunnel {
            Some((_, b)) => b.ip(),
            None => self.hosts.b.ip,
        }
    }

    /// The pids of the two tunnel processes (none for raw veth).
    pub fn tunnel_pids(&self) -> Vec<u32> {
        match &self.tunnel {
            Some((a, b)) => vec![a.proc.pid(), b.proc.pid()],
            None => Vec::new(),
        }
    }

    /// Fails, quoting its log, if a tunnel process has exited.
    pub fn check_alive(&self) -> Result<()> {
        for iface in self.tunnel.iter().flat_map(|(a, b)| [a, b]) {
            if !iface.proc.is_running() {
                bail!(
                    "{} tunnel process died: {}",
                    self.kind.name(),
                    iface.proc.describe()
                );
            }
        }
        Ok(())
    }
}

/// Two ends of something measured: a client namespace that sends to an
/// address of a server namespace. [`Path`] is one; the relay section's
/// tunnel pairs are others.
pub trait Ends {
    /// The lab the namespaces belong to.
    fn lab(&self) -> &Lab;
    /// The sending side's namespace.
    fn client(&self) -> &Netns;
    /// The receiving side's namespace.
    fn server(&self) -> &Netns;
    /// The address the client sends to.
    fn server_ip(&self) -> Ipv4Addr;
    /// A name for messages.
    fn label(&self) -> &str;
}

impl Ends for Path {
    fn lab(&self) -> &Lab {
        Path::lab(self)
    }
    fn client(&self) -> &Netns {
        Path::client(self)
    }
    fn server(&self) -> &Netns {
        Path::server(self)
    }
    fn server_ip(&self) -> Ipv4Addr {
        Path::server_ip(self)
    }
    fn label(&self) -> &str {
        self.kind.name()
    }
}

/// Starts `imp` on both hosts (10.9.0.1 on `a`, 10.9.0.2 on `b`), each with
/// the other as its one peer; warren runs as `warren_bin`.
fn tunnel(
    lab: &Lab,
    hosts: &TwoHosts,
    imp: WgImpl,
    warren_bin: Option<&FsPath>,
) -> Result<(WgIface, WgIface)> {
    let start = |ns: &Netns, addr: &str| match (imp, warren_bin) {
        (WgImpl::Warren, Some(bin)) => start_warren(lab, ns, bin, addr, MTU),
        (WgImpl::Warren, None) => bail!("no warren binary to run"),
        _ => start_wg(lab, ns, imp, addr, MTU),
    };
    let a = start(&hosts.a.ns, "10.9.0.1/24")?;
    let b = start(&hosts.b.ns, "10.9.0.2/24")?;
    for iface in [&a, &b] {
        match warren_bin {
            Some(bin) => crate::cpu::check_runs(iface.proc.pid(), bin)?,
            None => crate::cpu::check_is_program(iface.proc.pid(), imp)?,
        }
    }
    a.pair_with(hosts.a.ip, &b, hosts.b.ip, WG_PORT, lab.dir())?;
    Ok((a, b))
}
