//! One request through the proxy: its route, a replica, and the retries
//! that keep a failing replica invisible.
//!
//! A request goes to another replica when connecting fails or a pooled
//! connection turns out closed before the request was written; and, when
//! it is idempotent (GET, HEAD, OPTIONS, TRACE without a body), also when
//! the replica closes or times out before its response's headers, or its
//! node goes offline while the request waits for them. A request whose
//! body was sent is never sent again. Each attempt after the first picks
//! from the routing table as it is then, so a replica that turned healthy
//! meanwhile can take it.

use super::balance::{self, Candidate};
use super::body::ProxyBody;
use super::headers::{self, Forwarding};
use super::pages::page;
use super::respond::{respond, sticky_choice};
use super::stats::Failure;
use super::upstream::{UpstreamBody, UpstreamState};
use super::{Proxy, Route, RouteTable, Upstream};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Empty, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Where ACME's HTTP-01 challenges are asked for.
pub const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The most attempts one request makes (each on another replica, but for
/// a pooled connection found closed).
const MAX_ATTEMPTS: usize = 4;

/// What the access log and the metrics say of a request.
pub(super) struct Outcome {
    pub(super) response: Response<ProxyBody>,
    pub(super) service: Option<String>,
    pub(super) upstream: Option<SocketAddr>,
    pub(super) attempts: usize,
}

impl Outcome {
    /// The proxy's own page for `status`, for `service` if one was found.
    pub(super) fn page(status: StatusCode, service: Option<&str>) -> Outcome {
        Outcome::own(page(status), service)
    }

    fn own(response: Response<ProxyBody>, service: Option<&str>) -> Outcome {
        Outcome {
            response,
            service: service.map(str::to_owned),
            upstream: None,
            attempts: 0,
        }
    }
}

/// A request made ready for replicas: its headers rewritten, the URIs to
/// send it to, and what of it may be sent again.
struct Prepared {
    parts: http::request::Parts,
    /// The origin-form URI for HTTP/1.1 replicas.
    uri: Uri,
    /// The absolute URI for HTTP/2 replicas; `None` for HTTP/1.1 ones.
    /// Decided once, so a retry speaks what the first attempt spoke.
    h2_uri: Option<Uri>,
    wants_trailers: bool,
    /// Idempotent and bodyless: may be sent again after it was written.
    resend_after_write: bool,
    /// The body, until it is sent.
    body: Option<UpstreamBody>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    host: String,
    service: String,
}

/// How one attempt at a replica ended.
enum Attempt {
    /// The replica answered; the client gets this.
    Answered(Box<Outcome>),
    /// Nothing was written; the body is back. `pooled`: the connection was
    /// a kept one that closed, no fault of the replica's.
    Unsent { pooled: bool },
    /// No connection could be made.
    Unreachable,
    /// The request was written and no answer came: the status to give if
    /// it cannot be sent again.
    Failed(StatusCode),
    /// The client's body passed the limit.
    TooLarge,
}

impl Proxy {
    /// Answers `request` from `client` that came in over `proto` (`http`
    /// or `https`).
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        client: SocketAddr,
        proto: &'static str,
        worker: usize,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let host = request_host(&request);
        let path = request.uri().path().to_owned();
        let outcome = match host.clone() {
            Some(host) => self.route(request, host, client, proto, worker).await,
            None => Outcome::page(StatusCode::BAD_REQUEST, None),
        };
        let host = host.unwrap_or_default();
        let status = outcome.response.status().as_u16();
        let elapsed = started.elapsed();
        let service = outcome.service.as_deref().unwrap_or("");
        self.metrics.request(service, status, elapsed);
        tracing::info!(
            target: "warren::access",
            %client,
            %method,
            %host,
            %path,
            status,
            service,
            upstream = outcome.upstream.map(tracing::field::display),
            attempts = outcome.attempts,
            ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
        outcome.response
    }

    /// Routes `request` for `host` (its Host header, or its URI's authority).
    async fn route(
        &self,
        request: Request<Incoming>,
        host: String,
        client: SocketAddr,
        proto: &'static str,
        worker: usize,
    ) -> Outcome {
        if let Some(answer) = self.acme_answer(request.uri()) {
            return Outcome::own(answer, None);
        }
        if let Some(redirect) = self.https_redirect(proto, &host, request.uri()) {
            return Outcome::own(redirect, None);
        }
        let table = Arc::clone(&self.routes.borrow());
        let Some(route) = table.find(&host, request.uri().path()) else {
            return Outcome::page(StatusCode::NOT_FOUND, None);
        };
        if declared_length(&request).is_some_and(|n| n > self.limits.max_body) {
            return Outcome::page(StatusCode::PAYLOAD_TOO_LARGE, Some(&route.service));
        }
        if route.upstreams.is_empty() {
            return Outcome::page(StatusCode::SERVICE_UNAVAILABLE, Some(&route.service));
        }
        match self.prepare(request, route, client, proto, host) {
            Ok(prepared) => self.send_to_replicas(prepared, route, worker).await,
            Err(status) => Outcome::page(status, Some(&route.service)),
        }
    }

    /// Rewrites the request's headers and URI for `route`'s replicas.
    fn prepare(
        &self,
        mut request: Request<Incoming>,
        route: &Route,
        client: SocketAddr,
        proto: &'static str,
        host: String,
    ) -> Result<Prepared, StatusCode> {
        let upgrade = headers::upgrade_of(request.headers());
        let wants_trailers = request
            .headers()
            .get_all(header::TE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            });
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        if !parts.headers.contains_key(header::HOST) {
            // An HTTP/2 request names its host in the URI only.
            if let Ok(value) = HeaderValue::from_str(&host) {
                parts.headers.insert(header::HOST, value);
            }
        }
        headers::set_forwarded(
            &mut parts.headers,
            Forwarding {
                client,
                proto,
                host: &host,
            },
        );
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let upstream_path = route.upstream_path(path_and_query);
        let Ok(uri) = upstream_path.parse::<Uri>() else {
            return Err(StatusCode::BAD_REQUEST);
        };
        // HTTP/2 replicas take the host in the URI; made only for them.
        let h2_uri = match route.h2 {
            true => match format!("http://{host}{upstream_path}").parse::<Uri>() {
                Ok(uri) => Some(uri),
                Err(_) => return Err(StatusCode::BAD_REQUEST),
            },
            false => None,
        };
        let bodyless = body.is_end_stream();
        let resend_after_write = bodyless
            && matches!(
                parts.method,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
            );
        let body = Some(if bodyless {
            Either::Right(Empty::new())
        } else {
            Either::Left(Limited::new(body, self.limits.max_body as usize))
        });
        Ok(Prepared {
            parts,
            uri,
            h2_uri,
            wants_trailers,
            resend_after_write,
            body,
            client_upgrade,
            host,
            service: route.service.clone(),
        })
    }

    /// Sends the request to the service's replicas, one after another as
    /// the retry rules allow: first to `first`'s, the route the request was
    /// prepared for; each attempt after it from the latest table.
    async fn send_to_replicas(
        &self,
        mut prepared: Prepared,
        first: &Route,
        worker: usize,
    ) -> Outcome {
        let Some(upstreams) = self.upstreams.get(worker) else {
            return Outcome::page(StatusCode::BAD_GATEWAY, Some(&prepared.service));
        };
        let mut tried: Vec<SocketAddr> = Vec::new();
        let mut attempts = 0;
        let mut failure = StatusCode::BAD_GATEWAY;
        while attempts < MAX_ATTEMPTS {
            let latest: Arc<RouteTable>;
            let route = match attempts {
                0 => first,
                _ => {
                    latest = Arc::clone(&self.routes.borrow());
                    match latest
                        .find(&prepared.host, prepared.parts.uri.path())
                        .filter(|r| r.service == prepared.service)
                    {
                        Some(route) => route,
                        None => break,
                    }
                }
            };
            let now = Instant::now();
            let states: Vec<Arc<UpstreamState>> = route
                .upstreams
                .iter()
                .map(|u| upstreams.get(u.addr))
                .collect();
            let candidates: Vec<Candidate> = route
                .upstreams
                .iter()
                .zip(&states)
                .map(|(upstream, state)| Candidate {
                    outstanding: state.outstanding(),
                    ejected: state.is_ejected(now),
                    tried: tried.contains(&upstream.addr),
                })
                .collect();
            let sticky = route
                .sticky
                .then(|| sticky_choice(&prepared.parts.headers, route))
                .flatten()
                .filter(|&i| !candidates[i].tried && !candidates[i].ejected);
            let Some(index) = sticky.or_else(|| balance::pick(&candidates, self.random_pair()))
            else {
                break;
            };
            if attempts > 0 {
                self.metrics.retry(&route.service);
            }
            attempts += 1;
            let upstream = &route.upstreams[index];
            tried.push(upstream.addr);
            match self
                .attempt(&mut prepared, route, upstream, &states[index], now)
                .await
            {
                Attempt::Answered(outcome) => {
                    let mut outcome = *outcome;
                    outcome.attempts = attempts;
                    return outcome;
                }
                Attempt::Unsent { pooled } => {
                    if pooled {
                        tried.pop();
                    }
                }
                Attempt::Unreachable => {}
                Attempt::TooLarge => {
                    return Outcome::page(StatusCode::PAYLOAD_TOO_LARGE, Some(&route.service))
                }
                Attempt::Failed(status) => {
                    failure = status;
                    if !prepared.resend_after_write {
                        break;
                    }
                    prepared.body = Some(Either::Right(Empty::new()));
                }
            }
        }
        let mut outcome = Outcome::page(failure, Some(&prepared.service));
        outcome.attempts = attempts;
        outcome
    }

    /// One attempt at `upstream`.
    async fn attempt(
        &self,
        prepared: &mut Prepared,
        route: &Route,
        upstream: &Upstream,
        state: &Arc<UpstreamState>,
        now: Instant,
    ) -> Attempt {
        let lease = state.lease();
        // A failed attempt counts against the replica and in the metrics.
        let failed = |kind: Failure| {
            state.failed(now);
            self.metrics.upstream_error(&route.service, kind);
        };
        let h2 = prepared.h2_uri.is_some();
        // The node going offline cuts short the wait for a connection as
        // well as the wait for an answer.
        let offline = state.went_offline();
        tokio::pin!(offline);
        offline.as_mut().enable();
        let connected = tokio::select! {
            connected = state.connect(self.limits.connect_timeout, h2) => connected,
            () = &mut offline => {
                tracing::debug!(addr = %upstream.addr, "replica's node went offline while connecting");
                failed(Failure::Offline);
                return Attempt::Unreachable;
            }
        };
        let (mut connection, pooled) = match connected {
            Ok(connected) => connected,
            Err(error) => {
                tracing::debug!(addr = %upstream.addr, %error, "replica unreachable");
                failed(Failure::Connect);
                return Attempt::Unreachable;
            }
        };
        let Some(body) = prepared.body.take() else {
            return Attempt::Failed(StatusCode::BAD_GATEWAY);
        };
        let mut outgoing = Request::new(body);
        *outgoing.method_mut() = prepared.parts.method.clone();
        *outgoing.headers_mut() = prepared.parts.headers.clone();
        if let Some(h2_uri) = &prepared.h2_uri {
            // HTTP/2 names the host in the URI (:authority), and lets
            // `te: trailers` through (gRPC needs it).
            *outgoing.uri_mut() = h2_uri.clone();
            *outgoing.version_mut() = Version::HTTP_2;
            outgoing.headers_mut().remove(header::HOST);
            if prepared.wants_trailers {
                outgoing
                    .headers_mut()
                    .insert(header::TE, HeaderValue::from_static("trailers"));
            }
        } else {
            *outgoing.uri_mut() = prepared.uri.clone();
            *outgoing.version_mut() = Version::HTTP_11;
        }
        let sent = tokio::select! {
            sent = tokio::time::timeout(self.limits.response_timeout, connection.send(outgoing)) => sent,
            () = &mut offline => {
                tracing::debug!(addr = %upstream.addr, "replica's node went offline while answering");
                failed(Failure::Offline);
                return Attempt::Failed(StatusCode::BAD_GATEWAY);
            }
        };
        match sent {
            Ok(Ok(response)) => {
                state.succeeded();
                let client_upgrade = prepared.client_upgrade.take();
                Attempt::Answered(Box::new(respond(
                    response,
                    connection,
                    lease,
                    client_upgrade,
                    route,
                    upstream,
                )))
            }
            Ok(Err(mut error)) => {
                if let Some(unsent) = error.take_message() {
                    prepared.body = Some(unsent.into_body());
                    return Attempt::Unsent { pooled };
                }
                let error = error.into_error();
                if body_too_large(&error) {
                    return Attempt::TooLarge;
                }
                tracing::debug!(addr = %upstream.addr, %error, "replica closed before answering");
                failed(Failure::Closed);
                Attempt::Failed(StatusCode::BAD_GATEWAY)
            }
            Err(_) => {
                failed(Failure::Timeout);
                Attempt::Failed(StatusCode::GATEWAY_TIMEOUT)
            }
        }
    }

    /// The answer to an open ACME HTTP-01 challenge, if `uri` asks for one.
    fn acme_answer(&self, uri: &Uri) -> Option<Response<ProxyBody>> {
        let token = uri.path().strip_prefix(ACME_CHALLENGE_PREFIX)?;
        let answer = self.challenges.answer(token)?;
        let mut response = Response::new(ProxyBody::own(answer));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        Some(response)
    }

    /// A `308` to HTTPS for a plain HTTP request whose host has a
    /// certificate (but ACME's HTTP-01 challenges, which must stay on HTTP).
    fn https_redirect(&self, proto: &str, host: &str, uri: &Uri) -> Option<Response<ProxyBody>> {
        let redirect = self.redirect.as_ref().filter(|_| proto == "http")?;
        if uri.path().starts_with(ACME_CHALLENGE_PREFIX) {
            return None;
        }
        let name = super::routes::normalize_host(host)?;
        if !redirect.certs.borrow().covers(&name) {
            return None;
        }
        let port = if redirect.port == 443 {
            String::new()
        } else {
            format!(":{}", redirect.port)
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let location = HeaderValue::from_str(&format!("https://{name}{port}{path}")).ok()?;
        let mut response = page(StatusCode::PERMANENT_REDIRECT);
        response.headers_mut().insert(header::LOCATION, location);
        Some(response)
    }
}

/// The host a request asks for: its Host header, or its URI's authority.
fn request_host<B>(request: &Request<B>) -> Option<String> {
    let host = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok()?.to_owned(),
        None => request.uri().authority()?.as_str().to_owned(),
    };
    (!host.is_empty()).then_some(host)
}

/// The body length a request declares, if it does.
fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether sending failed because the client's body passed the limit.
fn body_too_large(error: &hyper::Error) -> bool {
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.is::<LengthLimitError>() {
            return true;
        }
        source = cause.source();
    }
    false
}
