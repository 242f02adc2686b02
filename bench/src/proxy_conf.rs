//! The reverse proxies the proxy section measures beside warren's: nginx,
//! HAProxy and Caddy (Debian's packages), each configured alike and run on
//! the control plane's host, and what the section reads of each process
//! (its pids for CPU time, its access log for the lines it wrote).
//!
//! The configurations, for every proxy: 2 workers or threads; HTTP/1.1
//! keep-alive to the upstreams, with enough idle connections kept that 64
//! concurrent requests never need a new one; keep-alive to clients
//! (75 s idle); a route per upstream by `Host`; `X-Forwarded-For`,
//! `-Proto` and `-Host` set (as warren sets them); one access log line per
//! request, written to a file as each request ends (no buffering), in each
//! proxy's usual format. Each also listens for HTTPS on a port of its
//! own ([`ProxyKind::tls_port`]), HTTP/2 by ALPN, for the topologies' TLS
//! host names ([`Topology::tls_host`]) with one self-signed certificate
//! ([`Tls`]), routed to the same upstreams the same way.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use warren_netns_tests::{Lab, Netns, Proc, Spawn};

use crate::proxy::{ProxyKind, Topology};

/// Worker processes (nginx) or threads (HAProxy, Caddy's GOMAXPROCS).
pub const WORKERS: u32 = 2;

/// Idle upstream connections nginx keeps per worker and Caddy per host.
pub const IDLE_UPSTREAM: u32 = 64;

/// The frontend name in HAProxy's log lines, which tells them from its
/// other output.
const HAPROXY_FRONTEND: &str = "ingress";

/// Where each topology's upstream is: `mesh-ip:host-port`, as `warren ps`
/// lists it.
#[derive(Clone, Debug)]
pub struct Upstreams(pub Vec<(Topology, SocketAddr)>);

impl Upstreams {
    /// The upstream of `topology`.
    pub fn of(&self, topology: Topology) -> Result<SocketAddr> {
        self.0
            .iter()
            .find(|(t, _)| *t == topology)
            .map(|(_, a)| *a)
            .with_context(|| format!("no upstream for {}", topology.name()))
    }
}

/// The certificate every proxy's HTTPS listener serves: self-signed, for
/// every topology's host names, in the files each proxy reads.
#[derive(Clone, Debug)]
pub struct Tls {
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// Its key, PEM.
    pub key: PathBuf,
    /// Both in one file (HAProxy's `crt`).
    pub combined: PathBuf,
}

impl Tls {
    /// Makes the certificate and writes its files under `dir`.
    pub fn write(dir: &Path) -> Result<Tls> {
        let names: Vec<&str> = Topology::ALL
            .iter()
            .flat_map(|t| [t.host(), t.tls_host()])
            .collect();
        let (cert_pem, key_pem) = warren_netns_tests::acme::self_signed_pem(&names)?;
        let tls = Tls {
            cert: dir.join("bench-cert.pem"),
            key: dir.join("bench-key.pem"),
            combined: dir.join("bench-cert-key.pem"),
        };
        for (path, text) in [
            (&tls.cert, cert_pem.clone()),
            (&tls.key, key_pem.clone()),
            (&tls.combined, cert_pem + &key_pem),
        ] {
            std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
        }
        Ok(tls)
    }
}

/// Where a proxy listens: HTTP/1.1 cleartext on `http`, HTTPS on `https`.
#[derive(Clone, Copy, Debug)]
pub struct Ports {
    /// Cleartext HTTP/1.1 (wrk's runs).
    pub http: u16,
    /// HTTPS, HTTP/2 or HTTP/1.1 by ALPN (h2load's runs).
    pub https: u16,
}

impl Ports {
    /// `kind`'s two ports.
    pub fn of(kind: ProxyKind) -> Ports {
        Ports {
            http: kind.port(),
            https: kind.tls_port(),
        }
    }
}

