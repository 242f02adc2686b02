//! The failover section: what a worker machine dying under load costs the
//! services that had replicas on it, and how soon the control plane notices.
//!
//! One lab cluster (see [`warren_netns_tests::cluster`]) for every trial:
//! `warren serve --node-timeout 2s` (the default, which the lab otherwise
//! lengthens) on a public lab host, a stable worker `pi` (`--relay`, behind
//! a cone NAT, offering one core to replicas) and a public client host.
//! Each trial joins a fresh victim `vmN` (`--direct`, in a VPC of its own),
//! deploys two fresh services, `webN` (2 replicas: one on `pi`, one on
//! `vmN`) and `soloN` (1 replica, on `vmN`, the less loaded node), runs a
//! loop of GETs through the
//! control plane's proxy for both, and kills `vmN`'s machine (agent, Docker
//! daemon and containers SIGKILLed). It measures the time from the kill to
//! the control plane's `node offline` and `node lost` log lines, the failed
//! requests to `webN` (the proxy should route around the dead replica), and
//! the time until `soloN` answers again from its replacement on `pi`. The
//! services and the dead node are then removed, so the next trial starts
//! as the first did.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use warren_control::liveness::STARTUP_GRACE;
use warren_netns_tests::cluster::{deploy_httpd_args, Cluster, DockerNode};
use warren_netns_tests::tcp::http_get_ok;
use warren_netns_tests::{wait_for_value, Nat, Netns};

use crate::about::About;
use crate::check_interrupt;
use crate::report::{count_row, num, timing_row, Table};
use crate::workload::{first_failures, host_of, provenance, verdict, Circumstances, Trials};

/// `warren serve --node-timeout` of the section's cluster (the default:
/// the lab's own is 15 s, so that a loaded machine fires no failover).
pub const NODE_TIMEOUT: &str = "2s";

/// The target for detection: the control plane calls a dead node
/// offline within this of its death.
pub const DETECTION_TARGET: Duration = Duration::from_secs(3);

/// The target for a service whose only replica died (the image
/// present on the other node): it answers again within this of the death.
pub const SERVE_AGAIN_TARGET: Duration = Duration::from_secs(10);

/// The worker that stays up, and takes the dead one's replicas.
pub const STABLE: &str = "pi";

/// The CPU cores [`STABLE`] offers to replicas (`warren join
/// --capacity-cpu`; the victims offer the machine's 2). The control plane
/// soon has a direct path to it (through its cone NAT), so it ranks as a
/// direct node like the victim; with a replica of `webN` on each, the one
/// offering less is the more loaded, and `soloN` goes to the victim rather
/// than to the first name.
const STABLE_CPU: &str = "1";

/// How long the client waits for an answer: a request the proxy retries
/// on another replica may take a node timeout and a connect timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the loop of GETs runs before the kill.
const BEFORE_KILL: Duration = Duration::from_millis(500);

/// How long a trial gets, from the kill, for `soloN` to answer again and
/// `webN` to have both its replicas healthy on [`STABLE`].
const RECOVERY: Duration = Duration::from_secs(60);

/// How long the control plane's log lines get to appear once the cluster
/// has recovered (its log writer batches lines).
const LOGGED: Duration = Duration::from_secs(10);

/// How often the recovery is polled (`warren ps --json`).
const POLL: Duration = Duration::from_millis(250);

/// The health check flags of both services, after their `--host`.
const FLAGS: [&str; 5] = ["--health-http", "/", "--health-interval", "500ms", "--wait"];

/// What the control plane logs (at WARN, with a field `node=NAME`) when a
/// node's connection ended: `log_change` in `control/src/cluster/mod.rs`.
const OFFLINE: &str = "node offline: the proxy stops routing to it";

/// What it logs once a node has been offline for `--replace-after`.
const LOST: &str = "node lost: its replicas are replaced on other nodes";

/// Which of a trial's two services a request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    /// `webN`: a replica on each worker.
    Web,
    /// `soloN`: its one replica on the victim.
    Solo,
}

/// One GET of the loop.
#[derive(Clone, Debug)]
struct Request {
    service: Service,
    started: Instant,
    ended: Instant,
    /// `None` for a 2xx; else the status line or the error.
    failure: Option<String>,
}

