//! [`Lab`]: the owner of everything one test creates (namespaces, processes,
//! Docker daemons, interface names, a temp directory), with names unique
//! across tests running in parallel in one process and across processes, and
//! a `Drop` that removes it all, also when the test panics.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};

use anyhow::{bail, Context, Result};

use crate::netns::Netns;
use crate::process::{stop_all, Proc, ProcInner, Spawn};
use crate::sweep;

static LABS: AtomicU32 = AtomicU32::new(0);
static IFACES: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// Interface name counters wrap here so names stay within [`IFNAMSIZ_MAX`].
const IFACE_WRAP: u64 = 36u64.pow(6);

/// Longest Linux interface name.
pub const IFNAMSIZ_MAX: usize = 15;

#[derive(Default)]
struct State {
    namespaces: Vec<Netns>,
    procs: Vec<Arc<ProcInner>>,
    ifaces: Vec<String>,
    log_names: HashSet<String>,
}

/// Everything one test creates. Create one per test with [`Lab::new`]; build
/// topologies on it ([`crate::topology`]), start programs in it
/// ([`Lab::spawn`]) and drop it at the end (or let a panic drop it).
///
/// `Drop` removes, in this order: processes (SIGTERM, a grace period,
/// SIGKILL, reap; Docker daemons after the rest, their containers first), any
/// other process still inside the lab's namespaces, the namespaces, the UAPI
/// sockets of interface names it handed out, and its temp directory. When the
/// thread is panicking the directory's logs are kept (its path is printed).
///
/// The first lab of a process also sweeps leftovers of crashed earlier runs.
pub struct Lab {
    prefix: String,
    dir: PathBuf,
    state: Mutex<State>,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab").field("prefix", &self.prefix).finish()
    }
}

/// Keeps `[a-z0-9]` and at most `max` characters.
fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .take(max)
        .collect()
}

