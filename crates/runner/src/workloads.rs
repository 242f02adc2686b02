//! The node's replicas at run time: the loop that takes the control plane's
//! assignments, converges the node's Docker daemon to them
//! ([`crate::converge`]), probes their health ([`crate::health`],
//! [`crate::probe`]) and reports every change at once.
//!
//! It keeps the last assignments in a file ([`AssignmentsFile`]) and starts
//! from them, so replicas keep running and restarting while the control
//! plane is away, also across an agent restart. It only moves bytes; the
//! decisions are the converger's and the health state's.

use crate::assignments::AssignmentsFile;
use crate::converge::{Action, ContainerState, Converger, Observed};
use crate::health::HealthState;
use crate::runtime::RuntimeError;
use crate::runtime::{ContainerStatus, OurContainer, PortMapping, ReplicaSpec, Runtime};
use crate::usage::{self, Usage};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use warren_proto::assignment::{
    Assignment, Health, NodeReport, ReplicaId, ReplicaState, ReplicaStatus,
};
use warren_proto::RestartPolicy;

/// How often the daemon is looked at when nothing else wakes the loop: a
/// container killed by hand is noticed within this.
const POLL: Duration = Duration::from_secs(1);

/// The first wait before a replica that could not be started is tried
/// again; it doubles up to [`MAX_START_RETRY`].
const FIRST_START_RETRY: Duration = Duration::from_secs(1);

/// The longest wait between tries to start a replica that cannot start.
const MAX_START_RETRY: Duration = Duration::from_secs(30);

/// What the loop is told.
#[derive(Debug)]
pub enum Input {
    /// The control plane's assignments for this node.
    Assignments {
        /// Their revision: an older one than the current is ignored.
        revision: u64,
        /// The replicas.
        replicas: Vec<Assignment>,
    },
    /// The node was removed from the cluster: stop and remove every
    /// replica's container, forget the assignments, then say so on `done`
    /// and end.
    Leave {
        /// Told once the containers are gone.
        done: tokio::sync::oneshot::Sender<()>,
    },
}

/// A replica that could not be started, and when to try again.
#[derive(Debug, Clone)]
struct Failure {
    reason: String,
    retry_at: Instant,
    wait: Duration,
}

/// The loop's state (see the module doc).
pub struct Runner {
    runtime: Runtime,
    stored: AssignmentsFile,
    mesh_ip: Ipv4Addr,
    converger: Converger,
    revision: u64,
    assigned: Vec<Assignment>,
    health: HashMap<String, HealthState>,
    exit_codes: HashMap<String, i64>,
    failures: HashMap<ReplicaId, Failure>,
    reported: Option<Vec<ReplicaStatus>>,
    /// The latest CPU and memory of the running containers.
    usage: watch::Receiver<Usage>,
    /// Images being pulled, each by a task of its own (a pull can take
    /// minutes; the loop keeps converging and probing meanwhile).
    pulls: HashSet<String>,
    /// Containers being stopped, each by a task of its own (a stop can
    /// take its whole grace period), with their replicas. The converger
    /// does not see them; their health stays as it was until they stopped.
    stopping: HashMap<String, ReplicaId>,
    /// Replicas to start once their old container has stopped (the new one
    /// publishes the same host ports).
    deferred: HashMap<ReplicaId, Assignment>,
    /// Where those tasks say they are done.
    finished: mpsc::UnboundedSender<Finished>,
    /// What they said, until [`Runner::run`] takes it.
    finished_rx: Option<mpsc::UnboundedReceiver<Finished>>,
}

/// Work the loop handed to a task of its own, done.
#[derive(Debug)]
enum Finished {
    /// The pull of an image ended.
    Pull(String, Result<(), RuntimeError>),
    /// A container was stopped (or could not be).
    Stop(String),
}