/// What a trial's requests to one service came to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Served {
    /// Requests made.
    pub requests: usize,
    /// Those that did not get a 2xx.
    pub failed: usize,
    /// When the first and the last failed request got their answer (or
    /// error), from the kill (an answer before it counts as 0).
    pub failures: Option<(Duration, Duration)>,
    /// What the first failed request got.
    pub first_error: Option<String>,
}

impl Served {
    /// The requests to `service` among `requests`, timed from `killed`.
    fn of(requests: &[Request], service: Service, killed: Instant) -> Served {
        let mine: Vec<&Request> = requests.iter().filter(|r| r.service == service).collect();
        let failed: Vec<&Request> = mine
            .iter()
            .copied()
            .filter(|r| r.failure.is_some())
            .collect();
        let after = |r: &Request| r.ended.saturating_duration_since(killed);
        let first = failed.iter().map(|r| after(r)).min();
        let last = failed.iter().map(|r| after(r)).max();
        Served {
            requests: mine.len(),
            failed: failed.len(),
            failures: first.zip(last),
            first_error: failed.first().and_then(|r| r.failure.clone()),
        }
    }

    /// From the first failed answer to the last.
    pub fn failure_span(&self) -> Option<Duration> {
        self.failures.map(|(first, last)| last - first)
    }
}

/// The time from `killed` to the first 200 for `soloN` among the requests
/// that started after it: when the service served again.
fn served_again(requests: &[Request], killed: Instant) -> Option<Duration> {
    requests
        .iter()
        .filter(|r| r.service == Service::Solo && r.failure.is_none() && r.started >= killed)
        .map(|r| r.ended.saturating_duration_since(killed))
        .min()
}

/// One trial's figures, from the kill.
#[derive(Clone, Debug)]
pub struct Trial {
    /// The node killed.
    pub victim: String,
    /// To the control plane's `node offline` line for it (its timestamp).
    pub offline: Duration,
    /// To its `node lost` line.
    pub lost: Duration,
    /// To `soloN`'s first 200 from a request started after the kill.
    pub solo_back: Duration,
    /// The requests to `webN`.
    pub web: Served,
    /// The requests to `soloN`.
    pub solo: Served,
}

/// What the section measured.
pub type FailoverResults = Trials<Trial>;

/// Builds the cluster and runs `trials` trials on it.
pub fn run(trials: usize) -> Result<FailoverResults> {
    let start = (Instant::now(), Circumstances::now());
    eprintln!("failover: building the cluster (control plane, {STABLE}, client)");
    let cluster = Cluster::with("bench-failover", |_, _, _| {
        Ok(["--node-timeout", NODE_TIMEOUT].map(str::to_owned).to_vec())
    })?;
    // The control plane gives up on no node within this of its start.
    let grace_over = Instant::now() + STARTUP_GRACE;
    let mut stable = DockerNode::behind(&cluster, STABLE, Nat::Cone)?;
    stable
        .worker
        .extra
        .extend(["--capacity-cpu", STABLE_CPU].map(str::to_owned));
    stable.join(&cluster, Some(&cluster.token()?))?;
    let client = cluster.net.add_public_host(&cluster.lab, "client")?;
    let rig = Rig {
        cluster: &cluster,
        stable: &stable,
        client: &client.ns,
        proxy: SocketAddr::from((cluster.control.ip, 80)),
    };
    let trial = |n| {
        while Instant::now() < grace_over {
            check_interrupt()?;
            std::thread::sleep(POLL);
        }
        rig.trial(n)
    };
    Trials::run("failover", trials, start, trial, |n, trial: &Trial| {
        format!(
            "{} offline after {:.2} s, lost after {:.2} s; solo{n} answered again after {:.2} s \
             ({} of {} failed over {} s); web{n}: {} of {} failed{}",
            trial.victim,
            trial.offline.as_secs_f64(),
            trial.lost.as_secs_f64(),
            trial.solo_back.as_secs_f64(),
            trial.solo.failed,
            trial.solo.requests,
            num(trial.solo.failure_span().map(|d| d.as_secs_f64()), 2),
            trial.web.failed,
            trial.web.requests,
            first_failures([
                ("solo", trial.solo.first_error.as_ref()),
                ("web", trial.web.first_error.as_ref()),
            ]),
        )
    })
}

