//! The relay's tokio driver: one UDP socket into [`Relay`], and `/metrics`.
//!
//! It holds no protocol state: each datagram goes to
//! [`Relay::handle_datagram`] with the current time, a forwarded frame goes
//! straight back out of the same buffer, queued answers are drained after
//! every input, and [`Relay::handle_timeout`] runs when
//! [`Relay::poll_timeout`] passes. Input and output are batched: up to
//! [`BATCH`] messages per `recvmmsg` and `sendmmsg`, each message a GRO or
//! GSO run where the kernel allows.

use crate::metrics::{IoCounters, Snapshot};
use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use warren_relay_proto::{Config, ControlKey, Relay};
use warren_udp::{gso_runs, GsoSocket, Outgoing, Received, BATCH, MAX_GSO_BYTES};
use warren_wire::PublicKey;

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
    #[error("the relay's secret seed: {0}")]
    Random(#[from] warren_os::RandomError),
    /// The relay's own thread could not be started, or died.
    #[error("the relay's thread: {0}")]
    Thread(std::io::Error),
}

/// Bytes one burst of reads may take in before the loop looks at its other
/// inputs (timers, `/metrics`) again.
const BURST_BYTES: usize = 512 * 1024;

/// Bytes per receive slot: one GRO message can fill a UDP length.
const SLOT: usize = MAX_GSO_BYTES;

/// The receive buffers: [`BATCH`] slots, each one message of a `recvmmsg`.
struct Inbox {
    buf: Vec<u8>,
    received: Vec<Received>,
    /// The current batch's frames to forward (kept to reuse its memory).
    forwarded: Vec<Forwarded>,
}

impl Inbox {
    fn new() -> Self {
        let empty = Received {
            len: 0,
            from: SocketAddr::from(([0, 0, 0, 0], 0)),
            segment_size: 0,
        };
        Inbox {
            buf: vec![0; SLOT * BATCH],
            received: vec![empty; BATCH],
            forwarded: Vec::new(),
        }
    }

    async fn receive(&mut self, socket: &GsoSocket) -> std::io::Result<usize> {
        socket
            .recv_many(&mut self.buf, SLOT, &mut self.received)
            .await
    }

    fn try_receive(&mut self, socket: &GsoSocket) -> std::io::Result<usize> {
        socket.try_recv_many(&mut self.buf, SLOT, &mut self.received)
    }
}

/// A frame the core rewrote for forwarding, where it sits in the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Forwarded {
    dst: SocketAddr,
    start: usize,
    len: usize,
}

