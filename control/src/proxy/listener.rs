//! The proxy's sockets and the HTTP server on each connection: HTTP/1.1 on
//! plain HTTP; on HTTPS, TLS (certificates by SNI) and then HTTP/2 or
//! HTTP/1.1 as the client's ALPN chose.
//!
//! The proxy runs on worker threads of its own ([`Listeners`]), one per
//! core. A client gets [`ProxyLimits::header_timeout`] for its TLS handshake and
//! to send each request's head (a slowloris client is cut off, and so is
//! an idle keep-alive connection), a head of at most
//! [`ProxyLimits::max_head`] bytes (hyper answers 431 beyond), and its
//! connection is served on a task of its own, so one slow client never
//! holds up another.

use super::certs::{CertTable, SniResolver};
use super::{Proxy, ProxyLimits};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The ALPN protocols the HTTPS listener offers, preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The TLS configuration of the HTTPS listener: TLS 1.3 and 1.2 on ring,
/// the certificate chosen by SNI from `certs`, HTTP/2 or HTTP/1.1 by ALPN.
pub fn tls_config(
    certs: watch::Receiver<Arc<CertTable>>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(SniResolver::new(certs)));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// A socket the proxy could not listen on.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({flag}): {source}")]
pub struct ListenError {
    /// The address.
    pub addr: SocketAddr,
    /// The flag that names it.
    pub flag: &'static str,
    /// The OS error.
    pub source: std::io::Error,
}

/// One address the proxy listens on: a socket for each worker thread,
/// all bound to it with `SO_REUSEPORT`, so the kernel spreads connections
/// over the workers.
#[derive(Debug)]
pub struct Bound {
    addr: SocketAddr,
    sockets: Vec<std::net::TcpListener>,
}

