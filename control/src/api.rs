//! The admin HTTP API that `warren token …` (and later `nodes`, `mesh`,
//! `deploy`) talks to. JSON in and out, under `/v1`; every request carries
//! the admin credential as `Authorization: Bearer …`. Errors are
//! `{"error": "…"}` with a fitting status, and change nothing.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/v1/tokens` | `{"ttl_secs"?: n, "uses"?: n}` | 201 `{"id","token","expires","uses"}` |
//! | GET | `/v1/tokens` | | 200 `{"tokens":[{"id","created","expires","uses","used","state"}]}` |
//! | DELETE | `/v1/tokens/{id}` | | 200 `{"id","revoked":true}`, 404 |
//! | GET | `/v1/nodes` | | 200 `{"nodes":[{"name","mesh_ip","mode","private_address","online","endpoint","joined"}]}` |
//! | DELETE | `/v1/nodes/{name}` | | 200 `{"name","removed":true}`, 404 |
//! | GET | `/v1/mesh` | | 200 [`crate::mesh_view::MeshView`] (`docs/mesh.md`) |

use crate::agent_endpoint::{Admissions, RemoveError};
use crate::store::Store;
use crate::tokens::{TokenRecord, DEFAULT_TTL, DEFAULT_USES};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use warren_wire::JoinToken;

/// What the handlers share.
pub struct ApiState {
    /// The state store.
    pub store: Arc<Mutex<Store>>,
    /// The nodes and their connections.
    pub cluster: Arc<Admissions>,
    /// The credential every request must carry.
    pub admin_token: String,
    /// What tokens pin: the QUIC certificate's SHA-256.
    pub cert_sha256: [u8; 32],
    /// Where tokens send agents: the QUIC endpoint's reachable addresses.
    pub control_addrs: Vec<SocketAddr>,
}

/// The API's routes over `state`.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{name}", delete(remove_node))
        .route("/v1/mesh", get(mesh))
        .fallback(not_found)
        .with_state(state)
}

/// A token as `warren token list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Its id (16 hex digits).
    pub id: String,
    /// When it was issued, unix seconds.
    pub created: u64,
    /// When it expires, unix seconds.
    pub expires: u64,
    /// How many joins it admits.
    pub uses: u32,
    /// How many it has admitted.
    pub used: u32,
    /// `active`, `expired`, `used` or `revoked`.
    pub state: String,
}

/// A node as `warren nodes` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Its name.
    pub name: String,
    /// Its mesh address.
    pub mesh_ip: String,
    /// `direct` or `relay`.
    pub mode: String,
    /// The private address a direct node gave.
    pub private_address: Option<String>,
    /// Whether its agent is connected now.
    pub online: bool,
    /// Where its agent connects from (its public address, behind NAT), while online.
    pub endpoint: Option<String>,
    /// When it joined, unix seconds.
    pub joined: u64,
}

/// The answer to `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    /// Its id.
    pub id: String,
    /// The token to hand to `warren join --token`.
    pub token: String,
    /// When it expires, unix seconds.
    pub expires: u64,
    /// How many joins it admits.
    pub uses: u32,
}

/// The body of `POST /v1/tokens`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    ttl_secs: Option<u64>,
    uses: Option<u32>,
}

/// An error answer.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl ApiError {
    fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "admin API");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Refuses requests without the admin credential.
fn authorize(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    // Compared as digests: the timing says nothing about the credential.
    let digest = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    match presented {
        Some(token) if digest(token).as_ref() == digest(&state.admin_token).as_ref() => Ok(()),
        _ => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin credential (the CLI reads it from --data-dir or WARREN_DATA_DIR)"
                .to_owned(),
        )),
    }
}

fn lock(state: &ApiState) -> Result<std::sync::MutexGuard<'_, Store>, ApiError> {
    state
        .store
        .lock()
        .map_err(|_| ApiError::internal("the state store is unusable after a panic"))
}

