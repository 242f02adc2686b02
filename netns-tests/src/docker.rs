//! One Docker daemon per simulated worker, inside the worker's namespace
//! (docs/lab.md "One Docker daemon per simulated worker"): own data root, exec
//! root, socket and pidfile under the lab directory. Nothing appears in the
//! root namespace in either network mode ([`DockerNet`]):
//! - [`DockerNet::HostOnly`] ([`start_dockerd`]): no bridge and no iptables;
//!   containers use host networking, i.e. the worker's namespace;
//! - [`DockerNet::Bridge`] ([`start_dockerd_with`]): the daemon's own
//!   `docker0` with a subnet of its own ([`bridge_subnet`]), its iptables
//!   rules and `ip_forward=1`, all inside the worker's namespace; published
//!   ports work as on a real host.

use std::net::Ipv4Addr;
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
const APPLETS: &[&str] = &[
    "sh",
    "httpd",
    "echo",
    "sleep",
    "cat",
    "wget",
    "ls",
    "env",
    "nc",
    "dd",
    "head",
    "sha256sum",
    "printf",
    "mkdir",
    "chmod",
];

static DAEMONS: AtomicU32 = AtomicU32::new(0);

/// The second octet of every lab daemon's bridge subnet, `172.30.0.0/16`:
/// private, clear of the lab's other ranges (10/8, 192.168/16, 100.64.0.0/10
/// with the mesh's 100.96.0.0/16, the documentation ranges) and of Docker's
/// own default `172.17.0.0/16`, so a container address in a log says which
/// worker it came from.
const BRIDGE_NET_OCTET: u8 = 30;

/// How a lab daemon networks its containers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DockerNet {
    /// `--bridge=none --iptables=false --ip6tables=false`: containers use
    /// host networking (the worker's namespace), and the daemon touches no
    /// links and no iptables at all.
    #[default]
    HostOnly,
    /// The daemon's own `docker0` (`--bip` from [`bridge_subnet`]) with its
    /// NAT and filter rules, inside the worker's namespace: containers get
    /// their own addresses and published ports (`-p IP:HOST:CONTAINER`) are
    /// DNATed as on a real host. The worker's `bridge-nf-call-iptables`
    /// stays at a new namespace's 1, which Docker's FORWARD rules expect (the
    /// lab's own bridges, which want 0, live in other namespaces).
    Bridge,
}

/// The `docker0` subnet of a bridged daemon: its gateway (the `--bip`
/// address) and prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeSubnet {
    /// The bridge's own address, `172.30.N.1`.
    pub gateway: Ipv4Addr,
    /// The prefix length (24).
    pub prefix: u8,
}

impl BridgeSubnet {
    /// The `--bip` value, `172.30.N.1/24`.
    pub fn bip(&self) -> String {
        format!("{}/{}", self.gateway, self.prefix)
    }

    /// Whether `ip` is inside this subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.gateway) & mask
    }
}

/// The bridge subnet of the `n`th daemon a test process starts:
/// `172.30.(n mod 256).0/24`. Daemons of one process (one test binary) never
/// share a subnet unless it starts more than 256; daemons of different
/// processes are in different namespaces anyway.
pub fn bridge_subnet(n: u32) -> BridgeSubnet {
    let third = u8::try_from(n % 256).unwrap_or(0);
    BridgeSubnet {
        gateway: Ipv4Addr::new(172, BRIDGE_NET_OCTET, third, 1),
        prefix: 24,
    }
}

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
    /// Its `docker0` subnet in [`DockerNet::Bridge`] mode (`None`: host
    /// networking only).
    pub bridge: Option<BridgeSubnet>,
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

/// Starts a Docker daemon inside `ns` with host networking only
/// ([`DockerNet::HostOnly`]) and waits until `docker info` answers.
/// Refuses if a system containerd is active (run scripts/setup to check).
pub fn start_dockerd(lab: &Lab, ns: &Netns) -> Result<Dockerd> {
    start_dockerd_with(lab, ns, DockerNet::HostOnly)
}

