//! `warren events`: the cluster's last events, and a long poll for the next.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/v1/events?after=ID&limit=N&wait=SECS` | 200 `{"events":[Event],"last":ID}` (`crate::events::Event`), 400 |
//!
//! Without `after`, the last `limit` events (100 by default, at most
//! 10,000); with it, up to `limit` events after that id, oldest first. With
//! `wait` (at most 60 s) and nothing after `after` yet, the answer waits
//! until something happens or the time is up (then no events). `last` is
//! the id of the latest event stored when the answer was made: a follower
//! that showed none asks for what comes after it.

use super::{authorize, with, ApiError, ApiState};
use crate::events::{Event, KEPT};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// How many events an answer holds when the request does not say.
const DEFAULT_LIMIT: u32 = 100;

/// The longest a request may wait for the next event.
const MAX_WAIT_SECS: u64 = 60;

/// The query of `GET /v1/events`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    after: Option<u64>,
    limit: Option<u32>,
    #[serde(default)]
    wait: u64,
}

/// `GET /v1/events`.
pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    authorize(&state, &headers)?;
    if query.wait > MAX_WAIT_SECS {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("wait is at most {MAX_WAIT_SECS} seconds"),
        ));
    }
    let limit = query
        .limit
        .unwrap_or(DEFAULT_LIMIT)
        .min(u32::try_from(KEPT).unwrap_or(u32::MAX));
    let after = query.after;
    // Subscribed before reading, so an event stored in between is not
    // missed.
    let (mut next, events, last) = with(&state, move |cluster| {
        (
            cluster.subscribe_events(),
            cluster.events(after, limit),
            cluster.last_event_id(),
        )
    })
    .await?;
    let (events, last) = (
        events.map_err(ApiError::internal)?,
        last.map_err(ApiError::internal)?,
    );
    if !events.is_empty() || query.wait == 0 || after.is_none() {
        return Ok(Json(json!({ "events": events, "last": last })));
    }
    let waited = tokio::time::timeout(Duration::from_secs(query.wait), async {
        loop {
            match next.recv().await {
                Ok(event) => return Some(event),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await;
    let events: Vec<Event> = match waited {
        Ok(Some(_)) => with(&state, move |cluster| cluster.events(after, limit))
            .await?
            .map_err(ApiError::internal)?,
        _ => Vec::new(),
    };
    let last = events.last().map_or(last, |e| e.id);
    Ok(Json(json!({ "events": events, "last": last })))
}