/// nginx's configuration, its files under `dir`.
pub fn nginx_conf(dir: &Path, ports: Ports, tls: &Tls, upstreams: &Upstreams) -> String {
    let port = ports.http;
    let d = dir.display();
    let mut c = format!(
        "daemon off;
master_process on;
worker_processes {WORKERS};
user root root;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {d}/nginx-access.log combined;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path {d}/nginx-body;
    proxy_temp_path {d}/nginx-proxy;
    fastcgi_temp_path {d}/nginx-fastcgi;
    uwsgi_temp_path {d}/nginx-uwsgi;
    scgi_temp_path {d}/nginx-scgi;
"
    );
    for (topology, addr) in &upstreams.0 {
        let name = topology.name();
        let location = format!(
            "        location / {{
            proxy_pass http://{name};
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }}
"
        );
        let _ = write!(
            c,
            "    upstream {name} {{
        server {addr};
        keepalive {IDLE_UPSTREAM};
        keepalive_requests 1000000;
        keepalive_timeout 75s;
    }}
    server {{
        listen {port};
        server_name {host};
{location}    }}
    server {{
        listen {https} ssl http2;
        server_name {tls_host};
        ssl_certificate {cert};
        ssl_certificate_key {key};
{location}    }}
",
            host = topology.host(),
            tls_host = topology.tls_host(),
            https = ports.https,
            cert = tls.cert.display(),
            key = tls.key.display(),
        );
    }
    c.push_str("}\n");
    c
}

/// HAProxy's configuration (its log lines go to stdout).
pub fn haproxy_conf(ports: Ports, tls: &Tls, upstreams: &Upstreams) -> String {
    let port = ports.http;
    let mut c = format!(
        "global
    nbthread {WORKERS}
    maxconn 8192
    log stdout format raw local0 info
defaults
    mode http
    log global
    option httplog
    option http-keep-alive
    option forwardfor
    timeout connect 3s
    timeout client 30s
    timeout server 60s
    timeout http-keep-alive 75s
frontend {HAPROXY_FRONTEND}
    bind 0.0.0.0:{port}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
"
    );
    for (topology, _) in &upstreams.0 {
        let _ = writeln!(
            c,
            "    use_backend {name} if {{ req.hdr(host),field(1,:) -i {host} }}",
            name = topology.name(),
            host = topology.host()
        );
    }
    // The TLS frontend's name holds the plain one's, which the log lines
    // are counted by.
    let _ = write!(
        c,
        "frontend {HAPROXY_FRONTEND}-tls
    bind 0.0.0.0:{https} ssl crt {crt} alpn h2,http/1.1
    http-request set-header X-Forwarded-Proto https
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
",
        https = ports.https,
        crt = tls.combined.display()
    );
    for (topology, _) in &upstreams.0 {
        let _ = writeln!(
            c,
            "    use_backend {name} if {{ req.hdr(host),field(1,:) -i {host} }}",
            name = topology.name(),
            host = topology.tls_host()
        );
    }
    for (topology, addr) in &upstreams.0 {
        let name = topology.name();
        let _ = write!(c, "backend {name}\n    server {name} {addr}\n");
    }
    c
}

/// Caddy's Caddyfile, its files under `dir`.
pub fn caddyfile(dir: &Path, ports: Ports, tls: &Tls, upstreams: &Upstreams) -> String {
    let d = dir.display();
    let port = ports.http;
    let mut c = format!(
        "{{
    admin off
    auto_https off
    storage file_system {d}/caddy-data
}}
:{port} {{
    log {{
        output file {d}/caddy-access.log {{
            roll_disabled
        }}
    }}
"
    );
    caddy_routes(&mut c, upstreams, Topology::host);
    c.push_str("}\n");
    let sites: Vec<String> = upstreams
        .0
        .iter()
        .map(|(t, _)| format!("https://{}:{}", t.tls_host(), ports.https))
        .collect();
    let _ = write!(
        c,
        "{sites} {{
    tls {cert} {key}
    log {{
        output file {d}/caddy-access.log {{
            roll_disabled
        }}
    }}
",
        sites = sites.join(", "),
        cert = tls.cert.display(),
        key = tls.key.display(),
    );
    caddy_routes(&mut c, upstreams, Topology::tls_host);
    c.push_str("}\n");
    c
}

