//! The rollout section: how long a rolling update and the drain of a node
//! take, and what they cost the requests that keep coming meanwhile.
//!
//! One lab cluster (see [`warren_netns_tests::cluster`]) for every trial,
//! the one the deploy section and the self-healing tests build:
//! `warren serve` on a public lab host (the lab's long node timeout:
//! nothing here should look dead), a `--direct` worker `vm` in a VPC
//! behind a cone NAT, a `--relay` worker `pi` behind a symmetric NAT, each
//! with its own Docker daemon, and a public client host. Each trial, under
//! a loop of GETs from the client through the control plane's proxy:
//!
//! - **rolling update**: a fresh service `siteN`, 3 replicas (checked:
//!   spread over both workers) of an httpd whose page says `v1`, gets
//!   `warren deploy` of `v2` with the default update policy. Timed from
//!   the deploy command's start to the control plane's `rollout_completed`
//!   event (every new replica healthy, no old one left) and to the last
//!   `v1` container gone from the workers; every request must get a 2xx,
//!   and each one started after the completion was seen must say `v2`.
//! - **drain**: a fresh service `poolN`, 5 replicas all on `vm` (deployed
//!   while `pi` is drained, which is then activated again), and `warren
//!   node drain vm --wait`. Timed: the command, and until `vm`'s last
//!   container of `poolN` is gone; every request must get a 2xx. Then
//!   `warren node activate vm`.
//!
//! Both services are removed after their part (their containers gone),
//! so each trial starts as the first did.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use warren_control::events::{Event, What};
use warren_netns_tests::cluster::{deploy_script_args, versioned_httpd, Cluster, DockerNode};
use warren_netns_tests::tcp::http_get_ok;
use warren_netns_tests::{Nat, Netns};

use crate::about::About;
use crate::check_interrupt;
use crate::deploy::remove;
use crate::report::{count_row, timing_row, Table};
use crate::workload::{first_failures, host_of, provenance, verdict, Circumstances, Trials};

/// The worker drained, on which the drained service's replicas all run
/// (`--direct`, in a VPC).
pub const DRAINED: &str = "vm";

/// The other worker, which takes them (`--relay`, behind a symmetric NAT).
pub const OTHER: &str = "pi";

/// Replicas of the service updated.
pub const UPDATED_REPLICAS: u32 = 3;

/// Replicas of the service on the node drained.
pub const DRAINED_REPLICAS: u32 = 5;

/// The version the services are deployed with, and the one a rolling
/// update brings: what their page says.
const VERSIONS: [&str; 2] = ["v1", "v2"];

/// How long the client waits for an answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long the loop of GETs runs before the change starts.
const BEFORE: Duration = Duration::from_millis(500);

/// How long it runs on once the change is over (its old containers gone).
const AFTER: Duration = Duration::from_secs(1);

/// How long a rollout or a drain gets before the trial fails, and then
/// the old containers to be gone.
const CHANGE: Duration = Duration::from_secs(90);

/// How often completion is polled (`warren events --json`, `docker ps`).
const POLL: Duration = Duration::from_millis(250);

/// How many of the last events each poll reads: far more than a trial
/// makes between two polls.
const EVENTS: &str = "500";

/// The flags of every deploy here, after `--host`: an HTTP health check
/// every 500 ms.
const HEALTH: [&str; 4] = ["--health-http", "/", "--health-interval", "500ms"];

/// One GET of a loop.
#[derive(Clone, Debug)]
struct Answer {
    started: Instant,
    /// The page (trimmed) for a 2xx, else the status line or the error.
    outcome: Result<String, String>,
}

/// What a loop's requests came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Served {
    /// Requests made.
    pub requests: usize,
    /// Those that did not get a 2xx (an error status, a connection error,
    /// a timeout).
    pub failed: usize,
    /// What the first failed request got.
    pub first_error: Option<String>,
}

impl Served {
    /// What `answers` came to.
    fn of(answers: &[Answer]) -> Served {
        let failures = || answers.iter().filter_map(|a| a.outcome.as_ref().err());
        Served {
            requests: answers.len(),
            failed: failures().count(),
            first_error: failures().next().cloned(),
        }
    }
}

