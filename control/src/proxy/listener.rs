//! The proxy's sockets and the HTTP/1.1 server on each connection.
//!
//! A client gets [`ProxyLimits::header_timeout`] to send each request's
//! head (a slowloris client is cut off, and so is an idle keep-alive
//! connection), a head of at most [`ProxyLimits::max_head`] bytes (hyper
//! answers 431 beyond), and its connection is served on a task of its own,
//! so one slow client never holds up another.

use super::{Proxy, ProxyLimits};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A socket the proxy could not listen on.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for HTTP on {addr} ({flag}): {source}")]
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
pub fn bind(addrs: &[SocketAddr], optional_v6: bool) -> Result<Vec<TcpListener>, ListenError> {
    let mut listeners = Vec::new();
    for &addr in addrs {
        match bind_one(addr) {
            Ok(listener) => listeners.push(listener),
            Err(source) if optional_v6 && addr.is_ipv6() && no_ipv6(&source) => {
                tracing::warn!(%addr, error = %source, "no IPv6 here: not listening for HTTP on it");
            }
            Err(source) => {
                return Err(ListenError {
                    addr,
                    flag: "--http-listen",
                    source,
                })
            }
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
    addrs: Vec<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Listeners {
    /// Serves `proxy` over plain HTTP on `listeners`.
    pub fn start(proxy: &Arc<Proxy>, listeners: Vec<TcpListener>) -> Listeners {
        let addrs = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let tasks = listeners
            .into_iter()
            .map(|listener| tokio::spawn(accept(Arc::clone(proxy), listener)))
            .collect();
        Listeners { addrs, tasks }
    }

    /// The addresses it listens on.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops accepting (connections already open finish on their own).
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

async fn accept(proxy: Arc<Proxy>, listener: TcpListener) {
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
        tokio::spawn(serve_connection(Arc::clone(&proxy), stream, client));
    }
}

async fn serve_connection(proxy: Arc<Proxy>, stream: tokio::net::TcpStream, client: SocketAddr) {
    let limits: ProxyLimits = proxy.limits;
    proxy.metrics.connections(1);
    let service = {
        let proxy = Arc::clone(&proxy);
        service_fn(move |request| {
            let proxy = Arc::clone(&proxy);
            async move { Ok::<_, Infallible>(proxy.handle(request, client, "http").await) }
        })
    };
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_head.max(8192))
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades()
        .await;
    if let Err(error) = served {
        tracing::debug!(%client, %error, "client connection ended");
    }
    proxy.metrics.connections(-1);
}