impl Runner {
    /// A runner on `runtime` publishing on `mesh_ip`, starting from the
    /// assignments stored in `stored`.
    pub fn new(runtime: Runtime, stored: AssignmentsFile, mesh_ip: Ipv4Addr) -> Runner {
        let (revision, assigned) = match stored.load() {
            Ok(Some(stored)) => stored,
            Ok(None) => (0, Vec::new()),
            Err(error) => {
                tracing::warn!(%error, "the stored assignments cannot be read; waiting for the control plane's");
                (0, Vec::new())
            }
        };
        let (finished, finished_rx) = mpsc::unbounded_channel();
        Runner {
            runtime,
            stored,
            mesh_ip,
            converger: Converger::new(),
            revision,
            assigned,
            health: HashMap::new(),
            exit_codes: HashMap::new(),
            failures: HashMap::new(),
            reported: None,
            usage: watch::channel(Usage::new()).1,
            pulls: HashSet::new(),
            stopping: HashMap::new(),
            deferred: HashMap::new(),
            finished,
            finished_rx: Some(finished_rx),
        }
    }

    /// Runs until `inputs` closes, sending every change of the replicas'
    /// states (and of their usage, sampled by a task of its own) to
    /// `reports`.
    pub async fn run(
        mut self,
        mut inputs: mpsc::Receiver<Input>,
        reports: mpsc::Sender<Vec<ReplicaStatus>>,
    ) {
        let (sampled, usage) = watch::channel(Usage::new());
        self.usage = usage;
        tokio::spawn(usage::sample(self.runtime.clone(), sampled));
        let Some(mut finished) = self.finished_rx.take() else {
            return;
        };
        loop {
            let wake = self.next_wakeup(Instant::now());
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(Input::Assignments { revision, replicas }) => self.assign(revision, replicas),
                    Some(Input::Leave { done }) => {
                        self.leave().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                Some(done) = finished.recv() => match done {
                    Finished::Pull(image, result) => self.pull_ended(image, result),
                    Finished::Stop(container) => {
                        self.stopping.remove(&container);
                        self.health.remove(&container);
                    }
                },
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
            }
            if let Some(statuses) = self.step().await {
                if reports.send(statuses).await.is_err() {
                    return;
                }
            }
        }
    }

    fn assign(&mut self, revision: u64, replicas: Vec<Assignment>) {
        if revision < self.revision {
            return;
        }
        self.revision = revision;
        self.assigned = replicas;
        if let Err(error) = self.stored.save(revision, &self.assigned) {
            tracing::warn!(%error, "storing the assignments");
        }
    }

    async fn leave(&mut self) {
        self.revision = 0;
        self.assigned.clear();
        if let Err(error) = self.stored.save(0, &self.assigned) {
            tracing::warn!(%error, "forgetting the assignments");
        }
        let containers = match self.runtime.list_ours().await {
            Ok(containers) => containers,
            Err(error) => {
                tracing::warn!(%error, "listing the replicas to stop");
                return;
            }
        };
        let runtime = &self.runtime;
        let stops = containers.iter().map(|container| async move {
            let id = &container.id;
            if let Err(error) = runtime.stop(id).await {
                tracing::warn!(container = %id, %error, "stopping a replica");
            }
            if let Err(error) = runtime.remove(id).await {
                tracing::warn!(container = %id, %error, "removing a replica's container");
            }
        });
        futures::future::join_all(stops).await;
        tracing::info!("stopped every replica: this node was removed");
    }

    fn next_wakeup(&self, now: Instant) -> Instant {
        let mut wake = now + POLL;
        let timers = self
            .converger
            .next_wakeup()
            .into_iter()
            .chain(self.health.values().filter_map(HealthState::next_probe))
            .chain(self.failures.values().map(|f| f.retry_at));
        for at in timers {
            wake = wake.min(at.max(now));
        }
        wake
    }

