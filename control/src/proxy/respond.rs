//! The client's side of a replica's answer: hop-by-hop headers out, the
//! sticky cookie in, the body streamed as it comes; a `101` joins the two
//! upgraded connections byte for byte.

use super::body::ProxyBody;
use super::forward::Outcome;
use super::headers;
use super::upstream::{Connection, Lease};
use super::{Route, Upstream};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;

/// The client's response from the replica `upstream` of `route`.
pub(super) fn respond(
    mut response: Response<Incoming>,
    connection: Connection,
    mut lease: Lease,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    route: &Route,
    upstream: &Upstream,
) -> Outcome {
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
            return Outcome::page(StatusCode::BAD_GATEWAY, Some(&route.service));
        };
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        drop(connection);
        tokio::spawn(join_upgraded(client_upgrade, upstream_upgrade, lease));
        let (parts, _) = response.into_parts();
        return outcome(Response::from_parts(parts, ProxyBody::Own(None)));
    }
    let (parts, body) = response.into_parts();
    lease.hold(connection);
    if body.is_end_stream() {
        lease.finish();
    }
    outcome(Response::from_parts(
        parts,
        ProxyBody::Upstream { body, lease },
    ))
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

/// The cookie that keeps a client on one replica of `route`'s service.
pub(super) fn sticky_cookie(route: &Route) -> String {
    format!("warren_{}", route.service)
}

/// A replica's name in its sticky cookie: a hash, so nothing internal shows.
pub(super) fn replica_token(replica: &str) -> String {
    // FNV-1a: stable across restarts of the control plane.
    let hash = replica
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("{hash:016x}")
}

/// The replica a request's sticky cookie names, if it is still a route's.
pub(super) fn sticky_choice(headers: &http::HeaderMap, route: &Route) -> Option<usize> {
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
