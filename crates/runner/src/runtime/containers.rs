//! Containers: run a replica, find warren's own containers (and only
//! them), inspect, stop and remove them; images on the node.
//!
//! Every call that takes a container id first checks that the container
//! carries warren's labels ([`ReplicaLabels`]) and refuses
//! ([`RuntimeError::NotOurs`]) otherwise: the agent never touches a
//! container it did not make.

use std::collections::HashMap;
use std::time::SystemTime;

use bollard::models::{ContainerInspectResponse, ContainerState};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptions,
};
use futures::StreamExt;

use super::engine::Runtime;
use super::error::RuntimeError;
use super::spec::{ReplicaLabels, ReplicaSpec, LABEL_SERVICE};

/// A container's lifecycle state, as Docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContainerStatus {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Being restarted by Docker (never by warren's containers: no policy).
    Restarting,
    /// Being removed.
    Removing,
    /// Exited.
    Exited,
    /// Dead (removal failed half-way).
    Dead,
    /// Being stopped.
    Stopping,
    /// Anything else.
    Unknown,
}

impl ContainerStatus {
    /// Docker's name (`running`) to the status.
    pub fn from_docker(name: &str) -> ContainerStatus {
        match name {
            "created" => ContainerStatus::Created,
            "running" => ContainerStatus::Running,
            "paused" => ContainerStatus::Paused,
            "restarting" => ContainerStatus::Restarting,
            "removing" => ContainerStatus::Removing,
            "exited" => ContainerStatus::Exited,
            "dead" => ContainerStatus::Dead,
            "stopping" => ContainerStatus::Stopping,
            _ => ContainerStatus::Unknown,
        }
    }
}

/// One of warren's containers, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurContainer {
    /// The container id.
    pub id: String,
    /// Which replica it is.
    pub labels: ReplicaLabels,
    /// The image it was created from.
    pub image: String,
    /// Its state.
    pub status: ContainerStatus,
}

/// One of warren's containers, inspected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// The container id.
    pub id: String,
    /// Which replica it is.
    pub labels: ReplicaLabels,
    /// Its state.
    pub status: ContainerStatus,
    /// Whether it is running.
    pub running: bool,
    /// The exit code of its last run (0 while running or never run).
    pub exit_code: Option<i64>,
    /// Whether the kernel killed it for memory.
    pub oom_killed: bool,
    /// Docker's error for it (a failed start), if any.
    pub error: Option<String>,
    /// When it last started (`None`: never).
    pub started_at: Option<SystemTime>,
    /// When it last finished (`None`: never).
    pub finished_at: Option<SystemTime>,
}

/// A Docker timestamp (RFC 3339, UTC); Docker's zero time
/// (`0001-01-01T00:00:00Z`) and anything unreadable are `None`.
pub fn parse_docker_time(text: &str) -> Option<SystemTime> {
    let time = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()?;
    (time > SystemTime::UNIX_EPOCH).then_some(time)
}

/// The state of `inspect` as [`ContainerInfo`] fields.
fn info_from(id: String, labels: ReplicaLabels, state: Option<ContainerState>) -> ContainerInfo {
    let state = state.unwrap_or_default();
    let time = |t: &Option<String>| t.as_deref().and_then(parse_docker_time);
    ContainerInfo {
        id,
        labels,
        status: state.status.as_ref().map_or(ContainerStatus::Unknown, |s| {
            ContainerStatus::from_docker(s.as_ref())
        }),
        running: state.running.unwrap_or(false),
        exit_code: state.exit_code,
        oom_killed: state.oom_killed.unwrap_or(false),
        error: state.error.clone().filter(|e| !e.is_empty()),
        started_at: time(&state.started_at),
        finished_at: time(&state.finished_at),
    }
}

