//! The proxy's side of each replica: its keep-alive pool of HTTP/1.1
//! connections (or its one multiplexed HTTP/2 connection, for replicas
//! that speak h2c), its outstanding requests and its passive health.
//!
//! An HTTP/1.1 connection goes back to its pool when the response it
//! carried has been read to the end ([`Lease`]); one whose response was
//! cut short, or that carried an upgrade, is closed instead.

use super::balance::PassiveHealth;
use bytes::Bytes;
use http_body_util::{Either, Empty, Limited};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a request's body is on its way upstream: the client's, limited in
/// size, or nothing (a request without a body, or one sent again).
pub type UpstreamBody = Either<Limited<Incoming>, Empty<Bytes>>;

/// An HTTP/1.1 connection to a replica.
pub type Sender = http1::SendRequest<UpstreamBody>;

/// What sending a request on a connection comes to.
pub type Sent = Pin<
    Box<
        dyn Future<
                Output = Result<
                    http::Response<Incoming>,
                    TrySendError<http::Request<UpstreamBody>>,
                >,
            > + Send,
    >,
>;

/// A connection to a replica, ready for a request.
#[derive(Debug)]
pub enum Connection {
    /// One request at a time; pooled.
    Http1(Sender),
    /// Multiplexed; shared by every request to the replica.
    Http2(http2::SendRequest<UpstreamBody>),
}

impl Connection {
    /// Sends `request`; an error gives the request back if nothing of it
    /// was written.
    pub fn send(&mut self, request: http::Request<UpstreamBody>) -> Sent {
        match self {
            Connection::Http1(sender) => Box::pin(sender.try_send_request(request)),
            Connection::Http2(sender) => Box::pin(sender.try_send_request(request)),
        }
    }
}

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
    /// Kept connections, oldest first: the newest is used next, the
    /// oldest expire.
    idle: Mutex<VecDeque<(Instant, Sender)>>,
    h2: tokio::sync::Mutex<Option<http2::SendRequest<UpstreamBody>>>,
    offline: tokio::sync::Notify,
}

impl UpstreamState {
    fn new(addr: SocketAddr) -> UpstreamState {
        UpstreamState {
            addr,
            outstanding: AtomicU32::new(0),
            health: Mutex::new(PassiveHealth::default()),
            idle: Mutex::new(VecDeque::new()),
            h2: tokio::sync::Mutex::new(None),
            offline: tokio::sync::Notify::new(),
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

    /// Completes when its node is next seen offline ([`Self::node_offline`]).
    pub fn went_offline(&self) -> tokio::sync::futures::Notified<'_> {
        self.offline.notified()
    }

    /// Its node went offline: requests waiting for its answer go elsewhere.
    pub fn node_offline(&self) {
        self.offline.notify_waiters();
    }

    /// Idle connections in its pool.
    pub fn idle(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, sender)| !sender.is_closed())
            .count()
    }

    /// Counts a request as outstanding until the lease is dropped.
    pub fn lease(self: &Arc<Self>) -> Lease {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Lease {
            upstream: Arc::clone(self),
            sender: None,
        }
    }

    /// A connection ready for a request (HTTP/2 when `h2`): a pooled or
    /// shared one, or a new one made within `connect_timeout`. The bool
    /// says whether it was there already.
    pub async fn connect(
        &self,
        connect_timeout: Duration,
        h2: bool,
    ) -> Result<(Connection, bool), ConnectError> {
        if h2 {
            return self.connect_h2(connect_timeout).await;
        }
        while let Some(mut sender) = self.pop_idle() {
            // Ready at once as a rule; a moment's wait otherwise (the last
            // response's bookkeeping), under a timer only then.
            if sender.is_ready() {
                return Ok((Connection::Http1(sender), true));
            }
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
                return Ok((Connection::Http1(sender), true));
            }
        }
        let stream = self.tcp(connect_timeout).await?;
        // Head and body flattened into one write rather than a vectored one
        // (the bench showed no difference beyond its noise either way).
        let (sender, connection) = http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%addr, %error, "upstream connection ended");
            }
        });
        Ok((Connection::Http1(sender), false))
    }

    /// The replica's HTTP/2 connection, made if there is none or it closed.
    async fn connect_h2(
        &self,
        connect_timeout: Duration,
    ) -> Result<(Connection, bool), ConnectError> {
        let mut shared = self.h2.lock().await;
        if let Some(sender) = shared.as_ref().filter(|s| !s.is_closed()) {
            return Ok((Connection::Http2(sender.clone()), true));
        }
        let stream = self.tcp(connect_timeout).await?;
        let (sender, connection) =
            http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
        let addr = self.addr;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%addr, %error, "upstream HTTP/2 connection ended");
            }
        });
        *shared = Some(sender.clone());
        Ok((Connection::Http2(sender), false))
    }

    async fn tcp(&self, connect_timeout: Duration) -> Result<tokio::net::TcpStream, ConnectError> {
        let stream =
            tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(self.addr))
                .await
                .map_err(|_| ConnectError::Timeout)??;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn pop_idle(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        while idle
            .front()
            .is_some_and(|(since, _)| now - *since >= IDLE_TIMEOUT)
        {
            idle.pop_front();
        }
        // Closed ones are dropped as they are reached, not looked for.
        while let Some((_, sender)) = idle.pop_back() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, sender: Sender) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE && !sender.is_closed() {
            idle.push_back((Instant::now(), sender));
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

    /// Keeps an HTTP/1.1 connection to give back when the response is
    /// done (an HTTP/2 one stays shared).
    pub fn hold(&mut self, connection: Connection) {
        if let Connection::Http1(sender) = connection {
            self.sender = Some(sender);
        }
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

    /// The replica at `addr`, if the proxy has sent to it.
    pub fn existing(&self, addr: SocketAddr) -> Option<Arc<UpstreamState>> {
        self.by_addr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&addr)
            .cloned()
    }

    /// Forgets the replicas no route has any more (their pools close),
    /// but those with requests still in flight: a draining replica is
    /// stopped only once they have finished, and that is counted here.
    pub fn retain(&self, live: &HashSet<SocketAddr>) {
        self.by_addr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|addr, state| live.contains(addr) || state.outstanding() > 0);
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
