//! WireGuard interfaces in lab namespaces: the reference peers
//! (wireguard-go, boringtun-cli) and warren's own device, all configured and
//! inspected through `wg` over the UAPI socket `/var/run/wireguard/IFACE.sock`.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::cmd;
use crate::lab::Lab;
use crate::netns::Netns;
use crate::process::{Proc, Spawn};
use crate::sweep::{remove_uapi_socket, WG_SOCKET_DIR};

/// How long an implementation gets to create its UAPI socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Which WireGuard implementation runs an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WgImpl {
    /// `warren device up IFACE --address ADDR --mtu MTU` (binary from
    /// `$WARREN_BIN` or `target/<profile>/warren`).
    Warren,
    /// Debian's `wireguard-go -f IFACE`.
    WireguardGo,
    /// `boringtun-cli -f --disable-drop-privileges IFACE` (0.7.1, from
    /// `cargo install`).
    BoringtunCli,
}

impl WgImpl {
    /// A short name for logs and interface names.
    pub fn short(self) -> &'static str {
        match self {
            WgImpl::Warren => "wr",
            WgImpl::WireguardGo => "wgo",
            WgImpl::BoringtunCli => "bt",
        }
    }
}

/// Locates the warren binary: `$WARREN_BIN`, else `target/<profile>/warren`
/// next to the running test binary.
pub fn warren_bin() -> Result<PathBuf> {
    cmd::locate_target_bin("WARREN_BIN", "warren").context(
        "the warren binary is missing: build it with `cargo build -p warren` or set WARREN_BIN",
    )
}

/// A running WireGuard interface.
#[derive(Debug)]
pub struct WgIface {
    /// The namespace it lives in.
    pub ns: Netns,
    /// The (lab-unique) interface name.
    pub name: String,
    /// Which implementation runs it.
    pub imp: WgImpl,
    /// Its address, without the prefix length.
    pub ip: Ipv4Addr,
    /// The implementation's process.
    pub proc: Proc,
}

/// Starts `imp` in `ns` on a fresh interface name, with address `iface_addr`
/// (`"10.9.0.1/24"`) and MTU `mtu`, and waits until its UAPI socket exists.
/// Fails with "run scripts/setup" if the implementation is not installed.
pub fn start_wg(lab: &Lab, ns: &Netns, imp: WgImpl, iface_addr: &str, mtu: u32) -> Result<WgIface> {
    match imp {
        WgImpl::Warren => start_warren(lab, ns, &warren_bin()?, iface_addr, mtu),
        _ => start_any(lab, ns, imp, None, iface_addr, mtu),
    }
}

/// Like [`start_wg`] for warren, with the warren binary `bin` (so that two
/// builds of warren can run side by side, as `make bench-baseline` does).
pub fn start_warren(
    lab: &Lab,
    ns: &Netns,
    bin: &Path,
    iface_addr: &str,
    mtu: u32,
) -> Result<WgIface> {
    start_any(lab, ns, WgImpl::Warren, Some(bin), iface_addr, mtu)
}

fn start_any(
    lab: &Lab,
    ns: &Netns,
    imp: WgImpl,
    warren: Option<&Path>,
    iface_addr: &str,
    mtu: u32,
) -> Result<WgIface> {
    let ip: Ipv4Addr = iface_addr
        .split('/')
        .next()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("{iface_addr:?} is not an IPv4 address/prefix"))?;
    let name = lab.iface_name(imp.short());
    remove_uapi_socket(&name);
    let spec = match (imp, warren) {
        (WgImpl::Warren, Some(bin)) => Spawn::new(bin).args([
            "device",
            "up",
            &name,
            "--address",
            iface_addr,
            "--mtu",
            &mtu.to_string(),
        ]),
        (WgImpl::Warren, None) => bail!("no warren binary to run"),
        (WgImpl::WireguardGo, _) => Spawn::new(cmd::require_bin("wireguard-go")?)
            .args(["-f", &name])
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1"),
        (WgImpl::BoringtunCli, _) => Spawn::new(cmd::require_bin("boringtun-cli")?).args([
            "-f",
            "--disable-drop-privileges",
            &name,
        ]),
    };
    let proc = lab.spawn(ns, spec.name(format!("{}-{name}", imp.short())))?;
    let sock = uapi_socket(&name);
    proc.wait_for(
        &format!("UAPI socket {}", sock.display()),
        START_TIMEOUT,
        || sock.exists(),
    )?;
    if imp != WgImpl::Warren {
        ns.add_addr(&name, iface_addr)?;
        ns.ip(["link", "set", &name, "mtu", &mtu.to_string(), "up"])?;
    }
    Ok(WgIface {
        ns: ns.clone(),
        name,
        imp,
        ip,
        proc,
    })
}