/// One site's routes in a Caddyfile: each topology's host (as `host_of`
/// names it) to its upstream, with keep-alive.
fn caddy_routes(c: &mut String, upstreams: &Upstreams, host_of: fn(Topology) -> &'static str) {
    for (topology, addr) in &upstreams.0 {
        let name = topology.name();
        let _ = write!(
            c,
            "    @{name} host {host}
    reverse_proxy @{name} {addr} {{
        transport http {{
            keepalive 75s
            keepalive_idle_conns {IDLE_UPSTREAM}
            keepalive_idle_conns_per_host {IDLE_UPSTREAM}
        }}
    }}
",
            host = host_of(*topology)
        );
    }
}

/// Counts the lines a process appended to its access log since the last
/// count (only lines holding `needle`, when set): one line per request is
/// what every proxy is configured to write.
#[derive(Debug)]
pub struct LogLines {
    path: PathBuf,
    needle: Option<&'static str>,
    offset: u64,
}

impl LogLines {
    /// Counts lines of `path` (holding `needle`), from its current end.
    pub fn new(path: PathBuf, needle: Option<&'static str>) -> LogLines {
        let offset = std::fs::metadata(&path).map_or(0, |m| m.len());
        LogLines {
            path,
            needle,
            offset,
        }
    }

    /// The whole lines appended since the last call.
    pub fn take(&mut self) -> Result<u64> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).with_context(|| format!("open {}", self.path.display())),
        };
        file.seek(SeekFrom::Start(self.offset))
            .with_context(|| format!("seek in {}", self.path.display()))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .with_context(|| format!("read {}", self.path.display()))?;
        // Up to the last newline: a line being written counts next time.
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        self.offset += whole as u64;
        let lines = bytes[..whole]
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .filter(|line| {
                self.needle
                    .is_none_or(|needle| line.windows(needle.len()).any(|w| w == needle.as_bytes()))
            })
            .count();
        Ok(lines as u64)
    }
}

/// A reverse proxy of the comparison, running in the control plane's
/// namespace.
pub struct Started {
    /// Which one.
    pub kind: ProxyKind,
    /// The process the lab started (nginx's master).
    pub proc: Proc,
    /// Its access log.
    pub log: LogLines,
}

/// Starts `kind` (not warren, which is `warren serve` itself) in `ns` on
/// `ports` (HTTPS with `tls`), its files under `dir`, proxying to
/// `upstreams`.
pub fn start(
    lab: &Lab,
    ns: &Netns,
    dir: &Path,
    kind: ProxyKind,
    ports: Ports,
    tls: &Tls,
    upstreams: &Upstreams,
) -> Result<Started> {
    let write = |name: &str, text: String| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    };
    let (spec, log) = match kind {
        ProxyKind::Warren => bail!("warren's proxy is `warren serve` itself"),
        ProxyKind::Nginx => {
            let conf = write("nginx.conf", nginx_conf(dir, ports, tls, upstreams))?;
            let spec = Spawn::new("nginx")
                .arg("-e")
                .arg(dir.join("nginx-error.log"))
                .arg("-c")
                .arg(conf)
                .name("nginx-proxy");
            (
                spec,
                Some(LogLines::new(dir.join("nginx-access.log"), None)),
            )
        }
        ProxyKind::Haproxy => {
            let conf = write("haproxy.cfg", haproxy_conf(ports, tls, upstreams))?;
            let spec = Spawn::new("haproxy")
                .arg("-db")
                .arg("-f")
                .arg(conf)
                .name("haproxy-proxy");
            // Its log lines go to stdout: the lab's log file of the process.
            (spec, None)
        }
        ProxyKind::Caddy => {
            let conf = write("Caddyfile", caddyfile(dir, ports, tls, upstreams))?;
            let home = dir.join("caddy-home");
            std::fs::create_dir_all(&home).context("create caddy's home")?;
            let spec = Spawn::new("caddy")
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(conf)
                .env("GOMAXPROCS", WORKERS.to_string())
                .env("HOME", &home)
                .env("XDG_DATA_HOME", home.join("data"))
                .env("XDG_CONFIG_HOME", home.join("config"))
                .name("caddy-proxy");
            (
                spec,
                Some(LogLines::new(dir.join("caddy-access.log"), None)),
            )
        }
    };
    let proc = lab.spawn(ns, spec)?;
    let log =
        log.unwrap_or_else(|| LogLines::new(proc.log_path().to_path_buf(), Some(HAPROXY_FRONTEND)));
    Ok(Started { kind, proc, log })
}