/// The pages that are not `version` among the 2xx answers to requests
/// started at or after `since`: `(how many, of how many)`.
fn stale(answers: &[Answer], since: Instant, version: &str) -> (usize, usize) {
    let pages: Vec<&String> = answers
        .iter()
        .filter(|a| a.started >= since)
        .filter_map(|a| a.outcome.as_ref().ok())
        .collect();
    let stale = pages.iter().filter(|page| page.as_str() != version).count();
    (stale, pages.len())
}

/// A rolling update's figures, from `warren deploy` of the new version
/// starting.
#[derive(Clone, Debug)]
pub struct Update {
    /// To the command's exit: the control plane took the new generation.
    pub accepted: Duration,
    /// To the control plane's `rollout_completed` event (its time).
    pub completed: Duration,
    /// To the last old container gone from both workers (polled).
    pub old_gone: Duration,
    /// The requests of the loop.
    pub served: Served,
    /// 2xx answers not from the new version to requests started once the
    /// completion was seen.
    pub stale: usize,
    /// The 2xx answers to requests started once the completion was seen.
    pub checked: usize,
}

/// A drain's figures, from `warren node drain` starting.
#[derive(Clone, Debug)]
pub struct Drain {
    /// To the exit of `warren node drain --wait`: no replica left on it.
    pub waited: Duration,
    /// To the node's last container of the service gone (polled).
    pub emptied: Duration,
    /// The requests of the loop.
    pub served: Served,
}

/// One trial: a rolling update, then a drain.
#[derive(Clone, Debug)]
pub struct Trial {
    /// The rolling update of `siteN`.
    pub update: Update,
    /// The drain of [`DRAINED`] with `poolN`'s replicas.
    pub drain: Drain,
}

/// What the section measured.
pub type RolloutResults = Trials<Trial>;

/// Builds the cluster and runs `trials` trials on it.
pub fn run(trials: usize) -> Result<RolloutResults> {
    let start = (Instant::now(), Circumstances::now());
    eprintln!("rollout: building the cluster (control plane, {DRAINED}, {OTHER}, client)");
    let cluster = Cluster::new("bench-rollout")?;
    let mut drained = DockerNode::in_vpc(&cluster, DRAINED)?;
    let mut other = DockerNode::behind(&cluster, OTHER, Nat::Symmetric)?;
    drained.join(&cluster, Some(&cluster.token()?))?;
    other.join(&cluster, Some(&cluster.token()?))?;
    let client = cluster.net.add_public_host(&cluster.lab, "client")?;
    let rig = Rig {
        cluster: &cluster,
        drained: &drained,
        other: &other,
        client: &client.ns,
        proxy: SocketAddr::from((cluster.control.ip, 80)),
    };
    Trials::run(
        "rollout",
        trials,
        start,
        |n| rig.trial(n),
        |n, trial: &Trial| {
            let (update, drain) = (&trial.update, &trial.drain);
            format!(
                "site{n} ({UPDATED_REPLICAS} replicas) rolled out in {:.2} s, its old containers \
             gone after {:.2} s, {} of {} requests failed, {} of {} answers after it stale; \
             {DRAINED} drained of pool{n} ({DRAINED_REPLICAS} replicas) in {:.2} s, its \
             containers gone after {:.2} s, {} of {} requests failed{}",
                update.completed.as_secs_f64(),
                update.old_gone.as_secs_f64(),
                update.served.failed,
                update.served.requests,
                update.stale,
                update.checked,
                drain.waited.as_secs_f64(),
                drain.emptied.as_secs_f64(),
                drain.served.failed,
                drain.served.requests,
                first_failures([
                    ("the update", update.served.first_error.as_ref()),
                    ("the drain", drain.served.first_error.as_ref()),
                ]),
            )
        },
    )
}

/// The section's cluster: what every trial uses.
struct Rig<'a> {
    cluster: &'a Cluster,
    /// [`DRAINED`].
    drained: &'a DockerNode,
    /// [`OTHER`].
    other: &'a DockerNode,
    /// The public host the GETs come from.
    client: &'a Netns,
    /// The control plane's proxy.
    proxy: SocketAddr,
}

