//! `warren cert`: the proxy's certificates.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | PUT | `/v1/certs/{host}` | `{"cert_pem","key_pem"}` | 200 [`CertView`], 400 with the reason |
//! | GET | `/v1/certs` | | 200 `{"certs":[CertView]}` |
//! | POST | `/v1/certs/{host}/renew` | | 200 [`CertView`] once issued by ACME, 400/409/502 with the reason |

use super::{authorize, with, ApiError, ApiState};
use crate::acme::RenewError;
use crate::cluster::{CertCommandError, CertView};
use crate::store::CertSource;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The body of `PUT /v1/certs/{host}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetCert {
    /// The chain, leaf first, PEM.
    pub cert_pem: String,
    /// The private key, PEM.
    pub key_pem: String,
}

/// The answer of `GET /v1/certs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertList {
    /// Every certificate served, by host.
    pub certs: Vec<CertView>,
}

pub(super) async fn set(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(host): Path<String>,
    Json(body): Json<SetCert>,
) -> Result<Json<CertView>, ApiError> {
    authorize(&state, &headers)?;
    let now = warren_os::unix_now();
    let result = with(&state, move |cluster| {
        cluster.set_certificate(
            &host,
            &body.cert_pem,
            &body.key_pem,
            CertSource::Manual,
            now,
        )
    })
    .await?;
    match result {
        Ok(view) => Ok(Json(view)),
        Err(error @ CertCommandError::Store(_)) => Err(ApiError::internal(error)),
        Err(error) => Err(ApiError(StatusCode::BAD_REQUEST, error.to_string())),
    }
}

pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Json<CertList>, ApiError> {
    authorize(&state, &headers)?;
    let certs = with(&state, |cluster| cluster.certificates()).await?;
    Ok(Json(CertList { certs }))
}

pub(super) async fn renew(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(host): Path<String>,
) -> Result<Json<CertView>, ApiError> {
    authorize(&state, &headers)?;
    let acme = state
        .acme
        .as_ref()
        .ok_or_else(|| ApiError(StatusCode::CONFLICT, RenewError::NoAcme.to_string()))?;
    match acme.renew(host.to_ascii_lowercase()).await {
        Ok(view) => Ok(Json(view)),
        Err(error) => {
            let status = match error {
                RenewError::NotWanted(_) => StatusCode::NOT_FOUND,
                RenewError::Manual(_) | RenewError::NoAcme => StatusCode::CONFLICT,
                RenewError::Failed(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            Err(ApiError(status, error.to_string()))
        }
    }
}
