//! The proxy's sockets and the HTTP server on each connection: HTTP/1.1 on
//! plain HTTP; on HTTPS, TLS (certificates by SNI) and then HTTP/2 or
//! HTTP/1.1 as the client's ALPN chose.
//!
//! A client gets [`ProxyLimits::header_timeout`] for its TLS handshake and
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
use tokio::task::JoinHandle;
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

/// Binds `addrs` for plain HTTP. An IPv6 wildcard takes only IPv6 (so it
/// can sit beside `0.0.0.0` on the same port). With `optional_v6`, an IPv6
/// address this host cannot have (no IPv6 here) is skipped with a warning:
/// the defaults ask for both families, a host may have one.
pub fn bind(
    addrs: &[SocketAddr],
    optional_v6: bool,
    flag: &'static str,
) -> Result<Vec<TcpListener>, ListenError> {
    let mut listeners = Vec::new();
    for &addr in addrs {
        match bind_one(addr) {
            Ok(listener) => listeners.push(listener),
            Err(source) if optional_v6 && addr.is_ipv6() && no_ipv6(&source) => {
                tracing::warn!(%addr, error = %source, "no IPv6 here: not listening on it ({flag})");
            }
            Err(source) => return Err(ListenError { addr, flag, source }),
        }
    }
    Ok(listeners)
}

fn no_ipv6(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::AddrNotAvailable
        || error.raw_os_error() == Some(libc::EAFNOSUPPORT)
}

fn bind_one(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// The proxy's accept loops, one per socket.
#[derive(Debug)]
pub struct Listeners {
    http: Vec<SocketAddr>,
    https: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Listeners {
    /// Serves `proxy` over plain HTTP on `http` and over TLS with `tls`
    /// on `https`.
    pub fn start(
        proxy: &Arc<Proxy>,
        http: Vec<TcpListener>,
        https: Vec<TcpListener>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Listeners {
        let addrs = |listeners: &[TcpListener]| {
            listeners
                .iter()
                .filter_map(|l| l.local_addr().ok())
                .collect()
        };
        let (http_addrs, https_addrs) = (addrs(&http), addrs(&https));
        let mut tasks: Vec<JoinHandle<()>> = http
            .into_iter()
            .map(|listener| tokio::spawn(accept(Arc::clone(proxy), listener, None)))
            .collect();
        if let Some(tls) = tls {
            let acceptor = TlsAcceptor::from(tls);
            tasks.extend(https.into_iter().map(|listener| {
                tokio::spawn(accept(Arc::clone(proxy), listener, Some(acceptor.clone())))
            }));
        }
        Listeners {
            http: http_addrs,
            https: https_addrs,
            tasks,
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

    /// Stops accepting (connections already open finish on their own).
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

async fn accept(proxy: Arc<Proxy>, listener: TcpListener, tls: Option<TlsAcceptor>) {
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
                tokio::spawn(serve_connection(proxy, stream, client, "http", false));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(proxy.limits.header_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            serve_connection(proxy, stream, client, "https", h2).await;
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
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits: ProxyLimits = proxy.limits;
    proxy.metrics.connections(1);
    let service = {
        let proxy = Arc::clone(&proxy);
        service_fn(move |request| {
            let proxy = Arc::clone(&proxy);
            async move { Ok::<_, Infallible>(proxy.handle(request, client, proto).await) }
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
