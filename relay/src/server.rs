//! The relay's tokio driver: one UDP socket into [`Relay`], and `/metrics`.
//!
//! It holds no protocol state: each datagram goes to
//! [`Relay::handle_datagram`] with the current time, a forwarded frame goes
//! straight back out of the same buffer, queued answers are drained after
//! every input, and [`Relay::handle_timeout`] runs when
//! [`Relay::poll_timeout`] passes. One datagram at a time for now (batched
//! I/O comes with the forwarding benchmark).

use crate::core::{Config, Relay};
use crate::crypto::ControlKey;
use crate::metrics::{IoCounters, Snapshot};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use warren_udp::{GsoSocket, Received};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// How long a `/metrics` client may take to send its request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest HTTP request head read from a metrics client.
const MAX_HTTP_REQUEST: usize = 8 * 1024;

/// What the relay server needs.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// UDP address to serve nodes on.
    pub listen: SocketAddr,
    /// TCP address for `/metrics`, if any.
    pub metrics: Option<SocketAddr>,
    /// The control plane's ticket-signing public key.
    pub control_key: ControlKey,
    /// Limits.
    pub config: Config,
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The UDP socket could not be bound.
    #[error("cannot listen on UDP {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The metrics socket could not be bound.
    #[error("cannot serve metrics on TCP {addr}: {source}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// No randomness for the relay's secret seed.
    #[error("cannot read random bytes for the relay's secret seed")]
    Random,
}

/// Bytes one burst of reads may take in before the loop looks at its other
/// inputs (timers, `/metrics`) again.
const BURST_BYTES: usize = 512 * 1024;

/// A bound relay, ready to [`Server::run`].
pub struct Server {
    socket: GsoSocket,
    metrics: Option<TcpListener>,
    relay: Relay,
    io: IoCounters,
}