/// Starts a Docker daemon inside `ns` networking its containers as `net`
/// says, and waits until `docker info` answers (in bridge mode, also until
/// `docker0` has its address). Refuses if a system containerd is active.
pub fn start_dockerd_with(lab: &Lab, ns: &Netns, net: DockerNet) -> Result<Dockerd> {
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
    let mut args = vec![
        "--data-root".to_owned(),
        p("data"),
        "--exec-root".to_owned(),
        p("exec"),
        "-H".to_owned(),
        format!("unix://{}", socket.display()),
        "--pidfile".to_owned(),
        pidfile.to_string_lossy().into_owned(),
        "--shutdown-timeout=2".to_owned(),
    ];
    let bridge = match net {
        DockerNet::HostOnly => {
            args.extend(
                ["--bridge=none", "--iptables=false", "--ip6tables=false"].map(String::from),
            );
            None
        }
        DockerNet::Bridge => {
            let subnet = bridge_subnet(n);
            // IPv6 stays off (the default); iptables on, inside `ns` only.
            args.push(format!("--bip={}", subnet.bip()));
            Some(subnet)
        }
    };
    let proc = lab.spawn(
        ns,
        Spawn::new(dockerd)
            .args(args)
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
    if let Some(subnet) = bridge {
        let want = subnet.bip();
        proc.wait_for(
            &format!("docker0 in {ns} to have {want}"),
            START_TIMEOUT,
            || {
                ns.ip(["-4", "-o", "addr", "show", "dev", "docker0"])
                    .is_ok_and(|out| out.contains(&want))
            },
        )?;
    }
    Ok(Dockerd {
        ns: ns.clone(),
        dir,
        socket,
        proc,
        bridge,
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
    import_dir(dockerd, &root, tag, &[])
}

/// Imports the tree at `root` into `dockerd` as image `tag` (`tar -C root
/// -c . | docker import - tag`), with `changes` as `docker import
/// --change` instructions (`CMD [...]`, `WORKDIR /`).
fn import_dir(dockerd: &Dockerd, root: &Path, tag: &str, changes: &[&str]) -> Result<()> {
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start tar")?;
    let stdout = tar.stdout.take().context("no tar stdout")?;
    let mut c = Command::new(cmd::require_bin("docker")?);
    c.arg("-H").arg(dockerd.host()).arg("import");
    for change in changes {
        c.args(["--change", change]);
    }
    c.args(["-", tag]).stdin(Stdio::from(stdout));
    let out = c.output().context("cannot start docker import")?;
    let tar_status = tar.wait().context("wait for tar")?;
    if !tar_status.success() {
        bail!("tar of the image {tag} failed ({tar_status})");
    }
    if !out.status.success() {
        bail!(
            "`docker import - {tag}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The shared libraries `ldd` says the dynamically linked `program` loads,
/// the program interpreter included: the absolute paths it prints.
pub fn shared_libraries(program: &Path) -> Result<Vec<PathBuf>> {
    let out = cmd::run(Command::new("ldd").arg(program))
        .with_context(|| format!("ldd {}", program.display()))?;
    Ok(parse_ldd(&out))
}

/// The absolute paths in `ldd`'s output: `libc.so.6 => /lib/.../libc.so.6
/// (0x...)` gives the path after `=>`, `/lib64/ld-linux-x86-64.so.2
/// (0x...)` its first word; `linux-vdso.so.1 (0x...)` (no file) nothing.
fn parse_ldd(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, after)) => after.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// The contents of an image made from this host's own files, for
/// [`import_host_image`]: programs (copied with the shared libraries they
/// load, each at its own path), files written whole, empty directories,
/// and `docker import --change` instructions.
#[derive(Clone, Debug, Default)]
pub struct HostImage {
    /// Programs of this host, each copied to its own path with its shared
    /// libraries (from `ldd`).
    pub programs: Vec<PathBuf>,
    /// `(path in the image, contents)`.
    pub files: Vec<(String, Vec<u8>)>,
    /// Empty directories to make (paths in the image).
    pub dirs: Vec<String>,
    /// `docker import --change` instructions, e.g. `CMD ["/bin/x"]`.
    pub changes: Vec<String>,
}

/// Imports `image` into `dockerd` as `tag`. No registry is reachable, so
/// an image of a host program (nginx, say) is its binary, its libraries and
/// its configuration, as [`import_busybox_image`] does for busybox.
pub fn import_host_image(dockerd: &Dockerd, tag: &str, image: &HostImage) -> Result<()> {
    let root = dockerd.dir.join(format!("img-{}", sanitize_tag(tag)));
    let _ = std::fs::remove_dir_all(&root);
    let inside = |path: &Path| root.join(path.strip_prefix("/").unwrap_or(path));
    let copy = |from: &Path| -> Result<()> {
        let to = inside(from);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        std::fs::copy(from, &to)
            .with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
        Ok(())
    };
    for program in &image.programs {
        copy(program)?;
        for lib in shared_libraries(program)? {
            copy(&lib)?;
        }
    }
    for dir in &image.dirs {
        let dir = inside(Path::new(dir));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    }
    for (path, contents) in &image.files {
        let to = inside(Path::new(path));
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        std::fs::write(&to, contents).with_context(|| format!("write {}", to.display()))?;
    }
    let changes: Vec<&str> = image.changes.iter().map(String::as_str).collect();
    import_dir(dockerd, &root, tag, &changes)
}

/// `tag` with every character but `[A-Za-z0-9._-]` as `_`, for a directory
/// name.
fn sanitize_tag(tag: &str) -> String {
    tag.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The port the image made by [`import_nginx_image`] serves on.
pub const NGINX_PORT: u16 = 8080;

/// Worker processes of the nginx in [`import_nginx_image`]'s image.
pub const NGINX_WORKERS: u32 = 2;

/// The configuration of [`import_nginx_image`]'s nginx: [`NGINX_WORKERS`]
/// workers, `/www` on [`NGINX_PORT`] with keep-alive (a connection is
/// kept for a million requests and 75 s idle), no access log, errors to
/// stderr.
pub fn nginx_upstream_conf() -> String {
    format!(
        "daemon off;
master_process on;
worker_processes {NGINX_WORKERS};
user root root;
pid /run/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/html;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path /tmp/body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    server {{
        listen {NGINX_PORT} default_server;
        root /www;
    }}
}}
"
    )
}

/// Imports an nginx image named `tag` into `dockerd`, made from this host's
/// `/usr/sbin/nginx` (Debian's `nginx` package) and the libraries it
/// loads: it serves `page` as `/index.html` (and `/`) on [`NGINX_PORT`]
/// with [`nginx_upstream_conf`]; its default command runs it in the
/// foreground. The workload of the proxy benchmark's upstreams.
pub fn import_nginx_image(dockerd: &Dockerd, tag: &str, page: &[u8]) -> Result<()> {
    let nginx = PathBuf::from("/usr/sbin/nginx");
    if !nginx.exists() {
        bail!("/usr/sbin/nginx is missing: run scripts/setup (nginx)");
    }
    let file = |path: &str, text: &[u8]| (path.to_owned(), text.to_vec());
    let image = HostImage {
        programs: vec![nginx],
        files: vec![
            file("/etc/nginx/nginx.conf", nginx_upstream_conf().as_bytes()),
            file("/www/index.html", page),
            file("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
            file("/etc/group", b"root:x:0:\n"),
            file("/etc/nsswitch.conf", b"passwd: files\ngroup: files\n"),
        ],
        dirs: ["/tmp", "/run", "/var/log/nginx", "/var/lib/nginx"]
            .map(str::to_owned)
            .to_vec(),
        changes: vec![r#"CMD ["/usr/sbin/nginx", "-c", "/etc/nginx/nginx.conf"]"#.to_owned()],
    };
    import_host_image(dockerd, tag, &image)
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
    fn bridge_subnets_are_distinct_and_private() {
        assert_eq!(bridge_subnet(0).bip(), "172.30.0.1/24");
        assert_eq!(bridge_subnet(7).bip(), "172.30.7.1/24");
        assert_ne!(bridge_subnet(1), bridge_subnet(2));
        assert_eq!(bridge_subnet(256), bridge_subnet(0));
        let s = bridge_subnet(3);
        assert!(s.contains(Ipv4Addr::new(172, 30, 3, 2)));
        assert!(!s.contains(Ipv4Addr::new(172, 30, 4, 2)));
        assert!(!s.contains(Ipv4Addr::new(172, 17, 0, 2)));
    }

    #[test]
    fn ldd_output_gives_the_files() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f27)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f28)\n\
                   \tlibgone.so.1 => not found\n";
        assert_eq!(
            parse_ldd(out),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tstatically linked\n").is_empty());
        assert_eq!(sanitize_tag("local/nginx:1"), "local_nginx_1");
    }

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