/// The section's cluster: what every trial uses.
struct Rig<'a> {
    cluster: &'a Cluster,
    stable: &'a DockerNode,
    /// The public host the GETs come from.
    client: &'a Netns,
    /// The control plane's proxy.
    proxy: SocketAddr,
}

impl Rig<'_> {
    /// Trial `n`: a fresh victim `vmN` and services `webN` and `soloN`,
    /// the kill under load, and the clean-up.
    fn trial(&self, n: usize) -> Result<Trial> {
        let cluster = self.cluster;
        let (web, solo) = (format!("web{n}"), format!("solo{n}"));
        let mut victim = DockerNode::in_vpc(cluster, &format!("vm{n}"))?;
        victim.join(cluster, Some(&cluster.token()?))?;
        let tails = || {
            format!(
                "control plane:\n{}\n{}:\n{}\n{STABLE}:\n{}",
                cluster.serve.log_tail(30),
                victim.name,
                victim.agent_log_tail(15),
                self.stable.agent_log_tail(15)
            )
        };
        let trial = self
            .kill_under_load(&victim, &web, &solo)
            .with_context(tails)?;
        self.clean_up(&[&web, &solo], &victim.name)
            .with_context(|| format!("removing {web}, {solo} and {}\n{}", victim.name, tails()))?;
        Ok(trial)
    }

    /// Deploys `web` and `solo`, checks where they landed, and kills
    /// `victim` under a loop of GETs for both; returns once `solo` answers
    /// again and `web`'s two replicas are healthy on [`STABLE`].
    fn kill_under_load(&self, victim: &DockerNode, web: &str, solo: &str) -> Result<Trial> {
        let cluster = self.cluster;
        deploy(cluster, web, 2)?;
        deploy(cluster, solo, 1)?;
        let mut spread = vec![STABLE.to_owned(), victim.name.clone()];
        spread.sort();
        let on = cluster.healthy_on(web)?;
        if on != spread {
            bail!("{web}'s 2 replicas are healthy on {on:?}, not one on each of {spread:?}");
        }
        let on = cluster.healthy_on(solo)?;
        if on != [victim.name.as_str()] {
            bail!(
                "{solo}'s replica is healthy on {on:?}, not on {} (the least loaded of the \
                 direct nodes: {STABLE} offers {STABLE_CPU} core to replicas)",
                victim.name
            );
        }
        let load = Load {
            client: self.client,
            proxy: self.proxy,
            web: host_of(web),
            solo: host_of(solo),
            stop: AtomicBool::new(false),
            killed: OnceLock::new(),
            back: AtomicBool::new(false),
            requests: Mutex::new(Vec::new()),
        };
        let (killed, killed_at) = std::thread::scope(|s| -> Result<_> {
            let looping = s.spawn(|| load.run());
            let outcome = self.kill_and_recover(victim, web, &load);
            load.stop.store(true, Ordering::Relaxed);
            looping
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            outcome
        })?;
        let requests = load
            .requests
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let logged = |what: &str| {
            let at = wait_for_value(
                &format!("the control plane's `{what}` line for {}", victim.name),
                LOGGED,
                || logged_at(&cluster.serve.log(), what, &victim.name, killed_at),
            )?;
            Ok::<_, anyhow::Error>(at.duration_since(killed_at).unwrap_or_default())
        };
        Ok(Trial {
            victim: victim.name.clone(),
            offline: logged(OFFLINE)?,
            lost: logged(LOST)?,
            solo_back: served_again(&requests, killed)
                .with_context(|| format!("{solo} never answered 200 after the kill"))?,
            web: Served::of(&requests, Service::Web, killed),
            solo: Served::of(&requests, Service::Solo, killed),
        })
    }

    /// With the loop running: kills `victim` after [`BEFORE_KILL`] and
    /// waits for the recovery (see [`Rig::kill_under_load`]). Returns when
    /// the machine died (its agent's SIGKILL), as an instant and as the
    /// wall-clock time the log lines are compared with.
    fn kill_and_recover(
        &self,
        victim: &DockerNode,
        web: &str,
        load: &Load,
    ) -> Result<(Instant, SystemTime)> {
        std::thread::sleep(BEFORE_KILL);
        let killed = victim.kill_machine()?;
        let killed_at = SystemTime::now() - killed.elapsed();
        load.killed.get_or_init(|| killed);
        let deadline = killed + RECOVERY;
        loop {
            check_interrupt()?;
            if load.back.load(Ordering::Relaxed) {
                let on = self.cluster.healthy_on(web)?;
                if on.iter().filter(|node| *node == STABLE).count() == 2 {
                    return Ok((killed, killed_at));
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} s after the kill, the solo service answered again: {}; {web} is \
                     healthy on {:?}",
                    RECOVERY.as_secs(),
                    load.back.load(Ordering::Relaxed),
                    self.cluster.healthy_on(web)?
                );
            }
            std::thread::sleep(POLL);
        }
    }

    /// `warren rm` for `services`, a wait until [`STABLE`] runs no warren
    /// container, and `warren node rm VICTIM --force`.
    fn clean_up(&self, services: &[&str], victim: &str) -> Result<()> {
        crate::deploy::remove(self.cluster, services, &[self.stable])?;
        self.cluster.admin(&["node", "rm", victim, "--force"])?;
        Ok(())
    }
}