/// The pids of `pid` and its children (nginx's master and workers).
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if parent_of(&stat) == Some(pid) {
            pids.push(child);
        }
    }
    pids
}

/// The parent pid in the text of `/proc/PID/stat` (field 4, counted
/// after the command name's last `)`).
fn parent_of(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams() -> Upstreams {
        Upstreams(vec![
            (Topology::Local, "100.96.0.1:20000".parse().unwrap()),
            (Topology::Mesh, "100.96.0.2:20001".parse().unwrap()),
        ])
    }

    #[test]
    fn every_config_routes_both_hosts_to_their_upstreams() {
        let dir = Path::new("/tmp/x");
        let tls = Tls {
            cert: dir.join("c.pem"),
            key: dir.join("k.pem"),
            combined: dir.join("ck.pem"),
        };
        let ports = |http, https| Ports { http, https };
        let nginx = nginx_conf(dir, ports(8081, 8441), &tls, &upstreams());
        let haproxy = haproxy_conf(ports(8082, 8442), &tls, &upstreams());
        let caddy = caddyfile(dir, ports(8083, 8443), &tls, &upstreams());
        for (conf, needle) in [
            (&nginx, "server_name local.bench.test;"),
            (&nginx, "server 100.96.0.2:20001;"),
            (&nginx, "worker_processes 2;"),
            (&nginx, "keepalive 64;"),
            (&nginx, "listen 8081;"),
            (
                &haproxy,
                "use_backend mesh if { req.hdr(host),field(1,:) -i mesh.bench.test }",
            ),
            (&haproxy, "server local 100.96.0.1:20000"),
            (&haproxy, "nbthread 2"),
            (&haproxy, "bind 0.0.0.0:8082"),
            (&caddy, "@mesh host mesh.bench.test"),
            (&caddy, "reverse_proxy @local 100.96.0.1:20000"),
            (&caddy, ":8083 {"),
            (&caddy, "keepalive_idle_conns_per_host 64"),
            (&nginx, "listen 8441 ssl http2;"),
            (&nginx, "server_name mesh-tls.bench.test;"),
            (&nginx, "ssl_certificate_key /tmp/x/k.pem;"),
            (
                &haproxy,
                "bind 0.0.0.0:8442 ssl crt /tmp/x/ck.pem alpn h2,http/1.1",
            ),
            (
                &haproxy,
                "use_backend local if { req.hdr(host),field(1,:) -i local-tls.bench.test }",
            ),
            (
                &caddy,
                "https://local-tls.bench.test:8443, https://mesh-tls.bench.test:8443 {",
            ),
            (&caddy, "tls /tmp/x/c.pem /tmp/x/k.pem"),
            (&caddy, "@mesh host mesh-tls.bench.test"),
        ] {
            assert!(conf.contains(needle), "{needle} not in\n{conf}");
        }
        // Braces balance (a slip in a format! string would not).
        for conf in [&nginx, &caddy] {
            assert_eq!(
                conf.matches('{').count(),
                conf.matches('}').count(),
                "{conf}"
            );
        }
    }

    #[test]
    fn counts_appended_lines_with_the_needle() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("wb-loglines-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("log");
        std::fs::write(&path, "old ingress line\n")?;
        let mut lines = LogLines::new(path.clone(), Some("ingress"));
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
        f.write_all(b"ingress a\nother\ningress b\ningress c (half")?;
        assert_eq!(lines.take()?, 2);
        f.write_all(b")\n")?;
        assert_eq!(lines.take()?, 1);
        assert_eq!(lines.take()?, 0);
        let mut all = LogLines::new(dir.join("missing"), None);
        assert_eq!(all.take()?, 0);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn reads_the_parent_pid() {
        assert_eq!(parent_of("42 (ng inx) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("garbage"), None);
        assert!(with_children(std::process::id()).contains(&std::process::id()));
    }
}