    /// One round: look at the daemon, act, probe; the states if they changed.
    async fn step(&mut self) -> Option<Vec<ReplicaStatus>> {
        let now = Instant::now();
        let mut containers = self.list().await?;
        // Replacements whose old container has stopped start before the
        // converger looks, so it sees them and not a replica to restart.
        let stopped: Vec<ReplicaId> = self
            .deferred
            .keys()
            .filter(|replica| !self.stopping.values().any(|r| r == *replica))
            .cloned()
            .collect();
        // Only those still assigned, as they are assigned now.
        let ready: Vec<Assignment> = stopped
            .iter()
            .filter_map(|replica| self.deferred.remove(replica))
            .filter(|deferred| self.assigned.contains(deferred))
            .collect();
        if !ready.is_empty() {
            for assignment in &ready {
                self.start(assignment, &containers, now).await;
            }
            containers = self.list().await?;
        }
        let observed = self.observe(&containers).await;
        for action in self.converger.converge(&self.assigned, &observed, now) {
            self.carry_out(action, &containers, now).await;
        }
        self.probe(&containers, now).await;
        let statuses = self.statuses(&containers);
        if self.reported.as_ref() == Some(&statuses) {
            return None;
        }
        self.reported = Some(statuses.clone());
        Some(statuses)
    }

    /// warren's containers on the daemon (`None`, logged, when it cannot
    /// say: then after a [`POLL`], so that timers already due do not spin
    /// the loop while the daemon is away).
    async fn list(&self) -> Option<Vec<OurContainer>> {
        match self.runtime.list_ours().await {
            Ok(containers) => Some(containers),
            Err(error) => {
                tracing::warn!(%error, "listing the node's replicas");
                tokio::time::sleep(POLL).await;
                None
            }
        }
    }

    /// The containers as the converger sees them (not those being
    /// stopped).
    async fn observe(&mut self, containers: &[OurContainer]) -> Vec<Observed> {
        let mut observed = Vec::with_capacity(containers.len());
        for container in containers {
            if self.stopping.contains_key(&container.id) {
                continue;
            }
            let state = match container.status {
                ContainerStatus::Created => ContainerState::Created,
                ContainerStatus::Exited | ContainerStatus::Dead => ContainerState::Exited {
                    code: self.exit_code(&container.id).await,
                },
                _ => ContainerState::Running {
                    unhealthy: self
                        .health
                        .get(&container.id)
                        .is_some_and(|h| h.health() == Health::Unhealthy),
                },
            };
            observed.push(Observed {
                container: container.id.clone(),
                replica: container.labels.replica.clone(),
                generation: container.labels.generation,
                state,
                created: u64::from(container.labels.attempt),
            });
        }
        observed
    }

    /// An exited container's exit code (asked once: it does not change).
    async fn exit_code(&mut self, id: &str) -> i64 {
        if let Some(code) = self.exit_codes.get(id) {
            return *code;
        }
        let code = match self.runtime.inspect(id).await {
            Ok(info) => info.exit_code.unwrap_or(-1),
            Err(_) => -1,
        };
        self.exit_codes.insert(id.to_owned(), code);
        code
    }

    async fn carry_out(&mut self, action: Action, containers: &[OurContainer], now: Instant) {
        match action {
            Action::Start(assignment) => self.start(&assignment, containers, now).await,
            Action::Stop { container } => {
                let replica = containers
                    .iter()
                    .find(|c| c.id == container)
                    .map(|c| c.labels.replica.clone());
                if let Some(replica) = replica {
                    self.stop(container, replica);
                }
            }
            Action::Remove { container } => {
                if let Err(error) = self.runtime.remove(&container).await {
                    tracing::warn!(%container, %error, "removing a replica's container");
                }
                self.health.remove(&container);
                self.exit_codes.remove(&container);
            }
        }
    }

