//! `warren logs` and `warren exec`: a replica's output and commands, from
//! its node's Docker daemon through the agent's connection
//! ([`crate::agent_links`]), streamed to the CLI as newline-delimited JSON
//! [`StreamRecord`]s.
//!
//! | method | path | body | answer |
//! |---|---|---|---|
//! | GET | `/v1/services/{name}/logs?replica=&follow=&tail=&since=&previous=` | | 200 NDJSON records as they come; 404 |
//! | POST | `/v1/services/{name}/exec` | [`ExecRequest`] | 200 NDJSON: `line`s, then `exit` (or `error`); 400; 404; 409 nothing runs; 503 its node is down |
//!
//! Logs of several replicas interleave as their lines arrive, each record
//! naming its replica. A replica whose node is not connected is one `down`
//! record and the others still stream (`docker service logs` fails whole
//! instead); one the agent cannot serve is one `error` record. `since` is
//! in seconds before now; `replica` is an id (`web-2`) or its number (`2`).

use super::{authorize, with, ApiError, ApiState};
use crate::agent_links::{AgentLink, AgentLinks};
use crate::cluster::ReplicaView;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::mpsc;
use warren_proto::assignment::{ReplicaId, ReplicaState};
use warren_proto::{OutputStream, StreamError, StreamFrame, StreamRequest};

/// Records buffered for a slow reader before the replicas' streams wait.
const BACKLOG: usize = 256;

/// One line of a logs or exec answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamRecord {
    /// A line of the replica's output.
    Line {
        /// The replica.
        replica: ReplicaId,
        /// stdout or stderr.
        stream: OutputStream,
        /// The text, without its newline.
        text: String,
    },
    /// The exec's command exited.
    Exit {
        /// The replica it ran in.
        replica: ReplicaId,
        /// Its exit code.
        code: i64,
    },
    /// The replica's node is not connected: nothing from it.
    Down {
        /// The replica.
        replica: ReplicaId,
        /// Its node.
        node: String,
    },
    /// The replica's node could not serve the request, or the stream broke.
    Error {
        /// The replica.
        replica: ReplicaId,
        /// Why, in one line.
        reason: String,
    },
}

/// The query of `GET /v1/services/{name}/logs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Only this replica (`web-2` or `2`).
    pub replica: Option<String>,
    /// Keep streaming until the containers stop (or the client goes).
    #[serde(default)]
    pub follow: bool,
    /// Only the last this many lines of each replica's output.
    pub tail: Option<u64>,
    /// Only output of the last this many seconds.
    pub since: Option<u64>,
    /// Each replica's last exited container instead of its current one.
    #[serde(default)]
    pub previous: bool,
}

/// The body of `POST /v1/services/{name}/exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The replica to run in (`web-2` or `2`); default: the first running
    /// one on a connected node.
    #[serde(default)]
    pub replica: Option<String>,
    /// The program and its arguments.
    pub command: Vec<String>,
}

/// A replica a request is for, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    replica: ReplicaId,
    node: String,
    running: bool,
}

pub(super) async fn logs(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let Query(query) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let targets = resolve(&state, &name, query.replica.as_deref()).await?;
    let (records, answer) = mpsc::channel(BACKLOG);
    for target in targets {
        let request = StreamRequest::Logs {
            replica: target.replica.clone(),
            follow: query.follow,
            tail: query.tail,
            since_secs: query.since,
            previous: query.previous,
        };
        let records = records.clone();
        match state.links.get(&target.node) {
            Some(link) => {
                tokio::spawn(relay(link, target, request, records));
            }
            None => {
                let down = StreamRecord::Down {
                    replica: target.replica,
                    node: target.node,
                };
                let _ = records.try_send(encode(&down));
            }
        }
    }
    Ok(ndjson(answer))
}

pub(super) async fn exec(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(body): Json<ExecRequest>,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    if body.command.first().is_none_or(String::is_empty) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "exec needs a command (after --)".to_owned(),
        ));
    }
    let targets = resolve(&state, &name, body.replica.as_deref()).await?;
    let (target, link) = exec_target(&name, targets, &state.links, body.replica.is_some())?;
    let request = StreamRequest::Exec {
        replica: target.replica.clone(),
        command: body.command,
    };
    let (records, answer) = mpsc::channel(BACKLOG);
    tokio::spawn(relay(link, target, request, records));
    Ok(ndjson(answer))
}

/// The replicas of `service` a request names (`wanted`, or all of them).
async fn resolve(
    state: &ApiState,
    service: &str,
    wanted: Option<&str>,
) -> Result<Vec<Target>, ApiError> {
    let name = service.to_owned();
    let (known, replicas) = with(state, move |cluster| {
        let known = cluster.services_view().iter().any(|s| s.name == name);
        (known, cluster.replicas_view())
    })
    .await?;
    if !known {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no service is called {service:?} (see `warren services`)"),
        ));
    }
    targets(service, &replicas, wanted)
}