/// The loop of GETs through the proxy, alternately for `webN` and `soloN`,
/// one at a time, and what it shares with the thread that kills.
struct Load<'a> {
    client: &'a Netns,
    proxy: SocketAddr,
    /// The `Host:` of `webN`.
    web: String,
    /// The `Host:` of `soloN`.
    solo: String,
    /// Set to end the loop.
    stop: AtomicBool,
    /// When the victim died, once `kill_machine` has returned.
    killed: OnceLock<Instant>,
    /// Set once `soloN` answered 200 to a request started after the kill.
    back: AtomicBool,
    /// Every request made.
    requests: Mutex<Vec<Request>>,
}

impl Load<'_> {
    /// Runs until [`Load::stop`] is set.
    fn run(&self) {
        let mut made = Vec::new();
        for service in [Service::Web, Service::Solo].into_iter().cycle() {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let host = match service {
                Service::Web => &self.web,
                Service::Solo => &self.solo,
            };
            let started = Instant::now();
            let failure = self.get(host).err();
            let ended = Instant::now();
            if service == Service::Solo
                && failure.is_none()
                && self.killed.get().is_some_and(|&killed| started >= killed)
            {
                self.back.store(true, Ordering::Relaxed);
            }
            made.push(Request {
                service,
                started,
                ended,
                failure,
            });
        }
        *self.requests.lock().unwrap_or_else(PoisonError::into_inner) = made;
    }

    /// A GET of `/` for `host`: `Ok` for a 2xx, else the status line or
    /// the error.
    fn get(&self, host: &str) -> Result<(), String> {
        http_get_ok(self.client, self.proxy, host, "/", CLIENT_TIMEOUT).map(drop)
    }
}

/// `warren deploy NAME ... --replicas REPLICAS --host NAME.example.test`
/// with an HTTP health check every 500 ms, waiting until it is healthy.
fn deploy(cluster: &Cluster, name: &str, replicas: u32) -> Result<()> {
    let host = host_of(name);
    let mut extra = vec!["--host", &host];
    extra.extend(FLAGS);
    cluster.admin(&deploy_httpd_args(name, replicas, &extra))?;
    Ok(())
}

/// When the control plane's `log` first says `what` of node `node` at or
/// after `since`: the RFC 3339 timestamp that opens the line (tracing's
/// default format, `2026-12-01T13:44:48.311365Z  WARN target: message
/// node=NAME`).
fn logged_at(log: &str, what: &str, node: &str, since: SystemTime) -> Option<SystemTime> {
    let field = format!("node={node}");
    log.lines()
        .filter(|line| line.contains(what) && line.split_whitespace().any(|word| word == field))
        .filter_map(|line| humantime::parse_rfc3339(line.split_whitespace().next()?).ok())
        .find(|at| *at >= since)
}

