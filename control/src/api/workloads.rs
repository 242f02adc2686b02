//! The workload endpoints: `warren deploy`, `services`, `ps`, `scale`
//! and `rm`.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/v1/services` | a [`ServiceSpec`] | 200 [`Deployed`]; 400 a bad spec, or an image a node it would go to cannot get; 409 it does not fit |
//! | GET | `/v1/services` | | 200 `{"services":[ServiceView]}` |
//! | PUT | `/v1/services/{name}/replicas` | `{"replicas": n}` | 200 [`Deployed`]; 404 |
//! | DELETE | `/v1/services/{name}` | | 200 `{"name","removed":true}`; 404 |
//! | GET | `/v1/services/{name}/history` | | 200 `{"service","generations":[Generation]}`; 404 |
//! | POST | `/v1/services/{name}/rollback` | `{"to"?: n}` | 200 [`Deployed`]; 404; 409 nothing to go back to |
//! | GET | `/v1/replicas` | | 200 `{"replicas":[ReplicaView]}` |
//!
//! Before a deploy is stored, the nodes it would place replicas on are
//! asked whether they can run its image ([`check_image`]).

use super::{authorize, with, ApiError, ApiState};
use crate::agent_links::AgentLinks;
use crate::cluster::{spec_changes, ReplicaView, RollbackError, ServiceView, WorkloadCommandError};
use crate::store::Outcome;
use crate::store::ReplicaRecord;
use crate::workloads::WorkloadError;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use warren_proto::{ServiceSpec, StreamErrorCode, StreamFrame, StreamRequest};

/// What a deploy or scale placed: the service's replicas after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployed {
    /// The service.
    pub service: String,
    /// Its generation now.
    pub generation: u64,
    /// Its replicas: id, node, host ports.
    pub replicas: Vec<PlacedReplica>,
}

/// One replica of a [`Deployed`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedReplica {
    /// Its id.
    pub id: String,
    /// The generation it runs.
    pub generation: u64,
    /// Its node.
    pub node: String,
    /// Its host ports.
    pub host_ports: Vec<u16>,
}

/// The body of `PUT /v1/services/{name}/replicas`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scale {
    /// The replica count wanted.
    pub replicas: u32,
}

fn refused(error: WorkloadCommandError) -> ApiError {
    let status = match &error {
        WorkloadCommandError::Refused(WorkloadError::Unknown(_)) => StatusCode::NOT_FOUND,
        WorkloadCommandError::Refused(WorkloadError::Unplaceable { .. }) => StatusCode::CONFLICT,
        WorkloadCommandError::Refused(_) => StatusCode::BAD_REQUEST,
        WorkloadCommandError::Store(_) => return ApiError::internal(error),
    };
    ApiError(status, error.to_string())
}

fn deployed(service: &str, replicas: Vec<ReplicaRecord>) -> Deployed {
    Deployed {
        service: service.to_owned(),
        generation: replicas.iter().map(|r| r.generation).max().unwrap_or(0),
        replicas: replicas
            .into_iter()
            .map(|r| PlacedReplica {
                id: r.id.0,
                generation: r.generation,
                node: r.node,
                host_ports: r.host_ports,
            })
            .collect(),
    }
}

/// One generation as `warren history` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// Its number.
    pub generation: u64,
    /// When it was deployed, unix seconds.
    pub created: u64,
    /// The spec's fields that differ from the generation before (none for
    /// the first).
    pub changed: Vec<String>,
    /// How its rollout went: `rolling_out`, `completed`, `superseded`.
    pub outcome: Outcome,
    /// When its rollout ended, unix seconds.
    pub finished: Option<u64>,
    /// Why it was made, if not by a plain deploy (`rollback to 2`).
    pub note: Option<String>,
    /// Its image.
    pub image: String,
}

/// `GET /v1/services/{name}/history`.
pub(super) async fn history(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let service = name.clone();
    let stored = with(&state, move |cluster| cluster.history(&service))
        .await?
        .map_err(ApiError::internal)?;
    if stored.is_empty() {
        return Err(refused(WorkloadCommandError::Refused(
            WorkloadError::Unknown(name),
        )));
    }
    let generations: Vec<Generation> = stored
        .iter()
        .enumerate()
        .map(|(i, g)| Generation {
            generation: g.generation,
            created: g.created,
            changed: i
                .checked_sub(1)
                .map(|before| spec_changes(&stored[before].spec, &g.spec))
                .unwrap_or_default(),
            outcome: g.outcome,
            finished: g.finished,
            note: g.note.clone(),
            image: g.spec.image.clone(),
        })
        .collect();
    Ok(Json(json!({ "service": name, "generations": generations })))
}

/// The body of `POST /v1/services/{name}/rollback`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rollback {
    #[serde(default)]
    to: Option<u64>,
}

