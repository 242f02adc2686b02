//! `warren routes`, `warren proxy stats` and the proxy's `/metrics`.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/v1/routes` | 200 `{"proxy": bool, "routes":[RouteInfo]}` |
//! | GET | `/v1/proxy/stats` | 200 [`ProxyStats`], 409 without a proxy |
//! | GET | `/metrics` | 200 Prometheus text (no credential: it names services, not secrets) |

use super::{authorize, with, ApiError, ApiState};
use crate::mesh_view::MeshView;
use crate::nodes::CONTROL_NAME;
use crate::proxy::{ProxyStats, RouteTable};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::SystemTime;
use warren_proto::{Mode, PathKind};

/// Every route, as `warren routes` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutesInfo {
    /// Whether the control plane runs the proxy (not with `--no-proxy`).
    pub proxy: bool,
    /// The routes, by service.
    pub routes: Vec<RouteInfo>,
}

/// One service's route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteInfo {
    /// The service.
    pub service: String,
    /// Its hosts.
    pub hosts: Vec<String>,
    /// Its path prefix.
    pub path: String,
    /// Whether the prefix is taken off.
    pub strip_prefix: bool,
    /// Whether clients stick to a replica.
    pub sticky: bool,
    /// Whether the replicas are spoken to in HTTP/2 (h2c).
    pub upstream_h2: bool,
    /// The healthy replicas the proxy sends to.
    pub upstreams: Vec<UpstreamInfo>,
}

/// One replica the proxy sends to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamInfo {
    /// The replica.
    pub replica: String,
    /// Its node.
    pub node: String,
    /// `mesh-ip:host-port`.
    pub address: String,
    /// How its node joined.
    pub mode: Mode,
    /// How the control plane reaches its node now (`local` on its own host).
    pub path: String,
    /// The last round trip to its node through the mesh, milliseconds.
    pub rtt_ms: Option<f64>,
}

/// The routes with the control plane's path to each replica's node.
fn info(table: &RouteTable, mesh: &MeshView, proxy: bool) -> RoutesInfo {
    let path_to = |node: &str| {
        if node == CONTROL_NAME {
            return ("local".to_owned(), None);
        }
        mesh.paths
            .iter()
            .find(|p| p.from == CONTROL_NAME && p.to == node)
            .map_or((PathKind::None.as_str().to_owned(), None), |p| {
                (p.kind.as_str().to_owned(), p.rtt_ms)
            })
    };
    RoutesInfo {
        proxy,
        routes: table
            .routes()
            .iter()
            .map(|route| RouteInfo {
                service: route.service.clone(),
                hosts: route.hosts.clone(),
                path: route.path.clone(),
                strip_prefix: route.strip_prefix,
                sticky: route.sticky,
                upstream_h2: route.h2,
                upstreams: route
                    .upstreams
                    .iter()
                    .map(|u| {
                        let (path, rtt_ms) = path_to(&u.node);
                        UpstreamInfo {
                            replica: u.replica.clone(),
                            node: u.node.clone(),
                            address: u.addr.to_string(),
                            mode: u.mode,
                            path,
                            rtt_ms,
                        }
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// `GET /v1/routes`.
pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<RoutesInfo>, ApiError> {
    authorize(&state, &headers)?;
    let now = SystemTime::now();
    let proxy = state.proxy.is_some();
    Ok(Json(
        with(&state, move |cluster| {
            info(&cluster.routes(), &cluster.mesh_view(now), proxy)
        })
        .await?,
    ))
}

/// `GET /v1/proxy/stats`.
pub(super) async fn stats(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<ProxyStats>, ApiError> {
    authorize(&state, &headers)?;
    match &state.proxy {
        Some(proxy) => Ok(Json(proxy.stats())),
        None => Err(ApiError(
            axum::http::StatusCode::CONFLICT,
            "the control plane runs no proxy (warren serve --no-proxy)".to_owned(),
        )),
    }
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let text = state
        .proxy
        .as_ref()
        .map(|proxy| proxy.render_metrics())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
