//! The node endpoints of the admin API: `warren nodes`, `node rm` and
//! `node label`.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/v1/nodes` | | 200 `{"nodes":[NodeInfo]}` |
//! | DELETE | `/v1/nodes/{name}?force=true` | | 200 `{"name","removed","leaving","replicas"}`, 404, 409 (`control`) |
//! | POST | `/v1/nodes/{name}/labels` | `{"set"?:["K=V"],"unset"?:["K"]}` | 200 `{"name","labels"}`, 400, 404, 409 (`control`) |
//! | POST | `/v1/nodes/{name}/drain[?force=true]` | | 200 `{"name","drained":true,"replicas","stopped"}`, 404, 409 (`control`) |
//! | POST | `/v1/nodes/{name}/activate` | | 200 `{"name","drained":false,"replicas"}`, 404, 409 (`control`) |
//!
//! A drain answers at once, with the replicas still on the node: they move
//! one by one, each going once its replacement is healthy.
//!
//! `DELETE` of a node that runs replicas marks it leaving and answers at
//! once with `"removed": false`: the node goes when its replicas have moved
//! (`force` removes it now; its replicas are then replaced elsewhere).

use super::{authorize, with, ApiError, ApiState};
use crate::cluster::{parse_label, NodeCommandError, Removal, RemoveError};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use warren_proto::Mode;

/// A node as `warren nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its name.
    pub name: String,
    /// Its mesh address.
    pub mesh_ip: String,
    /// `direct`, `relay`, or `control` (the control plane's host, when it
    /// runs replicas).
    pub mode: Mode,
    /// The private address a direct node gave.
    pub private_address: Option<String>,
    /// Whether its agent is connected now.
    pub online: bool,
    /// Where its agent connects from (its public address, behind NAT), while online.
    pub endpoint: Option<String>,
    /// When it joined, unix seconds.
    pub joined: u64,
    /// What its agent reported of its machine, once it has (nodes without
    /// a Docker daemon never do).
    #[serde(default)]
    pub machine: Option<Machine>,
    /// Labels the operator set (`warren node label`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// How many replicas are placed on it.
    #[serde(default)]
    pub replicas: u32,
    /// Whether it is leaving (`warren node rm`): its replicas are moving.
    #[serde(default)]
    pub leaving: bool,
    /// Whether it is drained (`warren node drain`): its replicas move off
    /// and nothing new is placed there.
    #[serde(default)]
    pub drained: bool,
}

/// A node's machine as its agent reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The architecture as images name it (`amd64`, `arm64`).
    pub arch: String,
    /// CPU offered to replicas, millicores.
    pub cpu_millis: u64,
    /// Memory offered to replicas, bytes.
    pub memory: u64,
    /// Free disk on the Docker daemon's data root, bytes.
    pub disk_free: Option<u64>,
    /// The Docker Engine version.
    pub docker: String,
}

/// `GET /v1/nodes`.
pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let nodes: Vec<NodeInfo> = with(&state, |cluster| cluster.listing())
        .await?
        .into_iter()
        .map(|listed| NodeInfo {
            name: listed.node.name,
            mesh_ip: listed.node.mesh_ip.to_string(),
            mode: listed.node.mode,
            private_address: listed.node.private_address.map(|a| a.to_string()),
            online: listed.online,
            endpoint: listed.connected_from.map(|from| from.to_string()),
            joined: listed.node.joined,
            machine: listed.report.map(|report| Machine {
                arch: report.arch,
                cpu_millis: report.cpu_millis,
                memory: report.memory,
                disk_free: report.disk_free,
                docker: report.docker,
            }),
            labels: listed.settings.labels,
            replicas: listed.replicas,
            leaving: listed.settings.leaving,
            drained: listed.settings.drained,
        })
        .collect();
    Ok(Json(json!({ "nodes": nodes })))
}

/// The query of `DELETE /v1/nodes/{name}` and `POST
/// /v1/nodes/{name}/drain`: remove (or stop its replicas) now.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

/// `DELETE /v1/nodes/{name}`.
pub(super) async fn remove(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let removing = name.clone();
    let now = warren_os::unix_now();
    let removal = with(&state, move |cluster| {
        cluster.remove_node(&removing, query.force, now)
    })
    .await?;
    match removal {
        Ok(Removal::Removed) => Ok(Json(
            json!({ "name": name, "removed": true, "leaving": false, "replicas": 0 }),
        )),
        Ok(Removal::Leaving { replicas }) => Ok(Json(
            json!({ "name": name, "removed": false, "leaving": true, "replicas": replicas }),
        )),
        Err(error @ RemoveError::Unknown(_)) => {
            Err(ApiError(StatusCode::NOT_FOUND, error.to_string()))
        }
        Err(error @ RemoveError::ControlPlane) => {
            Err(ApiError(StatusCode::CONFLICT, error.to_string()))
        }
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// The body of `POST /v1/nodes/{name}/labels`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Labels {
    #[serde(default)]
    set: Vec<String>,
    #[serde(default)]
    unset: Vec<String>,
}

/// `POST /v1/nodes/{name}/labels`.
pub(super) async fn label(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<Labels>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let bad = |error: NodeCommandError| ApiError(StatusCode::BAD_REQUEST, error.to_string());
    let set = body
        .set
        .iter()
        .map(|text| parse_label(text))
        .collect::<Result<BTreeMap<_, _>, _>>()
        .map_err(bad)?;
    let labelling = name.clone();
    let now = warren_os::unix_now();
    let labelled = with(&state, move |cluster| {
        cluster.label_node(&labelling, set, &body.unset, now)
    })
    .await?;
    match labelled {
        Ok(labels) => Ok(Json(json!({ "name": name, "labels": labels }))),
        Err(error @ NodeCommandError::Unknown(_)) => {
            Err(ApiError(StatusCode::NOT_FOUND, error.to_string()))
        }
        Err(error @ (NodeCommandError::Label(_) | NodeCommandError::Builtin(_))) => Err(bad(error)),
        Err(error @ NodeCommandError::ControlPlane) => {
            Err(ApiError(StatusCode::CONFLICT, error.to_string()))
        }
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// `POST /v1/nodes/{name}/drain`: with `force`, the replicas left on the
/// node are stopped at once too (`stopped` says how many).
pub(super) async fn drain(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    set_drained(state, headers, name, true, query.force).await
}

/// `POST /v1/nodes/{name}/activate`.
pub(super) async fn activate(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    set_drained(state, headers, name, false, false).await
}

async fn set_drained(
    state: Arc<ApiState>,
    headers: HeaderMap,
    name: String,
    drained: bool,
    force: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let node = name.clone();
    let now = warren_os::unix_now();
    let answer = with(&state, move |cluster| {
        let replicas = cluster.drain_node(&node, drained, now)?;
        let stopped = match force {
            true => cluster.stop_replicas_on(&node, now)?,
            false => 0,
        };
        Ok::<_, NodeCommandError>((replicas, stopped))
    })
    .await?;
    match answer {
        Ok((replicas, stopped)) => Ok(Json(
            json!({ "name": name, "drained": drained, "replicas": replicas, "stopped": stopped }),
        )),
        Err(error @ NodeCommandError::Unknown(_)) => {
            Err(ApiError(StatusCode::NOT_FOUND, error.to_string()))
        }
        Err(error @ NodeCommandError::ControlPlaneDrain) => {
            Err(ApiError(StatusCode::CONFLICT, error.to_string()))
        }
        Err(error) => Err(ApiError::internal(error)),
    }
}