/// Of `replicas`, those of `service` that `wanted` names (an id or its
/// number), or all of them.
fn targets(
    service: &str,
    replicas: &[ReplicaView],
    wanted: Option<&str>,
) -> Result<Vec<Target>, ApiError> {
    let numbered = wanted.map(|w| format!("{service}-{w}"));
    let chosen: Vec<Target> = replicas
        .iter()
        .filter(|r| r.service == service)
        .filter(|r| match wanted {
            Some(wanted) => r.id.0 == wanted || Some(&r.id.0) == numbered.as_ref(),
            None => true,
        })
        .map(|r| Target {
            replica: r.id.clone(),
            node: r.node.clone(),
            running: r.state == ReplicaState::Running,
        })
        .collect();
    match wanted {
        Some(wanted) if chosen.is_empty() => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("{service} has no replica {wanted:?} (see `warren ps {service}`)"),
        )),
        _ => Ok(chosen),
    }
}

/// Where an exec runs: the named replica, or the first running one whose
/// node is connected.
fn exec_target(
    service: &str,
    targets: Vec<Target>,
    links: &AgentLinks,
    named: bool,
) -> Result<(Target, AgentLink), ApiError> {
    let down = |target: &Target| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{}: node {} is down (its agent is not connected)",
                target.replica, target.node
            ),
        )
    };
    if named {
        let target = targets.into_iter().next().ok_or_else(|| {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("{service} has no such replica"),
            )
        })?;
        return match links.get(&target.node) {
            Some(link) => Ok((target, link)),
            None => Err(down(&target)),
        };
    }
    let running: Vec<Target> = targets.into_iter().filter(|t| t.running).collect();
    let Some(first) = running.first().cloned() else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("{service} has no running replica (see `warren ps {service}`)"),
        ));
    };
    running
        .into_iter()
        .find_map(|target| links.get(&target.node).map(|link| (target, link)))
        .ok_or_else(|| down(&first))
}

/// Opens `request`'s stream on `link` and passes what comes back to
/// `records` until the answer ends or nobody reads it any more.
async fn relay(
    link: AgentLink,
    target: Target,
    request: StreamRequest,
    records: mpsc::Sender<Bytes>,
) {
    let replica = target.replica.clone();
    let failed = |reason: String| StreamRecord::Error {
        replica: replica.clone(),
        reason,
    };
    let mut stream = match link.open(&target.node, &request).await {
        Ok(stream) => stream,
        Err(error) => {
            let _ = records.send(encode(&failed(error.to_string()))).await;
            return;
        }
    };
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            () = records.closed() => return,
        };
        let (record, last) = match frame {
            Ok(Some(frame)) => record_of(&replica, frame),
            Ok(None) => (Some(failed(cut_short(&target.node, None))), true),
            Err(error) => (Some(failed(cut_short(&target.node, Some(error)))), true),
        };
        if let Some(record) = record {
            if records.send(encode(&record)).await.is_err() {
                return;
            }
        }
        if last {
            return;
        }
    }
}

/// What one frame about `replica` becomes: the record to pass on, if any,
/// and whether the answer is complete.
fn record_of(replica: &ReplicaId, frame: StreamFrame) -> (Option<StreamRecord>, bool) {
    let replica = replica.clone();
    match frame {
        StreamFrame::Line { stream, text } => (
            Some(StreamRecord::Line {
                replica,
                stream,
                text,
            }),
            false,
        ),
        StreamFrame::End => (None, true),
        StreamFrame::Exit { code } => (Some(StreamRecord::Exit { replica, code }), true),
        StreamFrame::Error { reason, .. } => (Some(StreamRecord::Error { replica, reason }), true),
        // A newer agent's addition.
        _ => (None, false),
    }
}

/// Why a stream from `node` ended before its answer did.
fn cut_short(node: &str, error: Option<StreamError>) -> String {
    match error {
        Some(error) => format!("the stream from node {node} broke: {error}"),
        None => format!("node {node} ended the stream early"),
    }
}