    async fn start(&mut self, assignment: &Assignment, containers: &[OurContainer], now: Instant) {
        if self.stopping.values().any(|r| *r == assignment.replica) {
            self.deferred
                .insert(assignment.replica.clone(), assignment.clone());
            return;
        }
        if self
            .failures
            .get(&assignment.replica)
            .is_some_and(|failure| failure.retry_at > now)
        {
            return;
        }
        let attempt = containers
            .iter()
            .filter(|c| c.labels.replica == assignment.replica)
            .map(|c| c.labels.attempt + 1)
            .max()
            .unwrap_or(0);
        let spec = &assignment.spec;
        let replica = ReplicaSpec {
            service: spec.name.clone(),
            replica: assignment.replica.clone(),
            generation: assignment.generation,
            attempt,
            image: spec.image.clone(),
            command: spec.command.clone(),
            env: spec.env.clone(),
            publish_ip: IpAddr::V4(self.mesh_ip),
            ports: spec
                .ports
                .iter()
                .zip(&assignment.host_ports)
                .map(|(container, host)| PortMapping {
                    container: *container,
                    host: *host,
                })
                .collect(),
            cpu_millis: spec.cpu_millis,
            memory: spec.memory,
            stop_grace: Duration::from_millis(spec.stop_grace_ms),
        };
        let started = match self.runtime.image_present(&spec.image).await {
            Ok(true) => self.runtime.run_replica(&replica).await,
            Ok(false) => {
                self.pull(&spec.image);
                return;
            }
            Err(error) => Err(error),
        };
        match started {
            Ok(id) => {
                let restarts = self.converger.restarts(&assignment.replica);
                tracing::info!(
                    replica = %assignment.replica,
                    generation = assignment.generation,
                    container = %shorten_id(&id),
                    restarts,
                    "replica started"
                );
                self.failures.remove(&assignment.replica);
                let min_healthy = Duration::from_millis(spec.update.min_healthy_ms);
                self.health
                    .insert(id, HealthState::new(spec.health.clone(), now, min_healthy));
            }
            Err(error) => self.failed(&assignment.replica, &error, now),
        }
    }

    /// `replica` could not start: it is tried again after a backoff.
    fn failed(&mut self, replica: &ReplicaId, error: &RuntimeError, now: Instant) {
        let wait = self
            .failures
            .get(replica)
            .map_or(FIRST_START_RETRY, |f| (f.wait * 2).min(MAX_START_RETRY));
        tracing::warn!(%replica, %error, "a replica cannot start");
        self.failures.insert(
            replica.clone(),
            Failure {
                reason: error.to_string(),
                retry_at: now + wait,
                wait,
            },
        );
    }

    /// Stops `container` on a task of its own, unless it is already being
    /// stopped; its health stays as it was until it has stopped.
    fn stop(&mut self, container: String, replica: ReplicaId) {
        if self.stopping.insert(container.clone(), replica).is_some() {
            return;
        }
        tracing::info!(container = %shorten_id(&container), "stopping a replica's container");
        let (runtime, done) = (self.runtime.clone(), self.finished.clone());
        tokio::spawn(async move {
            if let Err(error) = runtime.stop(&container).await {
                tracing::warn!(%container, %error, "stopping a replica");
            }
            let _ = done.send(Finished::Stop(container));
        });
    }

    /// Starts pulling `image` on a task of its own, unless it is already.
    fn pull(&mut self, image: &str) {
        if !self.pulls.insert(image.to_owned()) {
            return;
        }
        tracing::info!(%image, "pulling an image");
        let (runtime, image, done) = (
            self.runtime.clone(),
            image.to_owned(),
            self.finished.clone(),
        );
        tokio::spawn(async move {
            let result = runtime.pull_image(&image).await;
            let _ = done.send(Finished::Pull(image, result));
        });
    }

    /// A pull ended: the next round starts the replicas waiting for it, or
    /// they fail with the daemon's reason and are tried again later.
    fn pull_ended(&mut self, image: String, result: Result<(), RuntimeError>) {
        self.pulls.remove(&image);
        match result {
            Ok(()) => tracing::info!(%image, "image pulled"),
            Err(error) => {
                let now = Instant::now();
                let waiting: Vec<ReplicaId> = self
                    .assigned
                    .iter()
                    .filter(|a| a.spec.image == image)
                    .map(|a| a.replica.clone())
                    .collect();
                for replica in waiting {
                    self.failed(&replica, &error, now);
                }
            }
        }
    }

