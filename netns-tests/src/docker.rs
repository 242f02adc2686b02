//! One Docker daemon per simulated worker, inside the worker's namespace
//! (docs/lab.md "One Docker daemon per simulated worker"): own data root, exec
//! root, socket and pidfile under the lab directory, no bridge and no
//! iptables, so nothing appears in the root namespace. Containers use host
//! networking, i.e. the worker's namespace.

use std::os::unix::fs::symlink;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cmd;
use crate::lab::Lab;
use crate::netns::Netns;
use crate::process::{Proc, Spawn};

/// The system containerd socket: if one is live, a dockerd may use it and put
/// host-network containers in the root namespace.
pub const SYSTEM_CONTAINERD_SOCK: &str = "/run/containerd/containerd.sock";

/// How long a daemon gets to answer `docker info`.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a daemon gets to shut down after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// Busybox applets linked into the image made by [`import_busybox_image`].
const APPLETS: &[&str] = &["sh", "httpd", "echo", "sleep", "cat", "wget", "ls", "env"];

static DAEMONS: AtomicU32 = AtomicU32::new(0);

/// A Docker daemon running in a lab namespace. Dropping it removes its
/// containers and stops it by pid (its containerd goes with it).
#[derive(Debug)]
pub struct Dockerd {
    /// The namespace it (and its host-network containers) live in.
    pub ns: Netns,
    /// Its directory (data root, exec root, socket, pidfile).
    pub dir: PathBuf,
    /// Its API socket.
    pub socket: PathBuf,
    /// The daemon process.
    pub proc: Proc,
}

/// Whether a system containerd answers on [`SYSTEM_CONTAINERD_SOCK`].
pub fn system_containerd_active() -> bool {
    UnixStream::connect(SYSTEM_CONTAINERD_SOCK).is_ok()
}

/// Runs `docker -H unix://SOCKET ARGS...` and returns stdout.
fn docker_cli(socket: &Path, args: &[&str]) -> Result<String> {
    let mut c = Command::new(cmd::require_bin("docker")?);
    c.arg("-H")
        .arg(format!("unix://{}", socket.display()))
        .args(args);
    cmd::run(&mut c)
}

/// Starts a Docker daemon inside `ns` and waits until `docker info` answers.
/// Refuses if a system containerd is active (run scripts/setup to check).
pub fn start_dockerd(lab: &Lab, ns: &Netns) -> Result<Dockerd> {
    let dockerd = cmd::require_bin("dockerd")?;
    cmd::require_bin("docker")?;
    if system_containerd_active() {
        bail!(
            "a system containerd is listening on {SYSTEM_CONTAINERD_SOCK}: a lab dockerd could put \
             containers in the root namespace; stop it (see scripts/setup)"
        );
    }
    let n = DAEMONS.fetch_add(1, Ordering::Relaxed);
    let dir = lab.subdir(&format!("dk{n}"))?;
    let socket = dir.join("docker.sock");
    let pidfile = dir.join("docker.pid");
    // A stale pidfile stops dockerd from starting.
    let _ = std::fs::remove_file(&pidfile);
    let _ = std::fs::remove_file(&socket);
    let p = |s: &str| dir.join(s).to_string_lossy().into_owned();
    let proc = lab.spawn(
        ns,
        Spawn::new(dockerd)
            .args([
                "--data-root",
                &p("data"),
                "--exec-root",
                &p("exec"),
                "-H",
                &format!("unix://{}", socket.display()),
                "--pidfile",
                &pidfile.to_string_lossy(),
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--shutdown-timeout=2",
            ])
            .nsenter()
            .grace(STOP_GRACE)
            .name(format!("dockerd{n}")),
    )?;
    // Before the daemon stops (by the lab or by this handle), remove its
    // containers: busybox as PID 1 ignores SIGTERM, so a daemon shutdown
    // would wait for the stop timeout.
    let sock = socket.clone();
    if let Ok(mut hook) = proc.inner.pre_stop.lock() {
        *hook = Some(Box::new(move || remove_all_containers(&sock)));
    }
    proc.wait_for(
        &format!("dockerd on {} to answer `docker info`", socket.display()),
        START_TIMEOUT,
        || socket.exists() && docker_cli(&socket, &["info", "--format", "{{.ID}}"]).is_ok(),
    )?;
    Ok(Dockerd {
        ns: ns.clone(),
        dir,
        socket,
        proc,
    })
}

fn remove_all_containers(socket: &Path) {
    let Ok(ids) = docker_cli(socket, &["ps", "-aq"]) else {
        return;
    };
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return;
    }
    let mut args = vec!["rm", "-f"];
    args.extend(ids);
    if let Err(e) = docker_cli(socket, &args) {
        eprintln!(
            "lab: cannot remove containers of {}: {e:#}",
            socket.display()
        );
    }
}

impl Dockerd {
    /// The `-H` value for this daemon (`unix:///...`).
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Runs `docker -H HOST ARGS...` and returns stdout.
    pub fn docker(&self, args: &[&str]) -> Result<String> {
        docker_cli(&self.socket, args).with_context(|| self.proc.describe())
    }

    /// Removes the containers and stops the daemon now.
    pub fn stop(&self) -> Result<()> {
        self.proc.stop().map(drop)
    }
}

/// Imports a minimal image named `tag` into `dockerd`: the static busybox
/// with a few applets (`sh httpd echo sleep cat wget ls env`) in `/bin` and
/// an empty `/www`. No registry is reachable, so this is the workload image.
pub fn import_busybox_image(dockerd: &Dockerd, tag: &str) -> Result<()> {
    let busybox = Path::new("/bin/busybox");
    let elf = std::fs::read(busybox).unwrap_or_default();
    if !is_static_elf(&elf) {
        bail!("/bin/busybox is missing or not the static one: run scripts/setup (busybox-static)");
    }
    let root = dockerd.dir.join("img");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("bin")).context("create image dir")?;
    std::fs::create_dir_all(root.join("www")).context("create image dir")?;
    std::fs::create_dir_all(root.join("tmp")).context("create image dir")?;
    std::fs::copy(busybox, root.join("bin/busybox")).context("copy busybox")?;
    for a in APPLETS {
        symlink("busybox", root.join("bin").join(a)).with_context(|| format!("link {a}"))?;
    }
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start tar")?;
    let stdout = tar.stdout.take().context("no tar stdout")?;
    let mut c = Command::new(cmd::require_bin("docker")?);
    c.arg("-H")
        .arg(dockerd.host())
        .args(["import", "-", tag])
        .stdin(Stdio::from(stdout));
    let out = c.output().context("cannot start docker import")?;
    let tar_status = tar.wait().context("wait for tar")?;
    if !tar_status.success() {
        bail!("tar of the busybox image failed ({tar_status})");
    }
    if !out.status.success() {
        bail!(
            "`docker import - {tag}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Whether `elf` is a 64-bit little-endian ELF file without a program
/// interpreter (i.e. statically linked).
fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        elf.get(o..o + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |o: usize| {
        elf.get(o..o + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let off = phoff + i * usize::from(phentsize);
        u32_at(off).is_some_and(|t| t != PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_elf_check() {
        assert!(!is_static_elf(b"not an elf"));
        assert!(!is_static_elf(&[]));
        let sh = std::fs::read("/bin/sh").unwrap_or_default();
        if !sh.is_empty() {
            assert!(!is_static_elf(&sh), "/bin/sh is dynamically linked");
        }
    }
}