/// Seconds, for the tables.
fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The section's tables: times from the kill, request counts, each trial,
/// and the targets.
pub fn failover_tables(r: &FailoverResults) -> String {
    let times = |f: &dyn Fn(&Trial) -> Option<Duration>| -> Vec<f64> {
        r.trials.iter().filter_map(f).map(secs).collect()
    };
    let detection = times(&|t| Some(t.offline));
    let solo_back = times(&|t| Some(t.solo_back));
    let timings = Table {
        header: vec!["from the kill to", "median s", "max s", "target"],
        rows: vec![
            timing_row(
                "**the control plane logs `node offline`** (detection)",
                &detection,
                &format!("≤ {} s", DETECTION_TARGET.as_secs()),
            ),
            timing_row(
                "it logs `node lost` (replacements placed)",
                &times(&|t| Some(t.lost)),
                "—",
            ),
            timing_row(
                "**solo answers 200 again** (its only replica died)",
                &solo_back,
                &format!("≤ {} s", SERVE_AGAIN_TARGET.as_secs()),
            ),
            timing_row(
                "solo's failed requests, first to last answer",
                &times(&|t| t.solo.failure_span()),
                "—",
            ),
        ],
    };
    let count = |what: &str, f: &dyn Fn(&Trial) -> usize, target: &str| {
        count_row(what, &r.trials.iter().map(f).collect::<Vec<_>>(), target)
    };
    let web_failed: usize = r.trials.iter().map(|t| t.web.failed).sum();
    let counts = Table {
        header: vec!["requests in a trial", "median", "max", "total", "target"],
        rows: vec![
            count(
                "**web failed** (a replica left on pi)",
                &|t| t.web.failed,
                "0",
            ),
            count("web made", &|t| t.web.requests, "—"),
            count("solo failed", &|t| t.solo.failed, "—"),
            count("solo made", &|t| t.solo.requests, "—"),
        ],
    };
    let each = Table {
        header: vec![
            "trial (node killed)",
            "offline s",
            "lost s",
            "solo back s",
            "solo failed (first–last s)",
            "web failed / made",
        ],
        rows: r
            .trials
            .iter()
            .map(|t| {
                let window = t.solo.failures.map_or_else(
                    || "—".to_owned(),
                    |(first, last)| format!("{:.2}–{:.2}", secs(first), secs(last)),
                );
                vec![
                    t.victim.clone(),
                    format!("{:.2}", secs(t.offline)),
                    format!("{:.2}", secs(t.lost)),
                    format!("{:.2}", secs(t.solo_back)),
                    format!("{} ({window})", t.solo.failed),
                    format!("{} / {}", t.web.failed, t.web.requests),
                ]
            })
            .collect(),
    };
    let max = |values: &[f64]| values.iter().copied().reduce(f64::max);
    let (detection_max, solo_max) = (max(&detection), max(&solo_back));
    format!(
        "Failover ({} trials: a worker killed under a loop of GETs; the section took {:.0} s)\n\n\
         {}\n{}\nEach trial (times from the kill)\n\n{}\n\
         Targets, in every trial: the dead node offline within {} s: {} s at most ({}); no \
         failed request to a service with a replica left: {web_failed} in all ({}); a service \
         whose only replica died answering again within {} s: {} s at most ({}).\n",
        r.trials.len(),
        r.took.as_secs_f64(),
        timings.render(),
        counts.render(),
        each.render(),
        DETECTION_TARGET.as_secs(),
        num(detection_max, 2),
        verdict(detection_max.is_some_and(|m| m <= DETECTION_TARGET.as_secs_f64())),
        verdict(!r.trials.is_empty() && web_failed == 0),
        SERVE_AGAIN_TARGET.as_secs(),
        num(solo_max, 2),
        verdict(solo_max.is_some_and(|m| m <= SERVE_AGAIN_TARGET.as_secs_f64())),
    )
}

