//! A control plane and its workers on lab namespaces: `warren serve` on a
//! public host with its embedded relay, and `warren join` on workers behind
//! NAT routers or in a VPC, optionally each with a Docker daemon of its own
//! that runs the replicas placed on it.
//!
//! This is the fixture of the end-to-end tests that run the control plane
//! (`tests/join.rs`, `tests/workloads.rs`, ...) and of the benchmark's
//! workload sections (`warren-bench --only deploy,agent`), so both build the
//! same cluster. Everything belongs to the [`Cluster`]'s [`Lab`] and goes
//! when it drops.

use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::docker::{import_busybox_image, start_dockerd_with, DockerNet, Dockerd};
use crate::lab::Lab;
use crate::process::{Proc, Signal, Spawn};
use crate::topology::{Host, Internet, Nat};
use crate::wg::warren_bin;

/// How long a `warren join` gets to print its `joined` line.
pub const JOINED: Duration = Duration::from_secs(30);

/// How long `warren serve` gets to say it is up.
pub const SERVE_UP: Duration = Duration::from_secs(15);

/// The control plane's mesh address (the default CIDR's first host).
pub const CONTROL_IP: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 1);

/// The image [`DockerNode`]s import: the static busybox (see
/// [`import_busybox_image`]).
pub const BUSYBOX_IMAGE: &str = "local/busybox:1";

/// The workload the tests and the benchmark deploy: an httpd on port 8080
/// that answers `/` with its container's hostname.
pub const HTTPD: &str = "echo $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www";

/// The arguments of `warren deploy NAME --image BUSYBOX_IMAGE --replicas N
/// --port 8080 EXTRA... -- sh -c HTTPD`: [`HTTPD`] as service `name`.
pub fn deploy_httpd_args(name: &str, replicas: u32, extra: &[&str]) -> Vec<String> {
    deploy_script_args(name, replicas, extra, HTTPD)
}

/// [`deploy_httpd_args`] with `script` (run by `sh -c`, an httpd on port
/// 8080) in place of [`HTTPD`].
pub fn deploy_script_args(name: &str, replicas: u32, extra: &[&str], script: &str) -> Vec<String> {
    let mut args: Vec<String> = ["deploy", name, "--image", BUSYBOX_IMAGE, "--replicas"]
        .map(str::to_owned)
        .to_vec();
    args.push(replicas.to_string());
    args.extend(["--port", "8080"].map(str::to_owned));
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args.extend(["--", "sh", "-c", script].map(str::to_owned));
    args
}

/// The script of an httpd on port 8080 whose page says `version` and that
/// stops at SIGTERM, as a service built to be stopped does (a busybox httpd
/// run as the container's PID 1, as [`HTTPD`] runs it, ignores SIGTERM and
/// is killed only after the agent's stop grace): the shell stays PID 1 and
/// exits on SIGTERM, which ends the container's httpd with it.
pub fn versioned_httpd(version: &str) -> String {
    format!("echo {version} > /www/index.html; trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait")
}

/// A control plane on the public segment with its embedded relay.
pub struct Cluster {
    /// The lab everything lives in.
    pub lab: Lab,
    /// The lab "internet" the control plane and the workers' routers are on.
    pub net: Internet,
    /// The control plane's host.
    pub control: Host,
    /// `warren serve --data-dir`.
    pub control_dir: PathBuf,
    /// The control plane's mesh interface.
    pub iface: String,
    extra: Vec<String>,
    log: String,
    /// The `warren serve` process.
    pub serve: Proc,
}

impl Cluster {
    /// A new lab (named after `tag`) with a control plane in it.
    pub fn new(tag: &str) -> Result<Cluster> {
        Cluster::with(tag, |_, _, _| Ok(Vec::new()))
    }

    /// A cluster whose `warren serve` also gets the arguments `extra`
    /// returns (given the lab, the net and the control plane's data dir).
    pub fn with(
        tag: &str,
        extra: impl FnOnce(&Lab, &Internet, &Path) -> Result<Vec<String>>,
    ) -> Result<Cluster> {
        Cluster::on_control_host(tag, |lab, net, _, dir| extra(lab, net, dir))
    }

    /// [`Cluster::with`], `extra` also given the control plane's host
    /// before `warren serve` starts there (to start a Docker daemon in its
    /// namespace for `--docker-host`).
    pub fn on_control_host(
        tag: &str,
        extra: impl FnOnce(&Lab, &Internet, &Host, &Path) -> Result<Vec<String>>,
    ) -> Result<Cluster> {
        Cluster::on_control_host_logging(tag, SERVE_LOG, extra)
    }