impl Server {
    /// Binds the sockets and creates the core with a fresh random seed.
    pub async fn bind(options: ServerOptions) -> Result<Server, ServerError> {
        let socket =
            GsoSocket::bind_addr(options.listen).map_err(|source| ServerError::Listen {
                addr: options.listen,
                source,
            })?;
        let metrics = match options.metrics {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Metrics { addr, source })?,
            ),
            None => None,
        };
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
            .map_err(|_| ServerError::Random)?;
        Ok(Server {
            socket,
            metrics,
            relay: Relay::new(options.config, options.control_key, seed, Instant::now()),
            io: IoCounters::default(),
        })
    }

    /// The UDP address nodes reach the relay at.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The `/metrics` address, if serving metrics.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let deadline = tokio::time::Instant::from_std(self.relay.poll_timeout());
            tokio::select! {
                () = &mut shutdown => break,
                received = self.socket.recv_segments(&mut buf) => match received {
                    Ok(first) => self.forward_burst(first, &mut buf).await,
                    Err(error) => tracing::debug!(%error, "receive failed"),
                },
                () = tokio::time::sleep_until(deadline) => self.relay.handle_timeout(Instant::now()),
                accepted = accept(self.metrics.as_ref()) => match accepted {
                    Ok(stream) => {
                        let body = self.snapshot().render();
                        tokio::spawn(serve_metrics(stream, body));
                    }
                    Err(error) => tracing::debug!(%error, "metrics accept failed"),
                },
            }
            while let Some(transmit) = self.relay.poll_transmit() {
                if let Err(error) = self.socket.send_to(&transmit.payload, transmit.dst).await {
                    self.io.send_errors += 1;
                    tracing::debug!(dst = %transmit.dst, %error, "send failed");
                }
            }
        }
        tracing::info!("relay stopped");
    }

    /// Handles what arrived (the first read already done, then whatever else
    /// is waiting, up to [`BURST_BYTES`]): each frame is rewritten in place
    /// by the core, and runs of equal-sized frames to one destination leave
    /// in one GSO send. A GRO read holds frames from one sender, which in
    /// bulk all go to one peer: one read in, one send out.
    async fn forward_burst(&mut self, first: Received, buf: &mut [u8]) {
        let mut next = Some(first);
        let mut taken = 0;
        while let Some(received) = next.take() {
            self.io.received_bytes += received.len as u64;
            let (now, wall) = (Instant::now(), SystemTime::now());
            let size = received.segment_size.max(1);
            let batch = buf.get_mut(..received.len).unwrap_or_default();
            // (destination, start, segment size, length) of the run being built.
            let mut run: Option<(SocketAddr, usize, usize, usize)> = None;
            let mut runs = Vec::new();
            for (i, frame) in batch.chunks_mut(size).enumerate() {
                self.io.received_datagrams += 1;
                let len = frame.len();
                let from = received.from;
                match self.relay.handle_datagram(now, wall, from, frame) {
                    Ok(Some(dst)) => {
                        let start = i * size;
                        run = match run {
                            Some((d, s, seg, l))
                                if d == dst && len <= seg && s + l == start && l % seg == 0 =>
                            {
                                Some((d, s, seg, l + len))
                            }
                            other => {
                                runs.extend(other);
                                Some((dst, start, len, len))
                            }
                        };
                    }
                    Ok(None) => runs.extend(run.take()),
                    Err(dropped) => {
                        runs.extend(run.take());
                        tracing::trace!(%from, reason = %dropped.reason, "dropped");
                    }
                }
            }
            runs.extend(run);
            for (dst, start, segment, len) in runs {
                let frames = batch.get(start..start + len).unwrap_or_default();
                if let Err(error) = self.socket.send_segments(frames, segment, dst).await {
                    self.io.send_errors += 1;
                    tracing::debug!(%dst, %error, "forward failed");
                }
            }
            taken += received.len;
            if taken < BURST_BYTES {
                next = self.socket.try_recv_segments(buf).ok();
            }
        }
    }

    /// Everything `/metrics` reports, now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            counters: self.relay.metrics().clone(),
            io: self.io.clone(),
            sessions: self.relay.session_count(),
            max_sessions: self.relay.config().max_sessions,
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<TcpStream> {
    match listener {
        Some(listener) => listener.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// A minimal HTTP/1.1 responder: `GET /metrics` gets the text, anything
/// else a 404 or 405; the connection closes after one response.
async fn serve_metrics(mut stream: TcpStream, body: String) {
    let mut head = Vec::with_capacity(512);
    let read = tokio::time::timeout(HTTP_TIMEOUT, async {
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HTTP_REQUEST {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return;
    }
    let request_line = head
        .split(|b| *b == b'\n')
        .next()
        .map(|line| String::from_utf8_lossy(line).trim_end().to_owned())
        .unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, content_type, body) = match (method, path.split('?').next()) {
        ("GET", Some("/metrics")) => ("200 OK", "text/plain; version=0.0.4", body),
        ("GET", _) => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".into(),
        ),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET /metrics\n".into(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(HTTP_TIMEOUT, stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::RelayClient;
    use crate::crypto::SigningKey;
    use tokio::net::UdpSocket;
    use warren_wire::NodeKey;

    /// Two in-memory clients register with a real server on loopback,
    /// exchange a datagram, and `/metrics` counts it.
    #[tokio::test]
    async fn serves_nodes_and_metrics_on_loopback() {
        let signer = SigningKey::from_seed(&[3; 32]).unwrap();
        let server = Server::bind(ServerOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            metrics: Some("127.0.0.1:0".parse().unwrap()),
            control_key: signer.control_key(),
            config: Config::default(),
        })
        .await
        .unwrap();
        let relay_addr = server.local_addr().unwrap();
        let metrics_addr = server.metrics_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));

        let expires = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let mut nodes = Vec::new();
        for n in [1u8, 2] {
            let private = [n; 32];
            let key = NodeKey(
                boringtun::x25519::PublicKey::from(&boringtun::x25519::StaticSecret::from(private))
                    .to_bytes(),
            );
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let client = RelayClient::new(
                relay_addr,
                private,
                signer.mint(key, expires),
                Instant::now(),
            );
            nodes.push((socket, client));
        }
        let mut buf = vec![0u8; 2048];
        for (socket, client) in &mut nodes {
            for _ in 0..2 {
                let transmit = client.poll_transmit().unwrap();
                socket
                    .send_to(&transmit.payload, transmit.dst)
                    .await
                    .unwrap();
                let (n, from) = socket.recv_from(&mut buf).await.unwrap();
                client
                    .handle_datagram(Instant::now(), from, &buf[..n])
                    .unwrap();
            }
            assert_eq!(client.reflexive_addr(), Some(socket.local_addr().unwrap()));
        }
        let b_key = nodes[1].1.node_key();
        let mut frame = Vec::new();
        nodes[0]
            .1
            .encode_send(&b_key, b"hello", &mut frame)
            .unwrap();
        nodes[0].0.send_to(&frame, relay_addr).await.unwrap();
        let (n, from) = nodes[1].0.recv_from(&mut buf).await.unwrap();
        let a_key = nodes[0].1.node_key();
        let received = nodes[1]
            .1
            .handle_datagram(Instant::now(), from, &buf[..n])
            .unwrap();
        assert_eq!(
            received.map(|r| (r.src, r.payload.to_vec())),
            Some((a_key, b"hello".to_vec()))
        );

        let mut http = TcpStream::connect(metrics_addr).await.unwrap();
        http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        http.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.contains("\nwarren_relay_sessions 2\n"),
            "{response}"
        );
        assert!(
            response.contains("\nwarren_relay_forwarded_frames_total 1\n"),
            "{response}"
        );

        let _ = stop.send(());
        task.await.unwrap();
    }
}