/// The section's part of the report.
pub fn document(r: &FailoverResults, about: &About, args: &str) -> String {
    let mut d = String::from("## Failover\n\n");
    d.push_str(&provenance(&r.circumstances, about, args, "failover"));
    d.push_str(&format!(
        "**Setup:** one lab cluster built by `warren_netns_tests::cluster` for every trial: \
         `warren serve --node-timeout {NODE_TIMEOUT}` (the default; `--heartbeat` 500 ms and \
         `--replace-after` the node timeout, both default) on a public lab host, the stable \
         worker `{STABLE}` (`warren join --relay --capacity-cpu {STABLE_CPU}`, behind a cone \
         NAT) and a public client host; each worker has its own Docker daemon (bridge mode) \
         holding `local/busybox:1`.\n\n\
         **Method:** {} trials one after the other. Each joins a fresh worker `vmN` (`warren \
         join --direct`, in a VPC of its own behind a cone NAT) and deploys two fresh \
         services with `--host NAME.example.test --health-http / --health-interval 500ms \
         --wait`: `webN`, 2 replicas (checked: one on `{STABLE}`, one on `vmN`), and `soloN`, \
         1 replica (checked: on `vmN`: the control plane soon has a direct path to `{STABLE}` \
         too, so both rank as direct nodes, and `{STABLE}`, offering {STABLE_CPU} core to \
         `vmN`'s 2, is the more loaded once each has a replica of `webN`). A thread on the \
         client then sends GETs of `/` through the control plane's proxy (port 80, HTTP/1.0, \
         a new connection each, `Host:` alternately `webN` and `soloN`, one at a time, back \
         to back, a 20 s client timeout); a request fails unless it gets a 2xx. After {} ms \
         `vmN` dies (`DockerNode::kill_machine`: SIGKILL for its agent, its Docker daemon, \
         the containers and every other process in its namespace); times count from the \
         instant its first SIGKILL, the agent's, went out (it returns that instant, once the \
         containers' processes are gone). Detection and \"lost\" are the RFC 3339 timestamps of the control plane's log lines `{OFFLINE}` \
         and `{LOST}` for `vmN` (WARN, field `node=vmN`); \"solo answers 200 again\" is \
         when the first request to `soloN` started after the kill got its 200 (from the \
         replacement on `{STABLE}`). The loop stops once that has happened and `webN` has \
         both its replicas healthy on `{STABLE}` (`warren ps --json`, polled every {} ms); \
         then `warren rm` of both services, a wait until `{STABLE}` runs no warren container, \
         and `warren node rm vmN --force` (not timed). The control plane logs at `debug` \
         (the lab's default), the proxy's access log included.\n\n",
        r.trials.len(),
        BEFORE_KILL.as_millis(),
        POLL.as_millis(),
    ));
    d.push_str(&failover_tables(r));
    d.push_str(HOW_TO_READ);
    d
}

/// The notes after the section's tables in the report.
const HOW_TO_READ: &str = "
### How to read the failover figures

- Detection is QUIC's idle timeout on the agent's connection, `--node-timeout`: the timer
  restarts on each packet from the agent, and again when the control plane sends its first
  ping (every `--heartbeat`) after one, so a node that dies is offline between the node
  timeout and the node timeout plus a heartbeat after its last packet.
- \"Lost\" follows offline by `--replace-after`; the replacements are placed then, and solo
  answers again once its replacement has started on pi, passed a health check, and pi's
  agent has told the control plane so.
- Until the node is offline, a request to solo waits on the dead replica; then
  it gets a 502, and every later one a 503 at once, until the replacement serves. The loop
  is back to back, so solo's failed requests are many: their count says how fast the loop
  went, the span how long the service was down.
- The kill is of processes: the victim's network namespace (addresses, NAT, Docker bridge)
  stays up, so the control plane's packets to it may draw ICMP errors where a machine whose
  power was cut sends nothing; detection at the idle timeout shows none of them cut it short.

