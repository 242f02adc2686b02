//! One request through the proxy: its route, a replica, and the retries
//! that keep a failing replica invisible.
//!
//! A request goes to another replica when connecting fails or a pooled
//! connection turns out closed before the request was written; and, when
//! it is idempotent (GET, HEAD, OPTIONS, TRACE without a body), also when
//! the replica closes or times out before its response's headers. A
//! request whose body was sent is never sent again.

use super::balance::{self, Candidate};
use super::body::ProxyBody;
use super::headers::{self, Forwarding};
use super::metrics::UpstreamError;
use super::pages::page;
use super::upstream::{Lease, UpstreamBody};
use super::{Proxy, Route};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{Either, Empty, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
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
struct Outcome {
    response: Response<ProxyBody>,
    service: Option<String>,
    upstream: Option<SocketAddr>,
    attempts: usize,
}

impl Outcome {
    fn page(status: StatusCode, service: Option<&Route>) -> Outcome {
        Outcome {
            response: page(status),
            service: service.map(|r| r.service.clone()),
            upstream: None,
            attempts: 0,
        }
    }
}

impl Proxy {
    /// Answers `request` from `client` that came in over `proto` (`http`
    /// or `https`).
    pub async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
        client: SocketAddr,
        proto: &'static str,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let method = request.method().clone();
        let host = request_host(&request).unwrap_or_default();
        let path = request.uri().path().to_owned();
        let outcome = self.route(request, client, proto).await;
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
            upstream = outcome.upstream.map(|a| a.to_string()).unwrap_or_default(),
            attempts = outcome.attempts,
            ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
        outcome.response
    }

    async fn route(
        &self,
        mut request: Request<Incoming>,
        client: SocketAddr,
        proto: &'static str,
    ) -> Outcome {
        let Some(host) = request_host(&request) else {
            return Outcome::page(StatusCode::BAD_REQUEST, None);
        };
        if let Some(answer) = self.acme_answer(request.uri()) {
            return Outcome {
                response: answer,
                service: None,
                upstream: None,
                attempts: 0,
            };
        }
        if let Some(redirect) = self.https_redirect(proto, &host, request.uri()) {
            return Outcome {
                response: redirect,
                service: None,
                upstream: None,
                attempts: 0,
            };
        }
        let table = Arc::clone(&self.routes.borrow());
        let Some(route) = table.find(&host, request.uri().path()) else {
            return Outcome::page(StatusCode::NOT_FOUND, None);
        };
        if declared_length(&request).is_some_and(|n| n > self.limits.max_body) {
            return Outcome::page(StatusCode::PAYLOAD_TOO_LARGE, Some(route));
        }
        if route.upstreams.is_empty() {
            return Outcome::page(StatusCode::SERVICE_UNAVAILABLE, Some(route));
        }
        let upgrade = headers::upgrade_of(request.headers());
        let client_upgrade = upgrade.as_ref().map(|_| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, upgrade.clone());
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
        let Ok(uri) = route.upstream_path(path_and_query).parse::<Uri>() else {
            return Outcome::page(StatusCode::BAD_REQUEST, Some(route));
        };
        let bodyless = body.is_end_stream();
        let resend_after_write = bodyless
            && matches!(
                parts.method,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
            );
        let mut body: Option<UpstreamBody> = Some(if bodyless {
            Either::Right(Empty::new())
        } else {
            Either::Left(Limited::new(body, self.limits.max_body as usize))
        });
        let sticky = route
            .sticky
            .then(|| sticky_choice(&parts.headers, route))
            .flatten();

        let mut tried = vec![false; route.upstreams.len()];
        let mut attempts = 0;
        let mut failure = StatusCode::BAD_GATEWAY;
        while attempts < MAX_ATTEMPTS {
            let now = Instant::now();
            let states: Vec<_> = route
                .upstreams
                .iter()
                .map(|u| self.upstreams.get(u.addr))
                .collect();
            let candidates: Vec<Candidate> = states
                .iter()
                .zip(&tried)
                .map(|(state, &tried)| Candidate {
                    outstanding: state.outstanding(),
                    ejected: state.is_ejected(now),
                    tried,
                })
                .collect();
            let chosen = sticky
                .filter(|&i| !candidates[i].tried && !candidates[i].ejected)
                .or_else(|| balance::pick(&candidates, self.random_pair()));
            let Some(index) = chosen else { break };
            if attempts > 0 {
                self.metrics.retry(&route.service);
            }
            attempts += 1;
            tried[index] = true;
            let upstream = &route.upstreams[index];
            let lease = states[index].lease();
            let (mut sender, pooled) =
                match states[index].connect(self.limits.connect_timeout).await {
                    Ok(connected) => connected,
                    Err(error) => {
                        tracing::debug!(addr = %upstream.addr, %error, "replica unreachable");
                        states[index].failed(now);
                        self.metrics
                            .upstream_error(&route.service, UpstreamError::Connect);
                        continue;
                    }
                };
            let Some(out_body) = body.take() else { break };
            let mut outgoing = Request::new(out_body);
            *outgoing.method_mut() = parts.method.clone();
            *outgoing.uri_mut() = uri.clone();
            *outgoing.version_mut() = Version::HTTP_11;
            *outgoing.headers_mut() = parts.headers.clone();
            let sent = tokio::time::timeout(
                self.limits.response_timeout,
                sender.try_send_request(outgoing),
            )
            .await;
            match sent {
                Ok(Ok(response)) => {
                    states[index].succeeded();
                    let mut outcome =
                        self.respond(response, sender, lease, client_upgrade, route, index);
                    outcome.attempts = attempts;
                    return outcome;
                }
                Ok(Err(mut error)) => {
                    if let Some(unsent) = error.take_message() {
                        // Nothing was written: the body is whole, and a
                        // pooled connection that closed is no fault of the
                        // replica's.
                        body = Some(unsent.into_body());
                        if pooled {
                            tried[index] = false;
                        }
                        continue;
                    }
                    let error = error.into_error();
                    if body_too_large(&error) {
                        return Outcome::page(StatusCode::PAYLOAD_TOO_LARGE, Some(route));
                    }
                    tracing::debug!(addr = %upstream.addr, %error, "replica closed before answering");
                    states[index].failed(now);
                    self.metrics
                        .upstream_error(&route.service, UpstreamError::Closed);
                    failure = StatusCode::BAD_GATEWAY;
                }
                Err(_) => {
                    states[index].failed(now);
                    self.metrics
                        .upstream_error(&route.service, UpstreamError::Timeout);
                    failure = StatusCode::GATEWAY_TIMEOUT;
                }
            }
            drop(lease);
            if !resend_after_write {
                break;
            }
            body = Some(Either::Right(Empty::new()));
        }
        let mut outcome = Outcome::page(failure, Some(route));
        outcome.attempts = attempts;
        outcome
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

    /// The client's response from the replica's: hop-by-hop headers out,
    /// the sticky cookie in, the body streamed; a `101` joins the two
    /// upgraded connections.
    fn respond(
        &self,
        mut response: Response<Incoming>,
        sender: super::upstream::Sender,
        mut lease: Lease,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        route: &Route,
        index: usize,
    ) -> Outcome {
        let upstream = &route.upstreams[index];
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        let agreed = switching
            .then(|| response.headers().get(header::UPGRADE).cloned())
            .flatten();
        headers::strip_hop_by_hop(response.headers_mut(), agreed.clone());
        if route.sticky {
            if let Ok(cookie) = HeaderValue::from_str(&format!(
                "{}={}; Path=/; HttpOnly; SameSite=Lax",
                sticky_cookie(route),
                replica_token(&upstream.replica)
            )) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
        }
        let outcome = |response| Outcome {
            response,
            service: Some(route.service.clone()),
            upstream: Some(upstream.addr),
            attempts: 0,
        };
        if switching {
            let Some(client_upgrade) = client_upgrade.filter(|_| agreed.is_some()) else {
                return Outcome::page(StatusCode::BAD_GATEWAY, Some(route));
            };
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            drop(sender);
            tokio::spawn(join_upgraded(client_upgrade, upstream_upgrade, lease));
            let (parts, _) = response.into_parts();
            return outcome(Response::from_parts(parts, ProxyBody::Own(None)));
        }
        let (parts, body) = response.into_parts();
        lease.hold(sender);
        if body.is_end_stream() {
            lease.finish();
        }
        outcome(Response::from_parts(
            parts,
            ProxyBody::Upstream { body, lease },
        ))
    }
}

/// Copies bytes both ways between an upgraded client and replica (a
/// WebSocket) until either side closes; the lease counts it outstanding.
async fn join_upgraded(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    lease: Lease,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(error) => {
            tracing::debug!(%error, "upgrade did not complete");
            return;
        }
    };
    let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
    if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        tracing::debug!(%error, "upgraded connection ended");
    }
    drop(lease);
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

/// The cookie that keeps a client on one replica of `route`'s service.
fn sticky_cookie(route: &Route) -> String {
    format!("warren_{}", route.service)
}

/// A replica's name in its sticky cookie: a hash, so nothing internal shows.
fn replica_token(replica: &str) -> String {
    // FNV-1a: stable across restarts of the control plane.
    let hash = replica
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// The replica a request's sticky cookie names, if it is still a route's.
fn sticky_choice(headers: &http::HeaderMap, route: &Route) -> Option<usize> {
    let name = sticky_cookie(route);
    let token = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())?;
    route
        .upstreams
        .iter()
        .position(|u| replica_token(&u.replica) == token)
}
