//! A control plane and its workers on lab namespaces: the fixture of the
//! tests that run `warren serve` and `warren join`.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use warren_netns_tests::wg::warren_bin;
use warren_netns_tests::{Host, Internet, Lab, Nat, Proc, Signal, Spawn};

pub const JOINED: Duration = Duration::from_secs(30);

/// The control plane's mesh address (the default CIDR's first host).
pub const CONTROL_IP: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 1);

/// A control plane on the public segment with its embedded relay.
pub struct Cluster {
    pub lab: Lab,
    pub net: Internet,
    pub control: Host,
    pub control_dir: PathBuf,
    pub iface: String,
    extra: Vec<String>,
    pub serve: Proc,
}

impl Cluster {
    pub fn new(tag: &str) -> Cluster {
        Cluster::with(tag, |_, _, _| Vec::new())
    }

    /// A cluster whose `warren serve` also gets the arguments `extra`
    /// returns (given the lab, the net and the control plane's data dir).
    pub fn with(tag: &str, extra: impl FnOnce(&Lab, &Internet, &Path) -> Vec<String>) -> Cluster {
        let lab = Lab::new(tag).unwrap();
        let net = Internet::new(&lab).unwrap();
        let control = net.add_public_host(&lab, "control").unwrap();
        let control_dir = lab.dir().join("control");
        let iface = lab.iface_name("wctl");
        let extra = extra(&lab, &net, &control_dir);
        let serve = start_serve(&lab, &control, &control_dir, &iface, &extra);
        Cluster {
            lab,
            net,
            control,
            control_dir,
            iface,
            extra,
            serve,
        }
    }

    /// Kills the control plane with SIGKILL and starts it again.
    pub fn kill_and_restart(&mut self) {
        self.serve.signal(Signal::Kill).unwrap();
        self.serve.wait_exit(Duration::from_secs(5)).unwrap();
        self.start_again();
    }

    /// Starts the control plane again (after it died) with the same data.
    pub fn start_again(&mut self) {
        let (lab, host, dir) = (&self.lab, &self.control, &self.control_dir);
        self.serve = start_serve(lab, host, dir, &self.iface, &self.extra);
    }

    /// `warren ARGS` on the control host, as its operator.
    pub fn admin(&self, args: &[&str]) -> String {
        let out = self
            .control
            .ns
            .command("env")
            .arg(format!("WARREN_DATA_DIR={}", self.control_dir.display()))
            .arg(warren_bin().unwrap())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn token(&self) -> String {
        self.admin(&["token", "create"])
    }
}

pub fn start_serve(lab: &Lab, host: &Host, data_dir: &Path, iface: &str, extra: &[String]) -> Proc {
    let serve = lab
        .spawn(
            &host.ns,
            Spawn::new(warren_bin().unwrap())
                .arg("serve")
                .arg("--data-dir")
                .arg(data_dir)
                .args(["--iface", iface])
                .args(extra)
                .env("WARREN_LOG", "debug")
                .name("serve"),
        )
        .unwrap();
    serve
        .wait_for_log("control plane up", Duration::from_secs(15))
        .unwrap();
    serve
}

/// A worker's host and data directory.
pub struct Worker {
    pub host: Host,
    pub dir: PathBuf,
    pub iface: String,
    /// Joins with `--direct --private-address` (its LAN address).
    pub direct: bool,
    /// More arguments for `warren join` (`--docker-host …`).
    pub extra: Vec<String>,
}

impl Worker {
    pub fn new(cluster: &Cluster, name: &str, nat: Nat) -> Worker {
        let host = cluster.net.add_host(&cluster.lab, name, nat).unwrap();
        Worker::on(cluster, name, host, false)
    }

    pub fn on(cluster: &Cluster, name: &str, host: Host, direct: bool) -> Worker {
        Worker {
            dir: cluster.lab.dir().join(format!("{name}-data")),
            iface: cluster.lab.iface_name("wj"),
            host,
            direct,
            extra: Vec::new(),
        }
    }

    pub fn join_args(&self, name: &str, token: Option<&str>) -> Vec<String> {
        let mut args = vec!["join".to_owned(), "--name".to_owned(), name.to_owned()];
        if self.direct {
            let ip = self.host.ip.to_string();
            args.extend(["--direct".to_owned(), "--private-address".to_owned(), ip]);
        } else {
            args.push("--relay".to_owned());
        }
        args.extend(["--data-dir".to_owned(), self.dir.display().to_string()]);
        args.extend(["--iface".to_owned(), self.iface.clone()]);
        if let Some(token) = token {
            args.extend(["--token".to_owned(), token.to_owned()]);
        }
        args.extend(self.extra.iter().cloned());
        args
    }

    /// Starts `warren join` and waits for its `joined` line; returns the
    /// agent and its mesh address.
    pub fn join(&self, cluster: &Cluster, name: &str, token: Option<&str>) -> (Proc, Ipv4Addr) {
        let agent = cluster
            .lab
            .spawn(
                &self.host.ns,
                Spawn::new(warren_bin().unwrap())
                    .args(self.join_args(name, token))
                    .env("WARREN_LOG", "debug")
                    .name(format!("join-{name}")),
            )
            .unwrap();
        agent
            .wait_for_log(&format!("joined {name} "), JOINED)
            .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_tail(30)));
        let log = agent.log();
        let line = log.lines().find(|l| l.starts_with("joined ")).unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        let mode = if self.direct { "(direct)" } else { "(relay)" };
        assert_eq!(fields[3], mode, "{line}");
        (agent, fields[2].parse().unwrap())
    }

    /// `warren join` that must fail; returns its one error line.
    pub fn refused(&self, name: &str, token: &str) -> String {
        let out: Output = self
            .host
            .ns
            .command(warren_bin().unwrap())
            .args(self.join_args(name, Some(token)))
            .output()
            .unwrap();
        assert!(!out.status.success(), "the join succeeded");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let line = stderr.lines().last().unwrap_or_default().to_owned();
        assert!(line.starts_with("warren: error: "), "{stderr}");
        line
    }
}