    /// Runs the probes that are due.
    async fn probe(&mut self, containers: &[OurContainer], now: Instant) {
        for container in containers
            .iter()
            .filter(|c| c.status == ContainerStatus::Running && !self.stopping.contains_key(&c.id))
        {
            let Some(assignment) = self
                .assigned
                .iter()
                .find(|a| a.replica == container.labels.replica)
            else {
                continue;
            };
            let state = self
                .health
                .entry(container.id.clone())
                // A container adopted after an agent restart.
                .or_insert_with(|| {
                    HealthState::new(assignment.spec.health.clone(), now, Duration::ZERO)
                });
            if state.next_probe().is_none_or(|at| at > now) {
                continue;
            }
            let Some(check) = &assignment.spec.health else {
                state.handle_timeout(now);
                continue;
            };
            let target = assignment
                .host_ports
                .first()
                .map(|port| SocketAddr::from((self.mesh_ip, *port)));
            let timeout = Duration::from_millis(check.timeout_ms);
            let passed =
                crate::probe::check(&check.probe, target, &self.runtime, &container.id, timeout)
                    .await;
            if let Some(state) = self.health.get_mut(&container.id) {
                state.handle_probe(passed, Instant::now());
            }
        }
    }

    /// Every assigned replica's state now.
    fn statuses(&self, containers: &[OurContainer]) -> Vec<ReplicaStatus> {
        let usage = self.usage.borrow();
        self.assigned
            .iter()
            .map(|assignment| {
                let mine: Vec<&OurContainer> = containers
                    .iter()
                    .filter(|c| {
                        c.labels.replica == assignment.replica
                            && c.labels.generation == assignment.generation
                    })
                    .collect();
                let running = mine.iter().find(|c| c.status == ContainerStatus::Running);
                let state = match (running, self.failures.get(&assignment.replica)) {
                    (Some(_), _) => ReplicaState::Running,
                    (None, Some(failure)) => ReplicaState::Failed {
                        reason: failure.reason.clone(),
                    },
                    (None, None) if self.pulls.contains(&assignment.spec.image) => {
                        ReplicaState::Pulling
                    }
                    (None, None) => match mine
                        .iter()
                        .filter_map(|c| self.exit_codes.get(&c.id))
                        .next_back()
                    {
                        Some(code) if !restarts(assignment.spec.restart, *code) => {
                            ReplicaState::Exited { code: *code }
                        }
                        _ => ReplicaState::Pending,
                    },
                };
                let health = running
                    .and_then(|c| self.health.get(&c.id))
                    .map_or(Health::Starting, HealthState::health);
                let sample = running.and_then(|c| usage.get(&c.id));
                ReplicaStatus {
                    replica: assignment.replica.clone(),
                    generation: assignment.generation,
                    state,
                    health,
                    restarts: self.converger.restarts(&assignment.replica),
                    cpu_millis: sample.and_then(usage::cpu_millis),
                    memory: sample.and_then(|u| u.memory_bytes),
                    started: None,
                }
            })
            .collect()
    }
}

/// A container id as `docker ps` shows it.
fn shorten_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// What the node offers to replicas: its daemon's figures, or the
/// operator's `--capacity-*` instead.
pub async fn node_report(
    runtime: &Runtime,
    capacity_cpu: Option<u64>,
    capacity_memory: Option<u64>,
) -> Result<NodeReport, crate::runtime::RuntimeError> {
    let facts = runtime.node_facts().await?;
    Ok(NodeReport {
        arch: facts.architecture,
        cpu_millis: capacity_cpu.unwrap_or(u64::from(facts.cpu_cores) * 1000),
        memory: capacity_memory.unwrap_or(facts.memory_bytes),
        disk_free: facts.free_disk_bytes,
        docker: facts.docker_version,
    })
}

/// Whether the policy restarts a container that exited with `code`.
fn restarts(policy: RestartPolicy, code: i64) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => code != 0,
        RestartPolicy::Never => false,
    }
}