impl Bound {
    /// The address (with the port the kernel chose, for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Binds `addrs` for `workers` worker threads. An IPv6 wildcard takes
/// only IPv6 (so it can sit beside `0.0.0.0` on the same port). With
/// `optional_v6`, an IPv6 address this host cannot have (no IPv6 here) is
/// skipped with a warning: the defaults ask for both families, a host may
/// have one. `flag` names the addresses' flag in errors.
pub fn bind(
    addrs: &[SocketAddr],
    optional_v6: bool,
    flag: &'static str,
    workers: usize,
) -> Result<Vec<Bound>, ListenError> {
    let mut bound = Vec::new();
    for &addr in addrs {
        match bind_all(addr, workers.max(1)) {
            Ok(one) => bound.push(one),
            Err(source) if optional_v6 && addr.is_ipv6() && no_ipv6(&source) => {
                tracing::warn!(%addr, error = %source, "no IPv6 here: not listening on it ({flag})");
            }
            Err(source) => return Err(ListenError { addr, flag, source }),
        }
    }
    Ok(bound)
}

fn no_ipv6(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::AddrNotAvailable
        || error.raw_os_error() == Some(libc::EAFNOSUPPORT)
}

/// `workers` sockets on `addr`: the first finds the port (and fails if it
/// is taken), the others join it.
fn bind_all(addr: SocketAddr, workers: usize) -> std::io::Result<Bound> {
    let first = bind_one(addr)?;
    let addr = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..workers {
        sockets.push(bind_one(addr)?);
    }
    Ok(Bound { addr, sockets })
}

fn bind_one(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The proxy's worker threads: each runs a single-threaded tokio runtime
/// with an accept loop on its own socket of every address, and serves the
/// connections it accepts (and their requests to replicas) itself, as
/// nginx's workers do. A connection's tasks never move between threads:
/// with a work-stealing runtime, the wake-ups between them cost the proxy
/// about as much CPU again as the requests (docs/benchmarks.md).
#[derive(Debug)]
pub struct Listeners {
    http: Vec<SocketAddr>,
    https: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
}

impl Listeners {
    /// Serves `proxy` over plain HTTP on `http` and over TLS with `tls`
    /// on `https`, on one thread per worker.
    pub fn start(
        proxy: &Arc<Proxy>,
        http: Vec<Bound>,
        https: Vec<Bound>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Listeners {
        let http_addrs = http.iter().map(Bound::addr).collect();
        let https_addrs = https.iter().map(Bound::addr).collect();
        let (stop, stopped) = watch::channel(false);
        let acceptor = tls.map(TlsAcceptor::from);
        let mut per_worker: Vec<Vec<(std::net::TcpListener, Option<TlsAcceptor>)>> =
            (0..proxy.workers()).map(|_| Vec::new()).collect();
        let https = https.into_iter().filter(|_| acceptor.is_some());
        for (bound, tls) in http
            .into_iter()
            .map(|b| (b, None))
            .chain(https.map(|b| (b, acceptor.clone())))
        {
            for (worker, socket) in bound.sockets.into_iter().enumerate() {
                if let Some(sockets) = per_worker.get_mut(worker) {
                    sockets.push((socket, tls.clone()));
                }
            }
        }
        for (worker, sockets) in per_worker.into_iter().enumerate() {
            let proxy = Arc::clone(proxy);
            let stopped = stopped.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("warren-proxy-{worker}"))
                .spawn(move || run_worker(proxy, worker, sockets, stopped));
            if let Err(error) = spawned {
                tracing::error!(%error, "cannot start a proxy worker thread");
            }
        }
        Listeners {
            http: http_addrs,
            https: https_addrs,
            stop,
        }
    }

    /// The plain HTTP addresses it listens on.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http
    }

    /// The HTTPS addresses it listens on.
    pub fn https_addrs(&self) -> &[SocketAddr] {
        &self.https
    }

    /// Stops the workers (connections still open are closed), as dropping
    /// it does.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// One worker thread: its runtime, its accept loops, until told to stop.
fn run_worker(
    proxy: Arc<Proxy>,
    worker: usize,
    sockets: Vec<(std::net::TcpListener, Option<TlsAcceptor>)>,
    mut stopped: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, worker, "cannot start a proxy worker's runtime");
            return;
        }
    };
    runtime.block_on(async move {
        for (socket, tls) in sockets {
            match TcpListener::from_std(socket) {
                Ok(listener) => {
                    tokio::spawn(accept(Arc::clone(&proxy), listener, tls, worker));
                }
                Err(error) => tracing::error!(%error, worker, "a proxy socket"),
            }
        }
        let _ = stopped.wait_for(|stop| *stop).await;
    });
}

async fn accept(proxy: Arc<Proxy>, listener: TcpListener, tls: Option<TlsAcceptor>, worker: usize) {
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, most likely: wait a moment
                // rather than spin.
                tracing::warn!(%error, "accepting an HTTP connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let proxy = Arc::clone(&proxy);
        match &tls {
            None => {
                tokio::spawn(serve_connection(
                    proxy, stream, client, "http", false, worker,
                ));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(proxy.limits.header_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            serve_connection(proxy, stream, client, "https", h2, worker).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%client, %error, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%client, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

async fn serve_connection<S>(
    proxy: Arc<Proxy>,
    stream: S,
    client: SocketAddr,
    proto: &'static str,
    h2: bool,
    worker: usize,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits: ProxyLimits = proxy.limits;
    proxy.metrics.connections(1);
    let service = {
        let proxy = Arc::clone(&proxy);
        service_fn(move |request| {
            let proxy = Arc::clone(&proxy);
            async move { Ok::<_, Infallible>(proxy.handle(request, client, proto, worker).await) }
        })
    };
    let io = TokioIo::new(stream);
    let served = if h2 {
        http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_head).unwrap_or(u32::MAX))
            .keep_alive_interval(Some(limits.header_timeout))
            .serve_connection(io, service)
            .await
    } else {
        http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .writev(false)
            .max_header_size(limits.max_head)
            .max_buf_size(limits.max_head.max(8192) * 2)
            .serve_connection(io, service)
            .with_upgrades()
            .await
    };
    if let Err(error) = served {
        tracing::debug!(%client, %error, "client connection ended");
    }
    proxy.metrics.connections(-1);
}