impl Rig<'_> {
    /// Trial `n`: the rolling update of `siteN`, then the drain with
    /// `poolN`; each service removed after its part (and its containers
    /// gone).
    fn trial(&self, n: usize) -> Result<Trial> {
        let cluster = self.cluster;
        let tails = || {
            format!(
                "control plane:\n{}\n{DRAINED}:\n{}\n{OTHER}:\n{}",
                cluster.serve.log_tail(30),
                self.drained.agent_log_tail(15),
                self.other.agent_log_tail(15)
            )
        };
        let (site, pool) = (format!("site{n}"), format!("pool{n}"));
        let nodes = [self.drained, self.other];
        let update = self.update(&site).with_context(tails)?;
        remove(cluster, &[&site], &nodes).with_context(tails)?;
        let drain = self.drain(&pool).with_context(tails)?;
        remove(cluster, &[&pool], &nodes).with_context(tails)?;
        Ok(Trial { update, drain })
    }

    /// Deploys `site` at the first of [`VERSIONS`], checks its replicas
    /// are on both workers, and rolls it out to the second under load.
    fn update(&self, site: &str) -> Result<Update> {
        let [old, new] = VERSIONS;
        self.deploy(site, UPDATED_REPLICAS, old, true)?;
        let on = self.cluster.healthy_on(site)?;
        let on_both = [DRAINED, OTHER]
            .iter()
            .all(|node| on.iter().any(|n| n == node));
        if on.len() != UPDATED_REPLICAS as usize || !on_both {
            bail!(
                "{site}'s {UPDATED_REPLICAS} replicas are healthy on {on:?}, not on both \
                 {DRAINED} and {OTHER}"
            );
        }
        // A fresh service: its first deploy made generation 1.
        let (old_generation, generation) = (1, 2);
        let old_label = format!("warren.generation={old_generation}");
        let ((accepted, completed, seen, old_gone), answers) = self.under_load(site, || {
            let (start, start_ms) = (Instant::now(), unix_ms(SystemTime::now())?);
            self.deploy(site, UPDATED_REPLICAS, new, false)?;
            let accepted = start.elapsed();
            let at_ms = poll(
                &format!("{site}'s generation {generation} to roll out"),
                || self.completed_at(site, generation),
            )?;
            let seen = Instant::now();
            let completed = Duration::from_millis(at_ms.saturating_sub(start_ms));
            poll(&format!("{site}'s old containers to be gone"), || {
                none_running(&[self.drained, self.other], site, &[&old_label])
            })?;
            Ok((accepted, completed, seen, start.elapsed()))
        })?;
        self.check_rolled_out(site, generation)?;
        let (stale, checked) = stale(&answers, seen, new);
        if checked == 0 {
            bail!("no request to {site} started and answered after its rollout completed");
        }
        Ok(Update {
            accepted,
            completed,
            old_gone,
            served: Served::of(&answers),
            stale,
            checked,
        })
    }

    /// Places `pool`'s replicas all on [`DRAINED`] (deploying them while
    /// [`OTHER`] is drained), then drains [`DRAINED`] under load and
    /// activates it again.
    fn drain(&self, pool: &str) -> Result<Drain> {
        let cluster = self.cluster;
        cluster.admin(&["node", "drain", OTHER, "--wait"])?;
        self.deploy(pool, DRAINED_REPLICAS, VERSIONS[0], true)?;
        cluster.admin(&["node", "activate", OTHER])?;
        self.check_all_on(pool, DRAINED)?;
        let ((waited, emptied), answers) = self.under_load(pool, || {
            let start = Instant::now();
            cluster.admin(&["node", "drain", DRAINED, "--wait"])?;
            let waited = start.elapsed();
            poll(
                &format!("{DRAINED}'s containers of {pool} to be gone"),
                || none_running(&[self.drained], pool, &[]),
            )?;
            Ok((waited, start.elapsed()))
        })?;
        self.check_all_on(pool, OTHER)?;
        cluster.admin(&["node", "activate", DRAINED])?;
        Ok(Drain {
            waited,
            emptied,
            served: Served::of(&answers),
        })
    }

    /// `warren deploy NAME` of the httpd saying `version`, `replicas`
    /// replicas, routed as `NAME.example.test`; `--wait` if `wait`.
    fn deploy(&self, name: &str, replicas: u32, version: &str, wait: bool) -> Result<()> {
        let host = host_of(name);
        let mut extra = vec!["--host", &host];
        extra.extend(HEALTH);
        if wait {
            extra.push("--wait");
        }
        let args = deploy_script_args(name, replicas, &extra, &versioned_httpd(version));
        self.cluster.admin(&args)?;
        Ok(())
    }

    /// Fails unless every replica of `service` is healthy on `node`.
    fn check_all_on(&self, service: &str, node: &str) -> Result<()> {
        let on = self.cluster.healthy_on(service)?;
        if on.len() != DRAINED_REPLICAS as usize || on.iter().any(|n| n != node) {
            bail!(
                "{service}'s {DRAINED_REPLICAS} replicas are healthy on {on:?}, not all on {node}"
            );
        }
        Ok(())
    }

    /// Fails unless `warren services --json` has `service` at `generation`
    /// with every replica healthy and no more running.
    fn check_rolled_out(&self, service: &str, generation: u64) -> Result<()> {
        let text = self.cluster.admin(&["services", "--json"])?;
        let listed: Value = serde_json::from_str(&text)
            .with_context(|| format!("warren services --json: {text}"))?;
        let found = listed["services"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"] == service))
            .with_context(|| format!("no service {service} in {text}"))?;
        let replicas = u64::from(UPDATED_REPLICAS);
        if found["generation"] != generation
            || found["healthy"] != replicas
            || found["running"] != replicas
        {
            bail!(
                "{service} is not at generation {generation} with {replicas} replicas healthy and \
                 running: {found}"
            );
        }
        Ok(())
    }

    /// When the control plane's events say `service`'s `generation`
    /// rolled out (unix ms), if they do yet; an error if it was rolled
    /// back or failed.
    fn completed_at(&self, service: &str, generation: u64) -> Result<Option<u64>> {
        let text = self
            .cluster
            .admin(&["events", "--json", "--limit", EVENTS])?;
        for line in text.lines() {
            let event: Event = serde_json::from_str(line)
                .with_context(|| format!("warren events --json printed {line:?}"))?;
            match &event.what {
                What::RolloutCompleted {
                    service: s,
                    generation: g,
                } if s == service && *g == generation => return Ok(Some(event.at_ms)),
                What::RolloutRolledBack {
                    service: s,
                    generation: g,
                    ..
                }
                | What::RolloutFailed {
                    service: s,
                    generation: g,
                } if s == service && *g == generation => {
                    bail!("the rollout did not complete: {}", event.what.describe())
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// Runs `change` under a loop of GETs for `service` from the client,
    /// one at a time, back to back: the loop starts [`BEFORE`] it and runs
    /// on [`AFTER`] past its end. Returns what `change` returned and every
    /// answer.
    fn under_load<T>(
        &self,
        service: &str,
        change: impl FnOnce() -> Result<T>,
    ) -> Result<(T, Vec<Answer>)> {
        let host = host_of(service);
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let looping = s.spawn(|| {
                let mut answers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let outcome = http_get_ok(self.client, self.proxy, &host, "/", CLIENT_TIMEOUT)
                        .map(|answer| page(&answer).to_owned());
                    answers.push(Answer { started, outcome });
                }
                answers
            });
            let outcome = (|| {
                std::thread::sleep(BEFORE);
                let out = change()?;
                std::thread::sleep(AFTER);
                Ok(out)
            })();
            stop.store(true, Ordering::Relaxed);
            let answers = looping
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            outcome.map(|out| (out, answers))
        })
    }
}

/// `Some` once none of `nodes` runs a container of `service` with
/// each of `labels` too.
fn none_running(nodes: &[&DockerNode], service: &str, labels: &[&str]) -> Result<Option<()>> {
    let service = format!("warren.service={service}");
    let labels: Vec<&str> = std::iter::once(service.as_str())
        .chain(labels.iter().copied())
        .collect();
    for node in nodes {
        if !node.running_labelled(&labels)?.is_empty() {
            return Ok(None);
        }
    }
    Ok(Some(()))
}

/// Polls `probe` every [`POLL`] until it gives a value; fails after
/// [`CHANGE`], saying it waited for `what`.
fn poll<T>(what: &str, mut probe: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + CHANGE;
    loop {
        check_interrupt()?;
        if let Some(value) = probe()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {} s waiting for {what}", CHANGE.as_secs());
        }
        std::thread::sleep(POLL);
    }
}

