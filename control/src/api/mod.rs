//! The admin HTTP API that `warren token`, `nodes`, `node rm` and `mesh`
//! talk to. JSON in and out, under `/v1`; every request carries
//! the admin credential as `Authorization: Bearer …`. Errors are
//! `{"error": "…"}` with a fitting status, and change nothing.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | POST | `/v1/tokens` | `{"ttl_secs"?: n, "uses"?: n}` | 201 `{"id","token","expires","uses"}` |
//! | GET | `/v1/tokens` | | 200 `{"tokens":[{"id","created","expires","uses","used","state"}]}` |
//! | DELETE | `/v1/tokens/{id}` | | 200 `{"id","revoked":true}`, 404 |
//! | GET | `/v1/mesh` | | 200 [`crate::mesh_view::MeshView`] (`docs/mesh.md`) |
//!
//! The node endpoints are in [`nodes`], the cluster's events in [`events`],
//! the workload endpoints in
//! [`workloads`], the proxy's in [`routes`] and [`certs`]; `warren logs` and `warren exec`, which stream, in
//! [`streams`].

pub mod certs;
pub mod events;
pub mod nodes;
pub mod routes;
pub mod streams;
pub mod workloads;

pub use nodes::NodeInfo;

use crate::agent_links::AgentLinks;
use crate::cluster::{Cluster, ClusterState};
use crate::tokens::{TokenRecord, DEFAULT_TTL, DEFAULT_USES};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use warren_proto::TokenId;
use warren_wire::JoinToken;

/// What the handlers share.
pub struct ApiState {
    /// The cluster's state.
    pub cluster: Cluster,
    /// The agents' live connections, for replica streams.
    pub links: AgentLinks,
    /// The credential every request must carry.
    pub admin_token: String,
    /// What tokens pin: the QUIC certificate's SHA-256.
    pub cert_sha256: [u8; 32],
    /// Where tokens send agents: the QUIC endpoint's reachable addresses.
    pub control_addrs: Vec<SocketAddr>,
    /// The ingress proxy, unless `--no-proxy`.
    pub proxy: Option<Arc<crate::proxy::Proxy>>,
    /// The ACME task, when the control plane has an ACME directory.
    pub acme: Option<crate::acme::AcmeHandle>,
}

/// The API's routes over `state`.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/tokens", get(list_tokens).post(create_token))
        .route("/v1/tokens/{id}", delete(revoke_token))
        .route("/v1/events", get(events::list))
        .route("/v1/nodes", get(nodes::list))
        .route("/v1/nodes/{name}", delete(nodes::remove))
        .route("/v1/nodes/{name}/labels", post(nodes::label))
        .route("/v1/nodes/{name}/drain", post(nodes::drain))
        .route("/v1/nodes/{name}/activate", post(nodes::activate))
        .route("/v1/mesh", get(mesh))
        .route(
            "/v1/services",
            get(workloads::services).post(workloads::deploy),
        )
        .route("/v1/services/{name}", delete(workloads::remove))
        .route("/v1/services/{name}/replicas", put(workloads::scale))
        .route("/v1/services/{name}/history", get(workloads::history))
        .route("/v1/services/{name}/rollback", post(workloads::rollback))
        .route("/v1/services/{name}/logs", get(streams::logs))
        .route("/v1/services/{name}/exec", post(streams::exec))
        .route("/v1/replicas", get(workloads::replicas))
        .route("/v1/routes", get(routes::list))
        .route("/v1/proxy/stats", get(routes::stats))
        .route("/v1/certs", get(certs::list))
        .route("/v1/certs/{host}", put(certs::set))
        .route("/v1/certs/{host}/renew", post(certs::renew))
        .route("/metrics", get(routes::metrics))
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
#[derive(Debug)]
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

/// Runs `job` on the cluster's state.
async fn with<R: Send + 'static>(
    state: &ApiState,
    job: impl FnOnce(&mut ClusterState) -> R + Send + 'static,
) -> Result<R, ApiError> {
    state.cluster.with(job).await.map_err(ApiError::internal)
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
    let random = warren_os::random::<40>().map_err(ApiError::internal)?;
    let (record, secret) = TokenRecord::issue(warren_os::unix_now(), ttl, uses, random)
        .map_err(|error| ApiError(StatusCode::BAD_REQUEST, error.to_string()))?;
    let stored = record.clone();
    with(&state, move |cluster| cluster.store().insert_token(&stored))
        .await?
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
    let now = warren_os::unix_now();
    let tokens: Vec<TokenInfo> = with(&state, |cluster| cluster.store().tokens())
        .await?
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
    let raw = id.parse::<TokenId>().map_err(|_| unknown())?.0;
    if !with(&state, move |cluster| cluster.store().revoke_token(&raw))
        .await?
        .map_err(ApiError::internal)?
    {
        return Err(unknown());
    }
    tracing::info!(%id, "join token revoked");
    Ok(Json(json!({ "id": id, "revoked": true })))
}

async fn mesh(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<crate::mesh_view::MeshView>, ApiError> {
    authorize(&state, &headers)?;
    let now = SystemTime::now();
    Ok(Json(
        with(&state, move |cluster| cluster.mesh_view(now)).await?,
    ))
}

async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such API endpoint".to_owned())
}