/// `POST /v1/services/{name}/rollback`: the spec of an earlier generation
/// deployed again as a new one, the way any deploy is.
pub(super) async fn rollback(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: Option<Json<Rollback>>,
) -> Result<Json<Deployed>, ApiError> {
    authorize(&state, &headers)?;
    let to = body.and_then(|Json(b)| b.to);
    let service = name.clone();
    let (spec, note) = with(&state, move |cluster| cluster.rollback_spec(&service, to))
        .await?
        .map_err(|error| match error {
            RollbackError::Unknown(_) => ApiError(StatusCode::NOT_FOUND, error.to_string()),
            RollbackError::Store(_) => ApiError::internal(error),
            _ => ApiError(StatusCode::CONFLICT, error.to_string()),
        })?;
    let logged = note.clone();
    let replicas = deploy_checked(&state, spec, Some(note)).await?;
    tracing::info!(service = %name, note = %logged, "service rolled back");
    Ok(Json(deployed(&name, replicas)))
}

/// Deploys `spec` (with `note` for `warren history`) once the nodes it
/// would place replicas on said they can run its image.
async fn deploy_checked(
    state: &ApiState,
    spec: ServiceSpec,
    note: Option<String>,
) -> Result<Vec<ReplicaRecord>, ApiError> {
    let now = warren_os::unix_now();
    let planned = spec.clone();
    let targets = with(state, move |cluster| cluster.deploy_targets(planned, now))
        .await?
        .map_err(refused)?;
    check_image(&state.links, &targets, &spec.image).await?;
    with(state, move |cluster| cluster.deploy_noted(spec, note, now))
        .await?
        .map_err(refused)
}

pub(super) async fn deploy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Json(spec): Json<ServiceSpec>,
) -> Result<Json<Deployed>, ApiError> {
    authorize(&state, &headers)?;
    let name = spec.name.clone();
    let replicas = deploy_checked(&state, spec, None).await?;
    tracing::info!(service = %name, replicas = replicas.len(), "service deployed");
    Ok(Json(deployed(&name, replicas)))
}

pub(super) async fn scale(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<Scale>,
) -> Result<Json<Deployed>, ApiError> {
    authorize(&state, &headers)?;
    let now = warren_os::unix_now();
    let service = name.clone();
    let replicas = with(&state, move |cluster| {
        cluster.scale(&service, body.replicas, now)
    })
    .await?
    .map_err(refused)?;
    tracing::info!(service = %name, replicas = body.replicas, "service scaled");
    Ok(Json(deployed(&name, replicas)))
}

pub(super) async fn remove(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let now = warren_os::unix_now();
    let service = name.clone();
    with(&state, move |cluster| cluster.remove_service(&service, now))
        .await?
        .map_err(refused)?;
    tracing::info!(service = %name, "service removed");
    Ok(Json(json!({ "name": name, "removed": true })))
}

pub(super) async fn services(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let services: Vec<ServiceView> = with(&state, |cluster| cluster.services_view()).await?;
    Ok(Json(json!({ "services": services })))
}

pub(super) async fn replicas(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let replicas: Vec<ReplicaView> = with(&state, |cluster| cluster.replicas_view()).await?;
    Ok(Json(json!({ "replicas": replicas })))
}

/// How long a node gets to say whether it can run an image (its daemon may
/// ask a registry); a node that does not answer in time is not held
/// against the deploy.
const IMAGE_CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// Asks each of `nodes` whose agent is connected whether it can run
/// `image` (it has it, or its registry knows it), all at once; the first
/// refusal, naming the node and with its daemon's reason, is a 400. A node
/// that is down, runs an older agent or does not answer in time is
/// skipped: its replica reports the failure when it tries.
async fn check_image(
    links: &AgentLinks,
    nodes: &BTreeSet<String>,
    image: &str,
) -> Result<(), ApiError> {
    let request = StreamRequest::Image {
        image: image.to_owned(),
    };
    let asks = nodes.iter().filter_map(|node| {
        let link = links.get(node)?;
        let request = &request;
        Some(async move {
            let answer = tokio::time::timeout(IMAGE_CHECK_TIMEOUT, async {
                let mut stream = link.open(node, request).await.ok()?;
                stream.next().await.ok().flatten()
            })
            .await;
            match answer {
                Ok(Some(StreamFrame::Error {
                    code: StreamErrorCode::Image,
                    reason,
                })) => Some(format!("node {node} cannot get the image: {reason}")),
                Ok(_) => None,
                Err(_) => {
                    tracing::warn!(%node, %image, "no answer in time on whether the node can run the image");
                    None
                }
            }
        })
    });
    let refusals = futures::future::join_all(asks).await;
    match refusals.into_iter().flatten().next() {
        Some(refusal) => Err(ApiError(StatusCode::BAD_REQUEST, refusal)),
        None => Ok(()),
    }
}