    /// [`Cluster::on_control_host`] with `warren serve` logging at `log`
    /// (its `WARREN_LOG`, e.g. `info`) rather than [`SERVE_LOG`]: the
    /// proxy benchmark runs it with the access log as a production
    /// control plane has it.
    pub fn on_control_host_logging(
        tag: &str,
        log: &str,
        extra: impl FnOnce(&Lab, &Internet, &Host, &Path) -> Result<Vec<String>>,
    ) -> Result<Cluster> {
        let lab = Lab::new(tag)?;
        let net = Internet::new(&lab)?;
        let control = net.add_public_host(&lab, "control")?;
        let control_dir = lab.dir().join("control");
        let iface = lab.iface_name("wctl");
        let extra = extra(&lab, &net, &control, &control_dir)?;
        let serve = start_serve_logging(&lab, &control, &control_dir, &iface, &extra, log)?;
        Ok(Cluster {
            lab,
            net,
            control,
            control_dir,
            iface,
            extra,
            log: log.to_owned(),
            serve,
        })
    }

    /// Kills the control plane with SIGKILL and starts it again.
    pub fn kill_and_restart(&mut self) -> Result<()> {
        self.serve.signal(Signal::Kill)?;
        self.serve.wait_exit(Duration::from_secs(5))?;
        self.start_again()
    }

    /// Starts the control plane again (after it died) with the same data.
    pub fn start_again(&mut self) -> Result<()> {
        let (lab, host, dir) = (&self.lab, &self.control, &self.control_dir);
        self.serve = start_serve_logging(lab, host, dir, &self.iface, &self.extra, &self.log)?;
        Ok(())
    }

    /// The command `warren ARGS` on the control host, as its operator (with
    /// the control plane's data dir, which holds the admin credential).
    pub fn admin_command<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Command> {
        let mut command = self.control.ns.command("env");
        command
            .arg(format!("WARREN_DATA_DIR={}", self.control_dir.display()))
            .arg(warren_bin()?)
            .args(args);
        Ok(command)
    }

    /// `warren ARGS` on the control host, as its operator: what it printed
    /// and its exit status, whatever that is.
    pub fn admin_output<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output> {
        let mut command = self.admin_command(args)?;
        command
            .output()
            .with_context(|| format!("cannot run `{}`", crate::cmd::display(&command)))
    }

    /// `warren ARGS` on the control host, as its operator: its stdout,
    /// trimmed; an error with its stderr if it fails.
    pub fn admin<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        let out = self.admin_output(args)?;
        if !out.status.success() {
            let line: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
            bail!(
                "`warren {}` failed ({}): {}",
                line.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8(out.stdout)
            .context("warren printed something that is not UTF-8")?
            .trim()
            .to_owned())
    }

    /// A new join token (`warren token create`).
    pub fn token(&self) -> Result<String> {
        self.admin(&["token", "create"])
    }

    /// Every replica, as `warren ps --json` lists them.
    pub fn replicas(&self) -> Result<Vec<Value>> {
        let text = self.admin(&["ps", "--json"])?;
        let listed: Value =
            serde_json::from_str(&text).with_context(|| format!("warren ps --json: {text}"))?;
        listed["replicas"]
            .as_array()
            .cloned()
            .with_context(|| format!("warren ps --json has no replicas list: {text}"))
    }

    /// The nodes the healthy replicas of `service` are on, sorted.
    pub fn healthy_on(&self, service: &str) -> Result<Vec<String>> {
        let mut nodes = Vec::new();
        for replica in self.replicas()? {
            if replica["service"] == service && replica["health"] == "healthy" {
                let node = replica["node"]
                    .as_str()
                    .with_context(|| format!("a replica without a node: {replica}"))?;
                nodes.push(node.to_owned());
            }
        }
        nodes.sort();
        Ok(nodes)
    }
}

/// `warren serve`'s `WARREN_LOG` in the lab unless told otherwise.
pub const SERVE_LOG: &str = "debug";

/// `warren serve --node-timeout` in the lab unless a test sets its own:
/// long, so that a loaded CI machine does not make a node look dead; the
/// failover tests set the default back.
pub const LAB_NODE_TIMEOUT: &str = "15s";

/// Starts `warren serve` on `host` and waits until it says it is up.
pub fn start_serve(
    lab: &Lab,
    host: &Host,
    data_dir: &Path,
    iface: &str,
    extra: &[String],
) -> Result<Proc> {
    start_serve_logging(lab, host, data_dir, iface, extra, SERVE_LOG)
}

/// [`start_serve`] with `WARREN_LOG` set to `log`.
pub fn start_serve_logging(
    lab: &Lab,
    host: &Host,
    data_dir: &Path,
    iface: &str,
    extra: &[String],
    log: &str,
) -> Result<Proc> {
    let serve = lab.spawn(
        &host.ns,
        Spawn::new(warren_bin()?)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--iface", iface])
            .args(
                (!extra.iter().any(|a| a == "--node-timeout"))
                    .then_some(["--node-timeout", LAB_NODE_TIMEOUT])
                    .into_iter()
                    .flatten(),
            )
            .args(extra)
            .env("WARREN_LOG", log)
            .name("serve"),
    )?;
    serve.wait_for_log("control plane up", SERVE_UP)?;
    Ok(serve)
}

