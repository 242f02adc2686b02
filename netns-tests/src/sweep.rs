//! Cleanup of what earlier, crashed test runs left behind, and removal of
//! directories that may still have mounts under them (Docker's data roots).
//!
//! Lab resources carry the creating process id in their names
//! (`wl-PID-N-...` namespaces, `.../wl/PID-N-...` directories); a resource
//! whose creator no longer exists is stale.

use std::path::{Path, PathBuf};

use crate::netns::{Netns, NETNS_DIR};

/// Prefix of every lab namespace name.
pub const NS_PREFIX: &str = "wl-";

/// A marker file: the lab's directory was kept for its logs after a failure.
pub(crate) const KEPT_MARKER: &str = "KEPT";

/// Name of the file in a lab directory listing the interface names it
/// handed out (one a line), so a sweep can remove their UAPI sockets.
pub(crate) const IFACES_FILE: &str = "ifaces";

/// Directory where WireGuard userspace implementations put UAPI sockets.
pub const WG_SOCKET_DIR: &str = "/var/run/wireguard";

/// Root of all lab directories.
pub fn labs_root() -> PathBuf {
    std::env::temp_dir().join("wl")
}

/// Whether a process with this id exists.
pub fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The creating pid encoded in a lab namespace name (`wl-PID-...`).
pub fn ns_creator(name: &str) -> Option<u32> {
    name.strip_prefix(NS_PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

fn dir_creator(name: &str) -> Option<u32> {
    name.split('-').next()?.parse().ok()
}

/// Removes namespaces, processes inside them, UAPI sockets and directories
/// of labs whose creating process is gone. Errors are reported on stderr and
/// otherwise ignored: a sweep must never fail a test.
pub fn sweep_stale() {
    let me = std::process::id();
    if let Ok(entries) = std::fs::read_dir(NETNS_DIR) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = ns_creator(&name) else {
                continue;
            };
            if pid == me || pid_alive(pid) {
                continue;
            }
            eprintln!("lab: removing stale namespace {name} (creator pid {pid} is gone)");
            let ns = Netns::from_name(name);
            kill_all_in(&ns);
            delete_netns(&ns);
        }
    }
    if let Ok(entries) = std::fs::read_dir(labs_root()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = dir_creator(&name) else {
                continue;
            };
            if pid == me || pid_alive(pid) {
                continue;
            }
            let dir = e.path();
            remove_sockets_listed(&dir);
            if dir.join(KEPT_MARKER).exists() && !older_than_a_day(&dir) {
                continue;
            }
            eprintln!("lab: removing stale lab directory {}", dir.display());
            remove_tree(&dir);
        }
    }
}

fn older_than_a_day(p: &Path) -> bool {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > 86_400)
}

/// SIGKILLs every process living in `ns` (never the calling process).
pub(crate) fn kill_all_in(ns: &Netns) {
    let me = i32::try_from(std::process::id()).unwrap_or(-1);
    match ns.pids() {
        Ok(pids) => {
            for pid in pids.into_iter().filter(|&p| p != me && p > 1) {
                // SAFETY: kill(2) on a process living in a namespace this
                // harness created; it may be gone already.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        Err(e) => eprintln!("lab: cannot list processes in {ns}: {e:#}"),
    }
}

/// `ip netns del`, reporting failures on stderr.
pub(crate) fn delete_netns(ns: &Netns) {
    if let Err(e) = crate::cmd::run_args(["ip", "netns", "del", ns.name()]) {
        eprintln!("lab: cannot delete namespace {ns}: {e:#}");
    }
}

/// Removes `/var/run/wireguard/NAME.sock` for every name in the lab
/// directory's interface list.
pub(crate) fn remove_sockets_listed(dir: &Path) {
    let Ok(list) = std::fs::read_to_string(dir.join(IFACES_FILE)) else {
        return;
    };
    for name in list.lines().filter(|l| !l.is_empty()) {
        remove_uapi_socket(name);
    }
}

/// Removes the UAPI socket of interface `name` if it exists.
pub fn remove_uapi_socket(name: &str) {
    let p = Path::new(WG_SOCKET_DIR).join(format!("{name}.sock"));
    match std::fs::remove_file(&p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!("lab: cannot remove {}: {e}", p.display()),
    }
}

/// Mount points at or under `dir`, deepest first, from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    found
}

/// Decodes the octal escapes (`\040` for a space) of /proc/self/mountinfo.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = std::str::from_utf8(&b[i + 1..i + 4]).unwrap_or("");
            if let Ok(v) = u8::from_str_radix(oct, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts (lazily) everything mounted under `dir`, then deletes it. If a
/// mount cannot be removed the directory is left alone: deleting through a
/// bind mount could delete files outside the lab.
pub fn remove_tree(dir: &Path) {
    for m in mounts_under(dir) {
        let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) else {
            continue;
        };
        // SAFETY: umount2 with a valid NUL-terminated path.
        let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            eprintln!(
                "lab: cannot unmount {}: {}",
                m.display(),
                std::io::Error::last_os_error()
            );
        }
    }
    if !mounts_under(dir).is_empty() {
        eprintln!(
            "lab: {} still has mounts under it; not deleting it",
            dir.display()
        );
        return;
    }
    if let Err(e) = std::fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("lab: cannot remove {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_creators() {
        assert_eq!(ns_creator("wl-123-4-nat-pub"), Some(123));
        assert_eq!(ns_creator("wl-x-4"), None);
        assert_eq!(ns_creator("other-123"), None);
        assert_eq!(dir_creator("77-0-tag"), Some(77));
    }

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape_mount(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mount(r"/plain"), "/plain");
        assert_eq!(unescape_mount(r"/end\04"), r"/end\04");
    }
}