async fn create_token(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Option<Json<CreateToken>>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    authorize(&state, &headers)?;
    let Json(request) = body.unwrap_or_default();
    let ttl = request.ttl_secs.map_or(DEFAULT_TTL, Duration::from_secs);
    let uses = request.uses.unwrap_or(DEFAULT_USES);
    let mut random = [0u8; 40];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| ApiError::internal("the OS gave no random bytes"))?;
    let (record, secret) = TokenRecord::issue(now_unix(), ttl, uses, random)
        .map_err(|error| ApiError(StatusCode::BAD_REQUEST, error.to_string()))?;
    lock(&state)?
        .insert_token(&record)
        .map_err(ApiError::internal)?;
    let token = JoinToken {
        id: record.id,
        secret,
        cert_sha256: state.cert_sha256,
        control: state.control_addrs.clone(),
    };
    tracing::info!(id = %record.id_hex(), uses, expires = record.expires, "join token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            id: record.id_hex(),
            token: token.to_string(),
            expires: record.expires,
            uses,
        }),
    ))
}

async fn list_tokens(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let now = now_unix();
    let tokens: Vec<TokenInfo> = lock(&state)?
        .tokens()
        .map_err(ApiError::internal)?
        .iter()
        .map(|record| TokenInfo {
            id: record.id_hex(),
            created: record.created,
            expires: record.expires,
            uses: record.uses,
            used: record.used,
            state: record.state(now).as_str().to_owned(),
        })
        .collect();
    Ok(Json(json!({ "tokens": tokens })))
}

async fn revoke_token(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let unknown = || ApiError(StatusCode::NOT_FOUND, format!("no token has the id {id}"));
    let raw = crate::tokens::parse_id(&id).ok_or_else(unknown)?;
    if !lock(&state)?
        .revoke_token(&raw)
        .map_err(ApiError::internal)?
    {
        return Err(unknown());
    }
    tracing::info!(%id, "join token revoked");
    Ok(Json(json!({ "id": id, "revoked": true })))
}

async fn list_nodes(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    let poisoned = || ApiError::internal("the node registry is unusable after a panic");
    let online = state.cluster.online.lock().map_err(|_| poisoned())?.clone();
    let registry = state.cluster.registry.lock().map_err(|_| poisoned())?;
    let nodes: Vec<NodeInfo> = registry
        .nodes()
        .map(|node| NodeInfo {
            name: node.name.clone(),
            mesh_ip: node.mesh_ip.to_string(),
            mode: node.mode.as_str().to_owned(),
            private_address: node.private_address.map(|a| a.to_string()),
            online: online.contains_key(&node.name),
            endpoint: online.get(&node.name).map(ToString::to_string),
            joined: node.joined,
        })
        .collect();
    Ok(Json(json!({ "nodes": nodes })))
}

async fn remove_node(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    match state.cluster.remove(&name) {
        Ok(_) => Ok(Json(json!({ "name": name, "removed": true }))),
        Err(error @ RemoveError::Unknown(_)) => {
            Err(ApiError(StatusCode::NOT_FOUND, error.to_string()))
        }
        Err(error) => Err(ApiError::internal(error)),
    }
}

async fn mesh(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<crate::mesh_view::MeshView>, ApiError> {
    authorize(&state, &headers)?;
    let poisoned = || ApiError::internal("the cluster state is unusable after a panic");
    let cluster = &state.cluster;
    let online = cluster.online.lock().map_err(|_| poisoned())?.clone();
    let reports = cluster.reports.lock().map_err(|_| poisoned())?.clone();
    let registry = cluster.registry.lock().map_err(|_| poisoned())?;
    let control = crate::mesh_view::ControlMember {
        public_key: cluster.control.public_key,
        mesh_ip: cluster.control.mesh_ip,
        endpoint: state.control_addrs.first().copied(),
    };
    Ok(Json(crate::mesh_view::view(
        &control,
        &cluster.relays,
        registry.nodes(),
        &online,
        &reports,
        SystemTime::now(),
    )))
}

async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such API endpoint".to_owned())
}
