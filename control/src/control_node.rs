//! The control plane's host running replicas (`warren serve
//! --docker-host`), with the code the agents run ([`warren_runner`]): its
//! [`Runner`] gets the assignments of the node [`CONTROL_NAME`] on the same
//! [`PeerEvent::Assignments`] the agents' connections follow, and its
//! reports go straight into the cluster's state, as an agent's would.
//! Its replica streams (`warren logs`, `warren exec`, image checks) are
//! answered in process ([`AgentLinks::insert_local`]).
//!
//! Started after the control plane's mesh device is up: replicas publish
//! on its mesh address.

use crate::agent_links::AgentLinks;
use crate::cluster::{Cluster, ClusterStopped, PeerEvent};
use crate::nodes::CONTROL_NAME;
use std::net::Ipv4Addr;
use std::path::Path;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use warren_proto::assignment::{Assignment, ReplicaStatus};
use warren_runner::assignments::AssignmentsFile;
use warren_runner::runtime::{Runtime, RuntimeError};
use warren_runner::streams::Streams;
use warren_runner::workloads::{self, Input, Runner};

/// The file, in the control plane's data directory, that keeps the last
/// assignments of its host (what it runs while its state is loading).
const ASSIGNMENTS_FILE: &str = "assignments.json";

/// Why the control plane's host cannot run replicas.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlNodeError {
    /// Its Docker daemon.
    #[error("the control plane's Docker daemon: {0}")]
    Runtime(#[from] RuntimeError),
    /// The control plane is stopping.
    #[error(transparent)]
    Stopped(#[from] ClusterStopped),
}

/// The running control node: stop it with [`ControlNode::stop`] (its
/// containers keep running, as an agent's do when it stops).
#[derive(Debug)]
pub struct ControlNode {
    runner: JoinHandle<()>,
    follower: JoinHandle<()>,
}

impl ControlNode {
    /// Connects to `docker_host`, tells the cluster what the host offers,
    /// and starts its replicas' loop on `mesh_ip` and their streams.
    pub async fn start(
        docker_host: &str,
        mesh_ip: Ipv4Addr,
        data_dir: &Path,
        cluster: Cluster,
        events: broadcast::Receiver<PeerEvent>,
        links: &AgentLinks,
    ) -> Result<ControlNode, ControlNodeError> {
        let runtime = Runtime::connect(docker_host).await?;
        let report = workloads::node_report(&runtime, None, None).await?;
        let now = warren_os::unix_now();
        cluster
            .with(move |state| state.record_node(CONTROL_NAME, report, now))
            .await?;
        links.insert_local(CONTROL_NAME, Streams::new(runtime.clone()));
        let stored = AssignmentsFile::new(data_dir.join(ASSIGNMENTS_FILE));
        let runner = Runner::new(runtime, stored, mesh_ip);
        let (inputs, received) = mpsc::channel(4);
        let (reports, reported) = mpsc::channel(4);
        let runner = tokio::spawn(runner.run(received, reports));
        let follower = tokio::spawn(follow(cluster, events, inputs, reported));
        tracing::info!(%mesh_ip, "the control plane's host runs replicas");
        Ok(ControlNode { runner, follower })
    }

    /// Stops the loop; the containers stay.
    pub fn stop(self) {
        self.follower.abort();
        self.runner.abort();
    }
}

/// Passes the node's assignments to the runner whenever they change and
/// its reports to the cluster, until the control plane stops.
async fn follow(
    cluster: Cluster,
    mut events: broadcast::Receiver<PeerEvent>,
    inputs: mpsc::Sender<Input>,
    mut reported: mpsc::Receiver<Vec<ReplicaStatus>>,
) {
    let mut sent: Option<Vec<Assignment>> = None;
    // The current set first, then after every change.
    let mut changed = true;
    loop {
        if changed {
            changed = false;
            let Ok((revision, replicas)) = cluster
                .with(|state| state.assignments_for(CONTROL_NAME))
                .await
            else {
                return;
            };
            if sent.as_ref() != Some(&replicas) {
                sent = Some(replicas.clone());
                let input = Input::Assignments { revision, replicas };
                if inputs.send(input).await.is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            event = events.recv() => match event {
                Ok(PeerEvent::Assignments) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    changed = true;
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            statuses = reported.recv() => {
                let Some(statuses) = statuses else { return };
                let now = warren_os::unix_now();
                let recorded = cluster
                    .with(move |state| state.record_replicas(CONTROL_NAME, statuses, now))
                    .await;
                if recorded.is_err() {
                    return;
                }
            }
        }
    }
}