/// A worker's host and data directory.
pub struct Worker {
    /// The host it runs on.
    pub host: Host,
    /// `warren join --data-dir`.
    pub dir: PathBuf,
    /// Its mesh interface.
    pub iface: String,
    /// Joins with `--direct --private-address` (its LAN address).
    pub direct: bool,
    /// More arguments for `warren join` (`--docker-host …`).
    pub extra: Vec<String>,
}

impl Worker {
    /// A `--relay` worker on a new host behind a `nat` router.
    pub fn new(cluster: &Cluster, name: &str, nat: Nat) -> Result<Worker> {
        let host = cluster.net.add_host(&cluster.lab, name, nat)?;
        Ok(Worker::on(cluster, name, host, false))
    }

    /// A worker on `host`; `direct` joins with `--direct`.
    pub fn on(cluster: &Cluster, name: &str, host: Host, direct: bool) -> Worker {
        Worker {
            dir: cluster.lab.dir().join(format!("{name}-data")),
            iface: cluster.lab.iface_name("wj"),
            host,
            direct,
            extra: Vec::new(),
        }
    }

    /// The arguments of `warren join` for node `name`; a token goes in a
    /// file beside the data directory (`--token-file`), as a careful
    /// operator passes it, out of the process list.
    pub fn join_args(&self, name: &str, token: Option<&str>) -> Result<Vec<String>> {
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
            let file = PathBuf::from(format!("{}.token", self.dir.display()));
            std::fs::write(&file, format!("{token}\n"))
                .with_context(|| format!("writing {}", file.display()))?;
            args.extend(["--token-file".to_owned(), file.display().to_string()]);
        }
        args.extend(self.extra.iter().cloned());
        Ok(args)
    }

    /// Starts `warren join` and waits for its `joined` line; returns the
    /// agent and its mesh address.
    pub fn join(
        &self,
        cluster: &Cluster,
        name: &str,
        token: Option<&str>,
    ) -> Result<(Proc, Ipv4Addr)> {
        let agent = cluster.lab.spawn(
            &self.host.ns,
            Spawn::new(warren_bin()?)
                .args(self.join_args(name, token)?)
                .env("WARREN_LOG", "debug")
                .name(format!("join-{name}")),
        )?;
        agent
            .wait_for_log(&format!("joined {name} "), JOINED)
            .with_context(|| agent.log_tail(30))?;
        let log = agent.log();
        let line = log
            .lines()
            .find(|l| l.starts_with("joined "))
            .with_context(|| format!("no `joined` line: {}", agent.log_tail(30)))?;
        // `joined NAME IP (MODE)`
        let fields: Vec<&str> = line.split_whitespace().collect();
        let mode = if self.direct { "(direct)" } else { "(relay)" };
        if fields.get(3) != Some(&mode) {
            bail!("{name} joined, but not {mode}: {line}");
        }
        let ip = fields
            .get(2)
            .and_then(|ip| ip.parse().ok())
            .with_context(|| format!("no mesh address in {line:?}"))?;
        Ok((agent, ip))
    }

    /// `warren join` that must fail; returns its one error line.
    pub fn refused(&self, name: &str, token: &str) -> Result<String> {
        let out: Output = self
            .host
            .ns
            .command(warren_bin()?)
            .args(self.join_args(name, Some(token))?)
            .output()
            .context("cannot run `warren join`")?;
        if out.status.success() {
            bail!("the join succeeded");
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let line = stderr.lines().last().unwrap_or_default().to_owned();
        if !line.starts_with("warren: error: ") {
            bail!("not one error line: {stderr}");
        }
        Ok(line)
    }
}

/// A worker with its own Docker daemon (bridge mode, the busybox image
/// imported) and, once joined, its agent.
pub struct DockerNode {
    /// The worker; its `extra` names the daemon (`--docker-host`).
    pub worker: Worker,
    /// Its Docker daemon.
    pub dockerd: Dockerd,
    /// Its `warren join`, once [`DockerNode::join`] started it.
    pub agent: Option<Proc>,
    /// The node's name.
    pub name: String,
}