/// The UAPI socket path of interface `name`.
pub fn uapi_socket(name: &str) -> PathBuf {
    Path::new(WG_SOCKET_DIR).join(format!("{name}.sock"))
}

/// A WireGuard key pair, base64 as `wg` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPair {
    /// The private key.
    pub private: String,
    /// The public key.
    pub public: String,
}

impl KeyPair {
    /// A fresh key pair from `wg genkey` / `wg pubkey`.
    pub fn generate() -> Result<KeyPair> {
        let wg = cmd::require_bin("wg")?;
        let mut gen = Command::new(&wg);
        gen.arg("genkey");
        // SAFETY: umask is async-signal-safe. `wg genkey` warns unless the
        // umask keeps the key private.
        unsafe {
            gen.pre_exec(|| {
                libc::umask(0o077);
                Ok(())
            });
        }
        let private = cmd::run(&mut gen)?.trim().to_owned();
        let public = KeyPair::public_of(&private)?;
        Ok(KeyPair { private, public })
    }

    /// The public key of a base64 private key (`wg pubkey`).
    pub fn public_of(private: &str) -> Result<String> {
        use std::io::Write;
        let mut child = Command::new(cmd::require_bin("wg")?)
            .arg("pubkey")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("cannot start `wg pubkey`")?;
        child
            .stdin
            .take()
            .context("no stdin for `wg pubkey`")?
            .write_all(format!("{private}\n").as_bytes())
            .context("write to `wg pubkey`")?;
        let out = child.wait_with_output().context("wait for `wg pubkey`")?;
        if !out.status.success() {
            bail!(
                "`wg pubkey` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Writes the private key to a new mode-0600 file `PATH`.
    pub fn write_private(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        writeln!(f, "{}", self.private).with_context(|| format!("write {}", path.display()))
    }
}

/// One peer for [`WgIface::add_peer`].
#[derive(Clone, Debug, Default)]
pub struct PeerConfig {
    /// The peer's public key.
    pub public_key: String,
    /// Allowed IPs (`"10.9.0.2/32"`).
    pub allowed_ips: Vec<String>,
    /// Where to send to first, if known.
    pub endpoint: Option<SocketAddr>,
    /// Persistent keepalive interval in seconds.
    pub keepalive: Option<u16>,
}

impl WgIface {
    /// The interface's own (tunnel) address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Runs `wg set IFACE ARGS...` inside the interface's namespace.
    pub fn set<I, S>(&self, args: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = self.ns.command("wg");
        c.args(["set", &self.name]).args(args);
        cmd::run(&mut c)
            .map(drop)
            .with_context(|| format!("configuring {} ({:?})", self.name, self.imp))
    }

    /// Sets the private key (written to a 0600 file in `dir`) and the
    /// listen port.
    pub fn set_key(&self, key: &KeyPair, listen_port: u16, dir: &Path) -> Result<()> {
        let file = dir.join(format!("{}.key", self.name));
        key.write_private(&file)?;
        let file = file.to_string_lossy().into_owned();
        self.set([
            "private-key",
            &file,
            "listen-port",
            &listen_port.to_string(),
        ])
    }

    /// Adds (or updates) a peer.
    pub fn add_peer(&self, peer: &PeerConfig) -> Result<()> {
        let mut args = vec!["peer".to_owned(), peer.public_key.clone()];
        if !peer.allowed_ips.is_empty() {
            args.push("allowed-ips".to_owned());
            args.push(peer.allowed_ips.join(","));
        }
        if let Some(ep) = peer.endpoint {
            args.push("endpoint".to_owned());
            args.push(ep.to_string());
        }
        if let Some(k) = peer.keepalive {
            args.push("persistent-keepalive".to_owned());
            args.push(k.to_string());
        }
        self.set(&args)
    }

    /// Gives this interface and `other` fresh keys listening on `port`, and
    /// makes each the other's one peer: allowed its tunnel address, reached
    /// at `at` and `other_at`. Returns the two keys (this one's first).
    pub fn pair_with(
        &self,
        at: Ipv4Addr,
        other: &WgIface,
        other_at: Ipv4Addr,
        port: u16,
        key_dir: &Path,
    ) -> Result<(KeyPair, KeyPair)> {
        let (key, other_key) = (KeyPair::generate()?, KeyPair::generate()?);
        self.set_key(&key, port, key_dir)?;
        other.set_key(&other_key, port, key_dir)?;
        self.add_peer(&PeerConfig {
            public_key: other_key.public.clone(),
            allowed_ips: vec![format!("{}/32", other.ip)],
            endpoint: Some(SocketAddr::from((other_at, port))),
            keepalive: None,
        })?;
        other.add_peer(&PeerConfig {
            public_key: key.public.clone(),
            allowed_ips: vec![format!("{}/32", self.ip)],
            endpoint: Some(SocketAddr::from((at, port))),
            keepalive: None,
        })?;
        Ok((key, other_key))
    }

    /// `wg show IFACE dump`, parsed.
    pub fn dump(&self) -> Result<WgDump> {
        let mut c = self.ns.command("wg");
        c.args(["show", &self.name, "dump"]);
        let text = cmd::run(&mut c)?;
        WgDump::parse(&text)
            .with_context(|| format!("parsing `wg show {} dump`:\n{text}", self.name))
    }

    /// Polls `wg show dump` until the peer with `public_key` reports a
    /// handshake (boringtun-cli reports none during the first second after
    /// one), and returns that peer.
    pub fn wait_for_handshake(&self, public_key: &str, timeout: Duration) -> Result<WgPeer> {
        let mut last = None;
        let found = crate::wait::wait_for_value(
            &format!("a handshake with {public_key} on {}", self.name),
            timeout,
            || match self.peer(public_key) {
                Ok(p) if p.latest_handshake.is_some() => Some(p),
                other => {
                    last = Some(other);
                    None
                }
            },
        );
        found.with_context(|| format!("last seen: {last:?}; {}", self.proc.describe()))
    }

    /// `wg show IFACE dump` for the peer with `public_key`.
    pub fn peer(&self, public_key: &str) -> Result<WgPeer> {
        let dump = self.dump()?;
        dump.peers
            .into_iter()
            .find(|p| p.public_key == public_key)
            .with_context(|| format!("{} has no peer {public_key}", self.name))
    }
}

/// `wg show IFACE dump`: the interface line and one line per peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgDump {
    /// The interface's public key (`None` before a private key is set).
    pub public_key: Option<String>,
    /// The listen port (0 if none).
    pub listen_port: u16,
    /// The peers.
    pub peers: Vec<WgPeer>,
}

/// One peer line of `wg show dump`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WgPeer {
    /// The peer's public key.
    pub public_key: String,
    /// The current endpoint, if any.
    pub endpoint: Option<SocketAddr>,
    /// Allowed IPs as printed.
    pub allowed_ips: Vec<String>,
    /// Time of the latest handshake, `None` if there was none.
    ///
    /// boringtun-cli 0.7.1 reports the *age* of the handshake in seconds where
    /// the UAPI wants a UNIX time (and 0 during its first second); values too
    /// small to be a UNIX time are taken as an age, see [`WgDump::parse_at`].
    pub latest_handshake: Option<SystemTime>,
    /// Bytes received from the peer.
    pub rx_bytes: u64,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
    /// Persistent keepalive interval in seconds, if on.
    pub keepalive: Option<u16>,
}

/// Latest-handshake values below this are ages, not UNIX times (see
/// [`WgPeer::latest_handshake`]).
pub const AGE_BELOW: u64 = 1_000_000_000;

fn none_if_off(s: &str) -> Option<&str> {
    match s {
        "(none)" | "off" | "" => None,
        s => Some(s),
    }
}

impl WgDump {
    /// Parses the tab-separated output of `wg show IFACE dump` read now.
    pub fn parse(text: &str) -> Result<WgDump> {
        WgDump::parse_at(text, SystemTime::now())
    }