/// The body of an HTTP answer, trimmed.
fn page(answer: &str) -> &str {
    answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body.trim())
}

/// `at` as unix milliseconds, as events give their time.
fn unix_ms(at: SystemTime) -> Result<u64> {
    let since = at
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?;
    u64::try_from(since.as_millis()).context("the clock is past 2^64 ms")
}

/// The section's tables: durations, requests, each trial, and the targets.
pub fn rollout_tables(r: &RolloutResults) -> String {
    let times = |f: &dyn Fn(&Trial) -> Duration| -> Vec<f64> {
        r.trials.iter().map(|t| f(t).as_secs_f64()).collect()
    };
    let timings = Table {
        header: vec!["from the command starting to", "median s", "max s", "target"],
        rows: vec![
            timing_row(
                &format!(
                    "**rolling update of {UPDATED_REPLICAS}: `rollout_completed`** (all new healthy, \
                     no old left)"
                ),
                &times(&|t| t.update.completed),
                "—",
            ),
            timing_row("update: `warren deploy` returned", &times(&|t| t.update.accepted), "—"),
            timing_row("update: the last old container gone", &times(&|t| t.update.old_gone), "—"),
            timing_row(
                &format!(
                    "**drain of {DRAINED_REPLICAS}: `warren node drain {DRAINED} --wait` returned**"
                ),
                &times(&|t| t.drain.waited),
                "—",
            ),
            timing_row(
                &format!("drain: {DRAINED}'s last container gone"),
                &times(&|t| t.drain.emptied),
                "—",
            ),
        ],
    };
    let counts = |f: &dyn Fn(&Trial) -> usize| -> Vec<usize> { r.trials.iter().map(f).collect() };
    let update_failed = counts(&|t| t.update.served.failed);
    let drain_failed = counts(&|t| t.drain.served.failed);
    let stale = counts(&|t| t.update.stale);
    let requests = Table {
        header: vec!["requests in a trial", "median", "max", "total", "target"],
        rows: vec![
            count_row("**failed during the rolling update**", &update_failed, "0"),
            count_row(
                "made during the rolling update",
                &counts(&|t| t.update.served.requests),
                "—",
            ),
            count_row("**not the new version** once it completed", &stale, "0"),
            count_row("checked for it", &counts(&|t| t.update.checked), "—"),
            count_row("**failed during the drain**", &drain_failed, "0"),
            count_row(
                "made during the drain",
                &counts(&|t| t.drain.served.requests),
                "—",
            ),
        ],
    };
    let each = Table {
        header: vec![
            "trial",
            "update s",
            "old gone s",
            "update failed / made",
            "stale / checked",
            "drain s",
            "emptied s",
            "drain failed / made",
        ],
        rows: r
            .trials
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let (u, d) = (&t.update, &t.drain);
                vec![
                    (i + 1).to_string(),
                    format!("{:.2}", u.completed.as_secs_f64()),
                    format!("{:.2}", u.old_gone.as_secs_f64()),
                    format!("{} / {}", u.served.failed, u.served.requests),
                    format!("{} / {}", u.stale, u.checked),
                    format!("{:.2}", d.waited.as_secs_f64()),
                    format!("{:.2}", d.emptied.as_secs_f64()),
                    format!("{} / {}", d.served.failed, d.served.requests),
                ]
            })
            .collect(),
    };
    let total = |values: &[usize]| values.iter().sum::<usize>();
    let made = |f: &dyn Fn(&Trial) -> usize| total(&counts(f));
    let (update_failed, drain_failed, stale) =
        (total(&update_failed), total(&drain_failed), total(&stale));
    let ran = !r.trials.is_empty();
    format!(
        "Rolling updates and drains ({} trials under a loop of GETs; the section took {:.0} s)\n\n\
         {}\n{}\nEach trial (times from the command starting)\n\n{}\n\
         Targets, in every trial: no failed request during a rolling update of {UPDATED_REPLICAS} \
         replicas: {update_failed} of {} in all ({}); every answer once it completed from the new \
         version: {stale} of {} checked were not ({}); no failed request during the drain of a \
         node with \
         {DRAINED_REPLICAS} replicas: {drain_failed} of {} in all ({}). No reference peer runs \
         rolling updates or drains here: the durations stand alone, without ratios.\n",
        r.trials.len(),
        r.took.as_secs_f64(),
        timings.render(),
        requests.render(),
        each.render(),
        made(&|t| t.update.served.requests),
        verdict(ran && update_failed == 0),
        made(&|t| t.update.checked),
        verdict(ran && stale == 0),
        made(&|t| t.drain.served.requests),
        verdict(ran && drain_failed == 0),
    )
}