";

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    fn request(base: Instant, service: Service, ms: (u64, u64), ok: bool) -> Request {
        Request {
            service,
            started: at(base, ms.0),
            ended: at(base, ms.1),
            failure: (!ok).then(|| "HTTP/1.1 502 Bad Gateway".to_owned()),
        }
    }

    #[test]
    fn requests_give_failures_and_the_first_answer_after_the_kill() {
        let base = Instant::now();
        let killed = at(base, 1000);
        let requests = [
            request(base, Service::Web, (0, 5), true),
            request(base, Service::Solo, (5, 10), true),
            // In flight across the kill: answered, but not "again".
            request(base, Service::Solo, (990, 1010), true),
            request(base, Service::Web, (1010, 3000), true),
            request(base, Service::Solo, (3000, 3001), false),
            request(base, Service::Web, (3001, 3002), true),
            request(base, Service::Solo, (3002, 5500), false),
            request(base, Service::Solo, (5500, 5600), true),
            request(base, Service::Solo, (5600, 5601), true),
        ];
        let solo = Served::of(&requests, Service::Solo, killed);
        assert_eq!((solo.requests, solo.failed), (6, 2));
        assert_eq!(
            solo.failures,
            Some((Duration::from_millis(2001), Duration::from_millis(4500)))
        );
        assert_eq!(solo.failure_span(), Some(Duration::from_millis(2499)));
        assert_eq!(
            solo.first_error.as_deref(),
            Some("HTTP/1.1 502 Bad Gateway")
        );
        let web = Served::of(&requests, Service::Web, killed);
        assert_eq!((web.requests, web.failed, web.failures), (3, 0, None));
        assert_eq!(
            served_again(&requests, killed),
            Some(Duration::from_millis(4600))
        );
        assert_eq!(served_again(&requests[..5], killed), None);
    }

    #[test]
    fn log_lines_give_the_node_and_the_time() -> Result<()> {
        let log = "\
2026-12-01T13:44:48.311365Z  INFO warren_control::serve: control plane up
2026-12-01T13:45:00.100000Z  WARN warren_control::cluster: node offline: the proxy stops routing to it node=vm10
2026-12-01T13:45:01.250000Z  WARN warren_control::cluster: node offline: the proxy stops routing to it node=vm1
2026-12-01T13:45:03.250000Z  WARN warren_control::cluster: node lost: its replicas are replaced on other nodes node=vm1
";
        let since = humantime::parse_rfc3339("2026-12-01T13:44:59Z")?;
        let offline = logged_at(log, OFFLINE, "vm1", since).context("no offline line")?;
        assert_eq!(
            offline.duration_since(since)?,
            Duration::from_millis(2250),
            "vm10's line is not vm1's"
        );
        let lost = logged_at(log, LOST, "vm1", since).context("no lost line")?;
        assert_eq!(lost.duration_since(offline)?, Duration::from_secs(2));
        // An earlier line, from before the kill, is not this trial's.
        let later = humantime::parse_rfc3339("2026-12-01T13:45:02Z")?;
        assert_eq!(logged_at(log, OFFLINE, "vm1", later), None);
        assert_eq!(logged_at(log, OFFLINE, "vm2", since), None);
        Ok(())
    }

    fn trial(n: usize, offline_ms: u64, back_ms: u64, web_failed: usize) -> Trial {
        let ms = Duration::from_millis;
        Trial {
            victim: format!("vm{n}"),
            offline: ms(offline_ms),
            lost: ms(offline_ms + 2000),
            solo_back: ms(back_ms),
            web: Served {
                requests: 1000,
                failed: web_failed,
                ..Served::default()
            },
            solo: Served {
                requests: 900,
                failed: 40,
                failures: Some((ms(100), ms(back_ms - 50))),
                first_error: None,
            },
        }
    }

    #[test]
    fn tables_give_median_max_and_targets() {
        let r = FailoverResults {
            circumstances: Circumstances::default(),
            trials: vec![
                trial(1, 1900, 5000, 0),
                trial(2, 2100, 6000, 0),
                trial(3, 2000, 7000, 0),
            ],
            took: Duration::from_secs(75),
        };
        let t = failover_tables(&r);
        let cells = |first| crate::workload::row_cells(&t, first);
        assert_eq!(cells("logs `node offline`")[1..], ["2.00", "2.10", "≤ 3 s"]);
        assert_eq!(cells("logs `node lost`")[1..3], ["4.00", "4.10"]);
        assert_eq!(cells("solo answers 200 again")[1..3], ["6.00", "7.00"]);
        assert_eq!(cells("first to last answer")[1..3], ["5.85", "6.85"]);
        assert_eq!(cells("web failed")[1..], ["0", "0", "0", "0"]);
        assert_eq!(cells("solo failed")[1..4], ["40", "40", "120"]);
        assert_eq!(
            cells("vm2"),
            ["vm2", "2.10", "4.10", "6.00", "40 (0.10–5.95)", "0 / 1000"]
        );
        assert!(t.contains("the section took 75 s"), "{t}");
        assert!(t.contains("2.10 s at most (met)"), "{t}");
        assert!(t.contains("0 in all (met)"), "{t}");
        assert!(t.contains("7.00 s at most (met)"), "{t}");

        let r = FailoverResults {
            trials: vec![trial(1, 3500, 12000, 2), trial(2, 1900, 5000, 1)],
            ..r
        };
        let t = failover_tables(&r);
        assert!(t.contains("3.50 s at most (NOT met)"), "{t}");
        assert!(t.contains("3 in all (NOT met)"), "{t}");
        assert!(t.contains("12.00 s at most (NOT met)"), "{t}");
    }
}