    /// Parses `wg show IFACE dump` output read at `now`. A latest-handshake
    /// value below [`AGE_BELOW`] (2001-09-09 as a UNIX time) is an age in
    /// seconds (boringtun-cli's way), turned into `now - age`.
    pub fn parse_at(text: &str, now: SystemTime) -> Result<WgDump> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let head = lines.next().context("empty dump")?;
        let f: Vec<&str> = head.split('\t').collect();
        let [_private, public, port, _fwmark] = f.as_slice() else {
            bail!(
                "interface line has {} fields, expected 4: {head:?}",
                f.len()
            );
        };
        let mut dump = WgDump {
            public_key: none_if_off(public).map(str::to_owned),
            listen_port: port
                .parse()
                .with_context(|| format!("listen port {port:?}"))?,
            peers: Vec::new(),
        };
        for line in lines {
            let f: Vec<&str> = line.split('\t').collect();
            let [public, _psk, endpoint, allowed, handshake, rx, tx, keepalive] = f.as_slice()
            else {
                bail!("peer line has {} fields, expected 8: {line:?}", f.len());
            };
            let endpoint = none_if_off(endpoint)
                .map(|e| e.parse().with_context(|| format!("endpoint {e:?}")))
                .transpose()?;
            let secs: u64 = handshake
                .parse()
                .with_context(|| format!("latest handshake {handshake:?}"))?;
            dump.peers.push(WgPeer {
                public_key: (*public).to_owned(),
                endpoint,
                allowed_ips: none_if_off(allowed)
                    .map(|a| a.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
                latest_handshake: match secs {
                    0 => None,
                    age if age < AGE_BELOW => now.checked_sub(Duration::from_secs(age)),
                    t => Some(UNIX_EPOCH + Duration::from_secs(t)),
                },
                rx_bytes: rx.parse().with_context(|| format!("rx bytes {rx:?}"))?,
                tx_bytes: tx.parse().with_context(|| format!("tx bytes {tx:?}"))?,
                keepalive: none_if_off(keepalive)
                    .map(|k| k.parse().with_context(|| format!("keepalive {k:?}")))
                    .transpose()?,
            });
        }
        Ok(dump)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dump() {
        let text = "cHJpdg==\tcHVi\t51820\toff\n\
                    cGVlcg==\t(none)\t10.0.0.2:51821\t10.9.0.2/32,10.9.1.0/24\t1700000000\t1234\t5678\t25\n\
                    b3RoZXI=\t(none)\t(none)\t(none)\t0\t0\t0\toff\n";
        let d = WgDump::parse(text).expect("parse");
        assert_eq!(d.listen_port, 51820);
        assert_eq!(d.public_key.as_deref(), Some("cHVi"));
        assert_eq!(d.peers.len(), 2);
        let p = &d.peers[0];
        assert_eq!(p.endpoint, Some("10.0.0.2:51821".parse().expect("addr")));
        assert_eq!(p.allowed_ips, vec!["10.9.0.2/32", "10.9.1.0/24"]);
        assert_eq!(
            p.latest_handshake,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(
            (p.rx_bytes, p.tx_bytes, p.keepalive),
            (1234, 5678, Some(25))
        );
        let q = &d.peers[1];
        assert_eq!(
            (q.endpoint, q.latest_handshake, q.keepalive),
            (None, None, None)
        );
        assert!(q.allowed_ips.is_empty());
    }

    #[test]
    fn takes_small_handshake_values_as_ages() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let text = "x\ty\t1\toff\np\t(none)\t(none)\t(none)\t7\t0\t0\toff\n";
        let d = WgDump::parse_at(text, now).expect("parse");
        assert_eq!(
            d.peers[0].latest_handshake,
            Some(now - Duration::from_secs(7))
        );
    }

    #[test]
    fn rejects_short_lines() {
        assert!(WgDump::parse("a\tb\n").is_err());
        assert!(WgDump::parse("a\tb\t1\toff\nx\ty\n").is_err());
        assert!(WgDump::parse("").is_err());
    }
}