fn base36(mut n: u64, width: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    while out.len() < width {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

impl Lab {
    /// A new, empty lab. `tag` (a few letters naming the test) goes into every
    /// name it hands out. Fails unless running as root.
    pub fn new(tag: &str) -> Result<Lab> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            bail!("the netns lab needs root (network namespaces, iptables): run the tests as root");
        }
        SWEEP.call_once(sweep::sweep_stale);
        let pid = std::process::id();
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let tag = sanitize(tag, 12);
        let prefix = format!("{}{pid}-{n}-{tag}", sweep::NS_PREFIX);
        let dir = sweep::labs_root().join(format!("{pid}-{n}-{tag}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create lab directory {}", dir.display()))?;
        Ok(Lab {
            prefix,
            dir,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The prefix of every namespace name of this lab (`wl-PID-N-TAG`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lab's temp directory (logs, keys, Docker data roots).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates (if needed) and returns a subdirectory of the lab directory.
    pub fn subdir(&self, name: &str) -> Result<PathBuf> {
        let d = self.dir.join(name);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        Ok(d)
    }

    /// Creates the namespace `PREFIX-ROLE` with loopback up and
    /// `net.ipv4.ip_forward=0` (new namespaces may inherit 1; routers turn it
    /// on explicitly). Fails if this lab already has that role.
    pub fn netns(&self, role: &str) -> Result<Netns> {
        let role = sanitize(role, 16);
        if role.is_empty() {
            bail!("namespace role must contain letters or digits");
        }
        let ns = Netns::from_name(format!("{}-{role}", self.prefix));
        {
            let mut st = self.state();
            if st.namespaces.contains(&ns) {
                bail!("lab {} already has a namespace {role:?}", self.prefix);
            }
            crate::cmd::run_args(["ip", "netns", "add", ns.name()])?;
            st.namespaces.push(ns.clone());
        }
        ns.link_up("lo")?;
        ns.sysctl("net.ipv4.ip_forward", "0")?;
        Ok(ns)
    }

    /// The namespaces created so far, oldest first.
    pub fn namespaces(&self) -> Vec<Netns> {
        self.state().namespaces.clone()
    }

    /// A fresh interface name, unique across every lab of every process on
    /// the machine (WireGuard UAPI sockets, `/var/run/wireguard/NAME.sock`,
    /// are shared by all namespaces): up to 4 characters of `kind`, the pid
    /// in base 36, a counter. Its UAPI socket is removed with the lab.
    pub fn iface_name(&self, kind: &str) -> String {
        let kind = sanitize(kind, 4);
        let kind = if kind.is_empty() {
            "if".to_owned()
        } else {
            kind
        };
        let n = IFACES.fetch_add(1, Ordering::Relaxed);
        let name = format!(
            "{kind}{}{}",
            base36(u64::from(std::process::id()), 5),
            base36(u64::from(n) % IFACE_WRAP, 1)
        );
        debug_assert!(name.len() <= IFNAMSIZ_MAX);
        self.state().ifaces.push(name.clone());
        // Recorded on disk too, so a sweep after a crash removes the socket.
        let listed = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(sweep::IFACES_FILE))
            .and_then(|mut f| writeln!(f, "{name}"));
        if let Err(e) = listed {
            eprintln!("lab: cannot record interface name {name}: {e}");
        }
        name
    }

    /// Runs `f` on a fresh thread inside `ns` (see [`Netns::run_in`]): sockets
    /// it creates live in that namespace. Returns `f`'s result.
    pub fn in_ns<T, F>(&self, ns: &Netns, f: F) -> Result<T>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        ns.run_in(f)
    }

    /// Starts a long-running program inside `ns`, output to
    /// `DIR/NAME.log`. The returned guard stops it on drop; the lab stops it
    /// too if it is still running when the lab goes.
    pub fn spawn(&self, ns: &Netns, spec: Spawn) -> Result<Proc> {
        let base = sanitize_file(&spec.name.clone().unwrap_or_else(|| spec.default_name()));
        let name = {
            let mut st = self.state();
            let mut name = base.clone();
            let mut i = 1;
            while !st.log_names.insert(name.clone()) {
                i += 1;
                name = format!("{base}-{i}");
            }
            name
        };
        let log = self.dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log)
            .with_context(|| format!("cannot create log {}", log.display()))?;
        let mut cmd = spec.command(ns, &file)?;
        let line = crate::cmd::display(&cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start `{line}`"))?;
        let inner = Arc::new(ProcInner::new(name, log, line, spec.grace, child));
        self.state().procs.push(inner.clone());
        Ok(Proc { inner })
    }

    /// Runs a one-shot command inside `ns` and returns its stdout (see
    /// [`Netns::exec`]).
    pub fn exec<I, S>(&self, ns: &Netns, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        ns.exec(args)
    }

    fn cleanup(&mut self) {
        let st = std::mem::take(&mut *self.state());
        let mut procs = st.procs;
        procs.reverse();
        stop_all(&procs);
        for ns in st.namespaces.iter().rev() {
            sweep::kill_all_in(ns);
        }
        for ns in st.namespaces.iter().rev() {
            sweep::delete_netns(ns);
        }
        for name in &st.ifaces {
            sweep::remove_uapi_socket(name);
        }
        if std::thread::panicking() || std::env::var_os("WARREN_LAB_KEEP").is_some() {
            keep_logs(&self.dir);
        } else {
            sweep::remove_tree(&self.dir);
        }
    }
}

/// Keeps `*.log` and small files of a failed lab, drops bulky subdirectories
/// (Docker data roots), and says where the logs are.
fn keep_logs(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                sweep::remove_tree(&e.path());
            }
        }
    }
    // The marker protects the logs from the next run's sweep for a day.
    let _ = std::fs::write(dir.join(sweep::KEPT_MARKER), b"");
    eprintln!("lab: logs kept in {}", dir.display());
}

fn sanitize_file(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    if s.is_empty() || s.starts_with('.') {
        format!("p{s}")
    } else {
        s
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cleanup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_pads() {
        assert_eq!(base36(0, 5), "00000");
        assert_eq!(base36(35, 1), "z");
        assert_eq!(base36(36, 1), "10");
        assert_eq!(base36(4_194_304, 5), "2hwcg");
    }

    #[test]
    fn iface_names_fit() {
        let longest = format!("wgxx{}{}", base36(4_194_304, 5), base36(IFACE_WRAP - 1, 1));
        assert!(longest.len() <= IFNAMSIZ_MAX, "{longest}");
    }

    #[test]
    fn sanitizes() {
        assert_eq!(sanitize("Cone-NAT!", 12), "conenat");
        assert_eq!(sanitize_file("../x"), "p.._x");
    }
}
