//! The proxy's side of each replica: its keep-alive pool of HTTP/1.1
//! connections, its outstanding requests and its passive health.
//!
//! A connection goes back to its pool when the response it carried has
//! been read to the end ([`Lease`]); one whose response was cut short, or
//! that carried an upgrade, is closed instead.

use super::balance::PassiveHealth;
use bytes::Bytes;
use http_body_util::{Either, Empty, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a request's body is on its way upstream: the client's, limited in
/// size, or nothing (a request without a body, or one sent again).
pub type UpstreamBody = Either<Limited<Incoming>, Empty<Bytes>>;

/// A connection to a replica, ready for a request.
pub type Sender = http1::SendRequest<UpstreamBody>;

/// How long an idle pooled connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most idle connections kept per replica.
pub const MAX_IDLE: usize = 256;

/// How long a pooled connection may take to be ready for its next request
/// (it is finishing the last response's bookkeeping).
const READY_WAIT: Duration = Duration::from_millis(50);

/// Why no connection to a replica could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The TCP connection failed (refused, unreachable, reset).
    #[error("connecting: {0}")]
    Io(#[from] std::io::Error),
    /// The TCP connection took too long.
    #[error("connecting timed out")]
    Timeout,
    /// The HTTP/1.1 handshake failed.
    #[error("handshake: {0}")]
    Handshake(#[from] hyper::Error),
}

/// One replica's connections and numbers.
#[derive(Debug)]
pub struct UpstreamState {
    addr: SocketAddr,
    outstanding: AtomicU32,
    health: Mutex<PassiveHealth>,
    idle: Mutex<Vec<(Instant, Sender)>>,
}

impl UpstreamState {
    fn new(addr: SocketAddr) -> UpstreamState {
        UpstreamState {
            addr,
            outstanding: AtomicU32::new(0),
            health: Mutex::new(PassiveHealth::default()),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Requests sent to it and not finished.
    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Whether passive health ejected it at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_ejected(now)
    }

    /// A request to it failed at `now`.
    pub fn failed(&self, now: Instant) {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed(now);
    }

    /// A request to it got a response.
    pub fn succeeded(&self) {
        self.health
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .succeeded();
    }

    /// Idle connections in its pool.
    pub fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Counts a request as outstanding until the lease is dropped.
    pub fn lease(self: &Arc<Self>) -> Lease {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Lease {
            upstream: Arc::clone(self),
            sender: None,
        }
    }

    /// A connection ready for a request: a pooled one, or a new one made
    /// within `connect_timeout`. The bool says whether it was pooled.
    pub async fn connect(&self, connect_timeout: Duration) -> Result<(Sender, bool), ConnectError> {
        while let Some(mut sender) = self.pop_idle() {
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
                return Ok((sender, true));
            }
        }
        let stream =
            tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(self.addr))
                .await
                .map_err(|_| ConnectError::Timeout)??;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%addr, %error, "upstream connection ended");
            }
        });
        Ok((sender, false))
    }

    fn pop_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        idle.retain(|(since, sender)| !sender.is_closed() && now - *since < IDLE_TIMEOUT);
        idle.pop().map(|(_, sender)| sender)
    }

    fn put_idle(&self, sender: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push((Instant::now(), sender));
        }
    }
}

/// A request's hold on a replica: counted as outstanding while it lives;
/// gives its connection back to the pool if [`Lease::finish`] is called
/// (the response was read to its end).
#[derive(Debug)]
pub struct Lease {
    upstream: Arc<UpstreamState>,
    sender: Option<Sender>,
}

impl Lease {
    /// The replica.
    pub fn upstream(&self) -> &Arc<UpstreamState> {
        &self.upstream
    }

    /// Keeps `sender` to give back when the response is done.
    pub fn hold(&mut self, sender: Sender) {
        self.sender = Some(sender);
    }

    /// The response was read to its end: the connection can carry another.
    pub fn finish(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.upstream.put_idle(sender);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.upstream.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every replica the proxy has sent to, by address.
#[derive(Debug, Default)]
pub struct Upstreams {
    by_addr: Mutex<HashMap<SocketAddr, Arc<UpstreamState>>>,
}

impl Upstreams {
    /// The replica at `addr`.
    pub fn get(&self, addr: SocketAddr) -> Arc<UpstreamState> {
        let mut map = self.by_addr.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            map.entry(addr)
                .or_insert_with(|| Arc::new(UpstreamState::new(addr))),
        )
    }

    /// Forgets the replicas no route has any more (their pools close).
    pub fn retain(&self, live: &HashSet<SocketAddr>) {
        self.by_addr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|addr, _| live.contains(addr));
    }

    /// Each replica's address with its idle and outstanding counts.
    pub fn pools(&self) -> Vec<(SocketAddr, usize, u32)> {
        let map = self.by_addr.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pools: Vec<_> = map
            .iter()
            .map(|(addr, state)| (*addr, state.idle(), state.outstanding()))
            .collect();
        pools.sort();
        pools
    }
}