/// The section's part of the report.
pub fn document(r: &RolloutResults, about: &About, args: &str) -> String {
    let [old, new] = VERSIONS;
    let mut d = String::from("## Rolling updates and drains\n\n");
    d.push_str(&provenance(&r.circumstances, about, args, "rollout"));
    d.push_str(&format!(
        "**Setup:** one lab cluster built by `warren_netns_tests::cluster` for every trial (the \
         deploy section's and the self-healing tests'): `warren serve` on a public lab host \
         (the lab's `--node-timeout 15s`, so that no node looks dead on a loaded machine), the \
         workers `{DRAINED}` (`warren join --direct`, in a VPC behind a cone NAT) and `{OTHER}` \
         (`warren join --relay`, behind a symmetric NAT), each with its own Docker daemon \
         (bridge mode) holding `local/busybox:1`, and a public client host. The services run \
         `sh -c \"{}\"` (the page says the version; the shell, the container's PID 1, exits at \
         SIGTERM, so a replica stops when told rather than after the stop grace), deployed \
         with `--host NAME.example.test {}` and the default update policy.\n\n\
         **Method:** {} trials one after the other, each of two parts, under a thread on the \
         client that sends GETs of `/` through the control plane's proxy (port 80, HTTP/1.0, \
         a new connection each, one at a time, back to back, a 20 s client timeout) from {} ms \
         before the change until {} s after it is over; a request fails unless it gets a 2xx. \
         **Rolling update:** a fresh service `siteN`, {UPDATED_REPLICAS} replicas saying \
         `{old}` (`--wait`; checked: on both workers), then `warren deploy` of the same saying \
         `{new}` (no `--wait`). Times count from that command's start: to its exit, to the \
         time of the control plane's `rollout_completed` event for generation 2 (every new \
         replica healthy, no old one left: `warren events --json`, polled every {} ms), and \
         to the last `{old}` container gone from both workers (`docker ps` by the labels \
         `warren.service` and `warren.generation`, polled). Then `warren services --json` must \
         show generation 2 with {UPDATED_REPLICAS} replicas healthy and running, and every \
         2xx answer to a request started once the completion was seen must say `{new}`. \
         **Drain:** `warren node drain {OTHER} --wait`, a fresh service `poolN` of \
         {DRAINED_REPLICAS} replicas (`--wait`: all on `{DRAINED}`, checked), `warren node \
         activate {OTHER}`, then `warren node drain {DRAINED} --wait`, timed from its start to \
         its exit (no replica left on `{DRAINED}`) and to `{DRAINED}`'s last container of \
         `poolN` gone (polled); all {DRAINED_REPLICAS} must then be healthy on `{OTHER}`; \
         `warren node activate {DRAINED}`. Each service is removed (`warren rm`, then a wait \
         until no warren container is left on either worker; not timed) after its part. The \
         control plane logs at `debug` (the lab's default), the proxy's access log \
         included.\n\n",
        versioned_httpd("VERSION"),
        HEALTH.join(" "),
        r.trials.len(),
        BEFORE.as_millis(),
        AFTER.as_secs(),
        POLL.as_millis(),
    ));
    d.push_str(&rollout_tables(r));
    d.push_str(HOW_TO_READ);
    d
}