/// Cuts `forwarded` (sorted by destination; `datagrams[i]` holds frame
/// `i`) into messages: each the longest run of frames to one destination
/// that can leave in one GSO send ([`gso_runs`]).
fn runs<'a>(forwarded: &[Forwarded], datagrams: &'a [IoSlice<'a>]) -> Vec<Outgoing<'a>> {
    gso_runs(forwarded.iter().map(|frame| (frame.dst, frame.len)))
        .map(|run| Outgoing {
            dst: run.dst,
            datagrams: datagrams.get(run.datagrams).unwrap_or_default(),
        })
        .collect()
}

/// A bound relay, ready to [`Server::run`].
pub struct Server {
    socket: GsoSocket,
    metrics: Option<TcpListener>,
    relay: Relay,
    io: IoCounters,
    revocations: (
        tokio::sync::mpsc::UnboundedSender<Revocation>,
        tokio::sync::mpsc::UnboundedReceiver<Revocation>,
    ),
}

/// A key to refuse, and for how long.
type Revocation = (PublicKey, Duration);

/// Revokes keys on a running [`Server`] from the same process (the
/// control plane's embedded relay, when a node is removed).
#[derive(Debug, Clone)]
pub struct Revoker(tokio::sync::mpsc::UnboundedSender<Revocation>);

impl Revoker {
    /// Ends `key`'s session and refuses the key for `hold` (longer than
    /// any ticket the control plane gave it). False if the relay stopped.
    pub fn revoke(&self, key: PublicKey, hold: Duration) -> bool {
        self.0.send((key, hold)).is_ok()
    }
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
        let seed = warren_os::random::<32>()?;
        Ok(Server {
            socket,
            metrics,
            relay: Relay::new(options.config, options.control_key, seed, Instant::now()),
            io: IoCounters::default(),
            revocations: tokio::sync::mpsc::unbounded_channel(),
        })
    }

    /// A handle that revokes keys while the relay runs.
    pub fn revoker(&self) -> Revoker {
        Revoker(self.revocations.0.clone())
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
        let mut inbox = Inbox::new();
        loop {
            let deadline = tokio::time::Instant::from_std(self.relay.poll_timeout());
            tokio::select! {
                () = &mut shutdown => break,
                received = inbox.receive(&self.socket) => match received {
                    Ok(count) => self.forward_burst(&mut inbox, count).await,
                    Err(error) => tracing::debug!(%error, "receive failed"),
                },
                () = tokio::time::sleep_until(deadline) => self.relay.handle_timeout(Instant::now()),
                Some((key, hold)) = self.revocations.1.recv() => self.relay.revoke(key, Instant::now() + hold),
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

    /// Handles what arrived (the first `recvmmsg` already done, then
    /// whatever else is waiting, up to [`BURST_BYTES`]). Each frame is
    /// rewritten in place by the core; then the forwarded frames are
    /// grouped by destination, in arrival order, into GSO runs of
    /// equal-sized frames (gathered from wherever they sit in the inbox),
    /// and one `sendmmsg` sends a batch of runs. Bulk traffic from a node
    /// that sends one datagram per call still leaves in 64-frame sends.
    async fn forward_burst(&mut self, inbox: &mut Inbox, first: usize) {
        let mut count = first;
        let mut taken = 0;
        while count > 0 {
            let (now, wall) = (Instant::now(), SystemTime::now());
            inbox.forwarded.clear();
            for slot in 0..count {
                let Some(received) = inbox.received.get(slot).copied() else {
                    break;
                };
                let start = slot * SLOT;
                let Some(message) = inbox.buf.get_mut(start..start + received.len) else {
                    continue;
                };
                self.io.received_bytes += received.len as u64;
                taken += received.len;
                self.forward_message(now, wall, received, message, start, &mut inbox.forwarded);
            }
            // Stable: each destination's frames keep their order.
            inbox.forwarded.sort_by_key(|frame| frame.dst);
            let datagrams: Vec<IoSlice<'_>> = inbox
                .forwarded
                .iter()
                .map(|frame| {
                    IoSlice::new(
                        inbox
                            .buf
                            .get(frame.start..frame.start + frame.len)
                            .unwrap_or_default(),
                    )
                })
                .collect();
            let outgoing = runs(&inbox.forwarded, &datagrams);
            self.io.send_errors += self.socket.send_many(&outgoing).await as u64;
            count = if taken < BURST_BYTES {
                inbox.try_receive(&self.socket).unwrap_or(0)
            } else {
                0
            };
        }
    }

    /// Hands each frame of one received message (a datagram or a GRO run
    /// from one sender, at `offset` in the inbox) to the core, and notes
    /// where the forwarded ones go.
    fn forward_message(
        &mut self,
        now: Instant,
        wall: SystemTime,
        received: Received,
        message: &mut [u8],
        offset: usize,
        forwarded: &mut Vec<Forwarded>,
    ) {
        let size = received.segment_size.max(1);
        for (i, frame) in message.chunks_mut(size).enumerate() {
            self.io.received_datagrams += 1;
            let len = frame.len();
            match self.relay.handle_datagram(now, wall, received.from, frame) {
                Ok(Some(dst)) => forwarded.push(Forwarded {
                    dst,
                    start: offset + i * size,
                    len,
                }),
                Ok(None) => {}
                Err(dropped) => {
                    tracing::trace!(from = %received.from, reason = %dropped.reason, "dropped");
                }
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
    use tokio::net::UdpSocket;
    use warren_relay_proto::client::RelayClient;
    use warren_relay_proto::SigningKey;
    use warren_udp::MAX_GSO_SEGMENTS;

    /// Frames to one destination leave in as few GSO sends as the kernel
    /// allows: a shorter frame ends a run, and so do the segment and byte
    /// caps; frames to another destination start their own.
    #[test]
    fn forwarded_frames_are_cut_into_gso_runs() {
        let a: SocketAddr = "192.0.2.1:1".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:1".parse().unwrap();
        let mut lens = vec![(a, 1400); 3];
        lens.push((a, 100));
        lens.push((a, 1400));
        lens.extend(vec![(b, 500); MAX_GSO_SEGMENTS + 1]);
        let frames: Vec<Forwarded> = lens
            .iter()
            .enumerate()
            .map(|(i, (dst, len))| Forwarded {
                dst: *dst,
                start: i * 2048,
                len: *len,
            })
            .collect();
        let bytes = vec![0u8; 2048];
        let datagrams: Vec<IoSlice<'_>> = frames
            .iter()
            .map(|f| IoSlice::new(&bytes[..f.len]))
            .collect();
        let cut: Vec<(SocketAddr, usize)> = runs(&frames, &datagrams)
            .iter()
            .map(|out| (out.dst, out.datagrams.len()))
            .collect();
        assert_eq!(cut, vec![(a, 4), (a, 1), (b, MAX_GSO_SEGMENTS), (b, 1)]);

        // 1400-byte frames: the 64 KiB UDP length caps a run at 46.
        let big: Vec<Forwarded> = (0..50)
            .map(|i| Forwarded {
                dst: a,
                start: i * 2048,
                len: 1400,
            })
            .collect();
        let datagrams: Vec<IoSlice<'_>> =
            big.iter().map(|_| IoSlice::new(&bytes[..1400])).collect();
        let sizes: Vec<usize> = runs(&big, &datagrams)
            .iter()
            .map(|out| out.datagrams.len())
            .collect();
        assert_eq!(sizes, vec![MAX_GSO_BYTES / 1400, 50 - MAX_GSO_BYTES / 1400]);
    }

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
            let private = warren_wire::PrivateKey::from_bytes([n; 32]);
            let key = private.public_key();
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let client = RelayClient::new(
                relay_addr,
                &private,
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