impl DockerNode {
    /// A node `name` on `worker`'s host: starts its daemon and imports
    /// [`BUSYBOX_IMAGE`]; not joined yet.
    pub fn new(cluster: &Cluster, name: &str, worker: Worker) -> Result<DockerNode> {
        let dockerd = start_dockerd_with(&cluster.lab, &worker.host.ns, DockerNet::Bridge)?;
        import_busybox_image(&dockerd, BUSYBOX_IMAGE)?;
        let mut worker = worker;
        worker.extra = vec!["--docker-host".to_owned(), dockerd.host()];
        Ok(DockerNode {
            worker,
            dockerd,
            agent: None,
            name: name.to_owned(),
        })
    }

    /// A `--direct` node alone in a new VPC (a LAN `NAMEvpc` behind a cone
    /// NAT gateway).
    pub fn in_vpc(cluster: &Cluster, name: &str) -> Result<DockerNode> {
        let host = cluster
            .net
            .add_lan(&cluster.lab, &format!("{name}vpc"), Nat::Cone, 1)?
            .into_iter()
            .next()
            .context("a VPC without a host")?;
        DockerNode::new(cluster, name, Worker::on(cluster, name, host, true))
    }

    /// A `--relay` node on a host of its own behind a `nat` router.
    pub fn behind(cluster: &Cluster, name: &str, nat: Nat) -> Result<DockerNode> {
        let host = cluster.net.add_host(&cluster.lab, name, nat)?;
        DockerNode::new(cluster, name, Worker::on(cluster, name, host, false))
    }

    /// Starts the agent (with `token`, or rejoining with its stored
    /// credential) and waits until it has joined.
    pub fn join(&mut self, cluster: &Cluster, token: Option<&str>) -> Result<()> {
        let (agent, _) = self.worker.join(cluster, &self.name, token)?;
        self.agent = Some(agent);
        Ok(())
    }

    /// The agent, which must have been started.
    pub fn agent(&self) -> Result<&Proc> {
        self.agent
            .as_ref()
            .with_context(|| format!("{} has not joined", self.name))
    }

    /// The last `lines` lines of the agent's log (empty before it joined).
    pub fn agent_log_tail(&self, lines: usize) -> String {
        self.agent
            .as_ref()
            .map(|a| a.log_tail(lines))
            .unwrap_or_default()
    }

    /// Ids of the warren containers the daemon runs.
    pub fn running(&self) -> Result<Vec<String>> {
        self.running_labelled(&[])
    }

    /// Ids of the warren containers the daemon runs that also have each of
    /// `labels` (`KEY=VALUE` or `KEY`, as `docker ps --filter label=` takes
    /// them: `warren.service=web`, `warren.generation=1`).
    pub fn running_labelled(&self, labels: &[&str]) -> Result<Vec<String>> {
        let filters: Vec<String> = std::iter::once("warren.service")
            .chain(labels.iter().copied())
            .map(|label| format!("label={label}"))
            .collect();
        let mut args = vec!["ps", "-q"];
        for filter in &filters {
            args.extend(["--filter", filter]);
        }
        let out = self.dockerd.docker(&args)?;
        Ok(out.split_whitespace().map(str::to_owned).collect())
    }

    /// The machine dies: SIGKILL for its agent, its Docker daemon and
    /// everything they started, containers included (a container outlives
    /// a daemon killed alone: its shim keeps it running), and for every
    /// other process in its namespace. Returns once the containers' processes
    /// are gone, with the instant the first SIGKILL (the agent's) went out:
    /// the machine's death, for a measurement that counts from it (listing
    /// the containers before, and their end after, take a while).
    pub fn kill_machine(&self) -> Result<Instant> {
        let mut containers = Vec::new();
        for id in self.running()? {
            let pid = self
                .dockerd
                .docker(&["inspect", "--format", "{{.State.Pid}}", &id])?;
            if let Ok(pid) = pid.trim().parse::<u32>() {
                containers.push(pid);
            }
        }
        let mut doomed: Vec<u32> = containers
            .iter()
            .filter_map(|&pid| parent_of(pid))
            .collect();
        doomed.extend(&containers);
        doomed.extend(descendants(self.dockerd.proc.pid()));
        let in_netns = self.worker.host.ns.pids()?;
        doomed.extend(in_netns.into_iter().filter_map(|p| u32::try_from(p).ok()));
        let died = Instant::now();
        if let Some(agent) = &self.agent {
            agent.signal(Signal::Kill)?;
        }
        self.dockerd.proc.signal(Signal::Kill)?;
        for pid in doomed {
            if let Ok(pid) = i32::try_from(pid) {
                // SAFETY: kill(2) with a pid this node's processes had; one
                // that already exited is an ESRCH, ignored.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        crate::wait::wait_for(
            &format!("{}'s containers to die", self.name),
            Duration::from_secs(10),
            || containers.iter().all(|&pid| !crate::sweep::pid_alive(pid)),
        )?;
        Ok(died)
    }
}

/// The parent of process `pid`, from /proc.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// Every process descended from `root` (not `root` itself).
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}