impl Runtime {
    /// Creates and starts one replica's container and returns its id. The
    /// image must be on the node ([`Runtime::image_present`],
    /// [`Runtime::pull_image`]): an absent one is
    /// [`RuntimeError::ImageNotFound`] with the daemon's message. A
    /// container that fails to start is removed again.
    pub async fn run_replica(&self, spec: &ReplicaSpec) -> Result<String, RuntimeError> {
        spec.validate()?;
        let name = spec.labels().container_name();
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), spec.create_body())
            .await
            .map_err(|e| match RuntimeError::from_docker("create container", e) {
                RuntimeError::Daemon {
                    status: 404,
                    message,
                    ..
                } => RuntimeError::ImageNotFound {
                    image: spec.image.clone(),
                    message,
                },
                other => other,
            })?;
        let id = created.id;
        if let Err(e) = self.docker.start_container(&id, None).await {
            let e = RuntimeError::from_docker("start container", e);
            let remove = RemoveContainerOptionsBuilder::new().force(true).build();
            if let Err(cleanup) = self.docker.remove_container(&id, Some(remove)).await {
                tracing::warn!(%id, %cleanup, "cannot remove a container that failed to start");
            }
            return Err(e);
        }
        tracing::info!(%id, %name, image = %spec.image, "replica started");
        Ok(id)
    }

    /// warren's containers on this node, running or not: those with all
    /// of warren's labels. Every other container is left out.
    pub async fn list_ours(&self) -> Result<Vec<OurContainer>, RuntimeError> {
        let filters = HashMap::from([("label", vec![LABEL_SERVICE])]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| RuntimeError::from_docker("list containers", e))?;
        Ok(listed
            .into_iter()
            .filter_map(|c| {
                let labels = ReplicaLabels::parse(c.labels.as_ref()?)?;
                Some(OurContainer {
                    id: c.id?,
                    labels,
                    image: c.image.unwrap_or_default(),
                    status: c.state.as_ref().map_or(ContainerStatus::Unknown, |s| {
                        ContainerStatus::from_docker(s.as_ref())
                    }),
                })
            })
            .collect())
    }

    /// Inspects `id` if it is one of warren's; the raw answer too.
    pub(crate) async fn inspect_ours(
        &self,
        id: &str,
    ) -> Result<(ReplicaLabels, ContainerInspectResponse), RuntimeError> {
        let inspected = self
            .docker
            .inspect_container(id, None)
            .await
            .map_err(|e| RuntimeError::from_docker_for("inspect container", id, e))?;
        let labels = inspected
            .config
            .as_ref()
            .and_then(|c| c.labels.as_ref())
            .and_then(ReplicaLabels::parse)
            .ok_or_else(|| RuntimeError::NotOurs(id.to_owned()))?;
        Ok((labels, inspected))
    }

    /// The state of one of warren's containers: status, exit code, start
    /// and finish times.
    pub async fn inspect(&self, id: &str) -> Result<ContainerInfo, RuntimeError> {
        let (labels, inspected) = self.inspect_ours(id).await?;
        let full_id = inspected.id.clone().unwrap_or_else(|| id.to_owned());
        Ok(info_from(full_id, labels, inspected.state))
    }

    /// Stops one of warren's containers: SIGTERM, then SIGKILL after its
    /// stop grace (the `StopTimeout` it was created with, from
    /// `--stop-grace`; the daemon's 10 s for a container without one).
    /// Stopping a stopped container is not an error.
    pub async fn stop(&self, id: &str) -> Result<(), RuntimeError> {
        self.inspect_ours(id).await?;
        self.docker
            .stop_container(id, None::<StopContainerOptions>)
            .await
            .map_err(|e| RuntimeError::from_docker_for("stop container", id, e))
    }

    /// Removes one of warren's containers (and its anonymous volumes),
    /// killing it first if it still runs.
    pub async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.inspect_ours(id).await?;
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        self.docker
            .remove_container(id, Some(options))
            .await
            .map_err(|e| RuntimeError::from_docker_for("remove container", id, e))
    }

    /// Whether `image` is on this node.
    pub async fn image_present(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) => match RuntimeError::from_docker("inspect image", e) {
                RuntimeError::Daemon { status: 404, .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Whether `image` can run here without pulling it first, or else be
    /// pulled: `Ok` when it is on the node or its registry knows it (asked
    /// for the manifest only, `GET /distribution/IMAGE/json`: nothing is
    /// downloaded); otherwise [`RuntimeError::ImagePull`] with the
    /// daemon's reason. What `warren deploy` asks of the nodes it would
    /// place on before it stores anything.
    pub async fn image_obtainable(&self, image: &str) -> Result<(), RuntimeError> {
        if self.image_present(image).await? {
            return Ok(());
        }
        match self.docker.inspect_registry_image(image, None).await {
            Ok(_) => Ok(()),
            Err(e) => Err(
                match RuntimeError::from_docker("inspect registry image", e) {
                    RuntimeError::Daemon { message, .. } => RuntimeError::ImagePull {
                        image: image.to_owned(),
                        message,
                    },
                    other => other,
                },
            ),
        }
    }

    /// Pulls `image` (no registry credentials yet). A refusal, before or
    /// during the download, is [`RuntimeError::ImagePull`] with the
    /// daemon's message.
    pub async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        let options = CreateImageOptionsBuilder::new().from_image(image).build();
        let mut progress = self.docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            let failed = |message: String| RuntimeError::ImagePull {
                image: image.to_owned(),
                message,
            };
            match step {
                Ok(info) => {
                    if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                        return Err(failed(detail));
                    }
                }
                Err(e) => {
                    return Err(match RuntimeError::from_docker("pull image", e) {
                        RuntimeError::Daemon { message, .. } => failed(message),
                        other => other,
                    })
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_times() {
        let t = parse_docker_time("2026-12-01T12:00:00.123456789Z");
        let expected =
            SystemTime::UNIX_EPOCH + std::time::Duration::new(1_796_126_400, 123_456_789);
        assert_eq!(t, Some(expected));
        assert_eq!(parse_docker_time("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_docker_time(""), None);
        assert_eq!(parse_docker_time("yesterday"), None);
    }

    #[test]
    fn states() {
        assert_eq!(
            ContainerStatus::from_docker("running"),
            ContainerStatus::Running
        );
        assert_eq!(
            ContainerStatus::from_docker("exited"),
            ContainerStatus::Exited
        );
        assert_eq!(
            ContainerStatus::from_docker("zombie"),
            ContainerStatus::Unknown
        );
        let labels = ReplicaLabels {
            service: "web".to_owned(),
            replica: warren_proto::assignment::ReplicaId("web-1".to_owned()),
            generation: 1,
            attempt: 0,
        };
        let state = ContainerState {
            status: Some(bollard::models::ContainerStateStatusEnum::EXITED),
            running: Some(false),
            exit_code: Some(3),
            error: Some(String::new()),
            started_at: Some("2026-12-01T12:00:00Z".to_owned()),
            finished_at: Some("0001-01-01T00:00:00Z".to_owned()),
            ..Default::default()
        };
        let info = info_from("abc".to_owned(), labels, Some(state));
        assert_eq!(info.status, ContainerStatus::Exited);
        assert_eq!(info.exit_code, Some(3));
        assert_eq!(info.error, None);
        assert!(info.started_at.is_some());
        assert_eq!(info.finished_at, None);
    }
}