fn encode(record: &StreamRecord) -> Bytes {
    let mut line = serde_json::to_vec(record).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// A 200 whose body is the records as they arrive.
fn ndjson(records: mpsc::Receiver<Bytes>) -> Response {
    let body = futures::stream::unfold(records, |mut records| async move {
        let record = records.recv().await?;
        Some((Ok::<_, Infallible>(record), records))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::assignment::Health;
    use warren_proto::StreamErrorCode;

    fn view(id: &str, node: &str, state: ReplicaState) -> ReplicaView {
        ReplicaView {
            id: ReplicaId(id.to_owned()),
            service: id.rsplit_once('-').map_or(id, |(s, _)| s).to_owned(),
            generation: 1,
            node: node.to_owned(),
            mode: None,
            addresses: Vec::new(),
            state,
            draining: false,
            health: Health::Starting,
            restarts: 0,
            cpu_millis: None,
            memory: None,
            placed: 0,
        }
    }

    fn ids(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|t| t.replica.0.as_str()).collect()
    }

    #[test]
    fn targets_are_all_replicas_or_the_one_named_by_id_or_number() {
        let replicas = [
            view("web-1", "vm", ReplicaState::Running),
            view("web-2", "pi", ReplicaState::Pending),
            view("db-1", "vm", ReplicaState::Running),
        ];
        let all = targets("web", &replicas, None).unwrap();
        assert_eq!(ids(&all), ["web-1", "web-2"]);
        assert!(all[0].running && !all[1].running);
        assert_eq!(
            ids(&targets("web", &replicas, Some("web-2")).unwrap()),
            ["web-2"]
        );
        assert_eq!(
            ids(&targets("web", &replicas, Some("2")).unwrap()),
            ["web-2"]
        );
        for wrong in ["db-1", "3", "web-", ""] {
            let ApiError(status, line) = targets("web", &replicas, Some(wrong)).unwrap_err();
            assert_eq!(status, StatusCode::NOT_FOUND, "{wrong}");
            assert!(line.contains("has no replica"), "{line}");
        }
        assert!(targets("web", &[], None).unwrap().is_empty());
    }

    #[test]
    fn exec_needs_a_running_replica_on_a_connected_node() {
        let links = AgentLinks::new();
        let pending = targets("web", &[view("web-1", "vm", ReplicaState::Pending)], None).unwrap();
        let Err(ApiError(status, _)) = exec_target("web", pending, &links, false) else {
            panic!("an exec target without a running replica");
        };
        assert_eq!(status, StatusCode::CONFLICT);
        let running = targets("web", &[view("web-1", "vm", ReplicaState::Running)], None).unwrap();
        let Err(ApiError(status, line)) = exec_target("web", running.clone(), &links, false) else {
            panic!("an exec target on a node that is down");
        };
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(line.contains("node vm is down"), "{line}");
        let Err(ApiError(status, _)) = exec_target("web", running, &links, true) else {
            panic!("an exec target on a node that is down");
        };
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn frames_become_records_and_the_last_ones_end_the_answer() {
        let web1 = ReplicaId("web-1".to_owned());
        let line = StreamFrame::Line {
            stream: OutputStream::Stderr,
            text: "oops".to_owned(),
        };
        assert_eq!(
            record_of(&web1, line),
            (
                Some(StreamRecord::Line {
                    replica: web1.clone(),
                    stream: OutputStream::Stderr,
                    text: "oops".to_owned()
                }),
                false
            )
        );
        assert_eq!(record_of(&web1, StreamFrame::End), (None, true));
        assert_eq!(
            record_of(&web1, StreamFrame::Exit { code: 3 }),
            (
                Some(StreamRecord::Exit {
                    replica: web1.clone(),
                    code: 3
                }),
                true
            )
        );
        let error = StreamFrame::error(StreamErrorCode::NoPrevious, "none");
        assert!(matches!(
            record_of(&web1, error),
            (Some(StreamRecord::Error { .. }), true)
        ));
        assert_eq!(record_of(&web1, StreamFrame::Unknown), (None, false));
    }

    #[test]
    fn records_are_one_json_object_a_line() {
        let down = StreamRecord::Down {
            replica: ReplicaId("web-2".to_owned()),
            node: "pi".to_owned(),
        };
        let line = encode(&down);
        assert_eq!(
            &line[..],
            b"{\"kind\":\"down\",\"replica\":\"web-2\",\"node\":\"pi\"}\n"
        );
        let decoded: StreamRecord = serde_json::from_slice(&line).unwrap();
        assert_eq!(decoded, down);
        let query: LogsQuery =
            serde_urlencoded_like("replica=2&follow=true&tail=5&since=60&previous=false");
        assert_eq!(
            query,
            LogsQuery {
                replica: Some("2".to_owned()),
                follow: true,
                tail: Some(5),
                since: Some(60),
                previous: false,
            }
        );
    }

    /// The query as axum's extractor decodes it.
    fn serde_urlencoded_like(query: &str) -> LogsQuery {
        let uri: axum::http::Uri = format!("/?{query}").parse().unwrap();
        Query::<LogsQuery>::try_from_uri(&uri).unwrap().0
    }
}