/// The notes after the section's tables in the report.
const HOW_TO_READ: &str = "
### How to read the rollout figures

- A rolling update with the default policy (`--update-parallelism 1`) places one new
  replica at a time beside the old ones, and removes an old one each time a new one turns
  healthy; a drain moves the node's replicas the same way. Each step waits for a container
  start and a passing health check (every 500 ms here) reported by the agent, and for
  whatever more the default policy asks of a new replica before it counts as healthy, so
  the durations grow with the replica count.
- \"Rolled out\" is the control plane's view (the old replicas removed and their nodes told
  to stop them); the last old container is gone somewhat later, once its agent has stopped
  it. `warren node drain --wait` returns on the control plane's view too (it polls `warren
  nodes` every 250 ms).
- The polled figures (old containers gone, node emptied) are late by up to a poll (250 ms
  and a `docker ps`).

";

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(base: Instant, ms: u64, outcome: Result<&str, &str>) -> Answer {
        Answer {
            started: base + Duration::from_millis(ms),
            outcome: outcome.map(str::to_owned).map_err(str::to_owned),
        }
    }

    #[test]
    fn answers_give_failures_and_stale_pages_after_completion() {
        let base = Instant::now();
        let answers = [
            answer(base, 0, Ok("v1")),
            answer(base, 10, Err("HTTP/1.1 502 Bad Gateway")),
            answer(base, 20, Ok("v2")),
            answer(base, 30, Err("connection refused")),
            // From here on the rollout was seen completed.
            answer(base, 40, Ok("v1")),
            answer(base, 50, Ok("v2")),
            answer(base, 60, Err("timed out")),
            answer(base, 70, Ok("v2")),
        ];
        let served = Served::of(&answers);
        assert_eq!(
            served,
            Served {
                requests: 8,
                failed: 3,
                first_error: Some("HTTP/1.1 502 Bad Gateway".to_owned()),
            }
        );
        let since = base + Duration::from_millis(40);
        assert_eq!(stale(&answers, since, "v2"), (1, 3));
        assert_eq!(stale(&answers, since, "v1"), (2, 3));
        assert_eq!(stale(&answers, base + Duration::from_secs(1), "v2"), (0, 0));
        assert_eq!(Served::of(&[]), Served::default());
    }

    #[test]
    fn a_page_is_the_trimmed_body() {
        assert_eq!(
            page("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nv2\n"),
            "v2"
        );
        assert_eq!(page("HTTP/1.0 200 OK\r\n"), "");
    }

    fn trial(completed_ms: u64, failed: usize, stale: usize, drained_ms: u64) -> Trial {
        let ms = Duration::from_millis;
        Trial {
            update: Update {
                accepted: ms(30),
                completed: ms(completed_ms),
                old_gone: ms(completed_ms + 400),
                served: Served {
                    requests: 1000,
                    failed,
                    first_error: None,
                },
                stale,
                checked: 200,
            },
            drain: Drain {
                waited: ms(drained_ms),
                emptied: ms(drained_ms + 300),
                served: Served {
                    requests: 2000,
                    failed: 0,
                    first_error: None,
                },
            },
        }
    }

    #[test]
    fn tables_give_median_max_totals_and_targets() {
        let r = RolloutResults {
            circumstances: Circumstances::default(),
            trials: vec![
                trial(6000, 0, 0, 9000),
                trial(7000, 0, 0, 11000),
                trial(8000, 0, 0, 10000),
            ],
            took: Duration::from_secs(150),
        };
        let t = rollout_tables(&r);
        let cells = |first| crate::workload::row_cells(&t, first);
        assert_eq!(cells("`rollout_completed`")[1..], ["7.00", "8.00", "—"]);
        assert_eq!(cells("the last old container gone")[1..3], ["7.40", "8.40"]);
        assert_eq!(cells("--wait` returned")[1..3], ["10.00", "11.00"]);
        assert_eq!(cells("last container gone")[1..3], ["10.30", "11.30"]);
        assert_eq!(
            cells("failed during the rolling update")[1..],
            ["0", "0", "0", "0"]
        );
        assert_eq!(
            cells("made during the drain")[1..4],
            ["2000", "2000", "6000"]
        );
        assert_eq!(
            cells("2"),
            ["2", "7.00", "7.40", "0 / 1000", "0 / 200", "11.00", "11.30", "0 / 2000"]
        );
        assert!(t.contains("the section took 150 s"), "{t}");
        assert!(t.contains("0 of 3000 in all (met)"), "{t}");
        assert!(t.contains("0 of 600 checked were not (met)"), "{t}");
        assert!(t.contains("0 of 6000 in all (met)"), "{t}");

        let r = RolloutResults {
            trials: vec![trial(6000, 2, 1, 9000), trial(7000, 1, 0, 9000)],
            ..r
        };
        let t = rollout_tables(&r);
        assert!(t.contains("3 of 2000 in all (NOT met)"), "{t}");
        assert!(t.contains("1 of 400 checked were not (NOT met)"), "{t}");
        assert!(t.contains("0 of 4000 in all (met)"), "{t}");
    }
}
