//! Round-trip time through a path: a UDP echo responder in the server
//! namespace and a client that sends small probes one at a time, each
//! waiting for its echo, timed with [`Instant`].

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::paths::Ends;

/// The responder's UDP port.
pub const PORT: u16 = 7777;
/// Probe size (a sequence number and padding).
const PROBE_LEN: usize = 64;
/// How long a probe waits for its echo before it counts as lost.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The round-trip times of one measurement.
#[derive(Clone, Debug, Default)]
pub struct Rtts {
    /// One per answered probe, in microseconds.
    pub micros: Vec<f64>,
    /// Probes whose echo never came (within [`PROBE_TIMEOUT`]).
    pub lost: usize,
}

impl Rtts {
    /// Adds `other`'s round trips and losses to these.
    pub fn append(&mut self, mut other: Rtts) {
        self.micros.append(&mut other.micros);
        self.lost += other.lost;
    }
}

/// A UDP echo responder running on a thread in the server namespace;
/// stopped and joined on drop.
pub struct Responder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    pub fn start(path: &impl Ends) -> Result<Responder> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let stopped = Arc::clone(&stop);
        let thread = path.server().spawn_thread(move || {
            let socket = match bind_responder() {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            echo(&socket, &stopped);
        })?;
        let responder = Responder {
            stop,
            thread: Some(thread),
        };
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| anyhow!("the echo responder did not start"))??;
        Ok(responder)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bind_responder() -> Result<UdpSocket> {
    let socket = UdpSocket::bind(("0.0.0.0", PORT)).context("echo responder: bind")?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .context("echo responder: set timeout")?;
    Ok(socket)
}

/// Sends every datagram back to where it came from until `stop` is set.
fn echo(socket: &UdpSocket, stop: &AtomicBool) {
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    }
}

/// A client socket in the client namespace, connected to the responder.
pub fn client_socket(server: SocketAddr, timeout: Duration) -> Result<UdpSocket> {
    let socket = UdpSocket::bind(("0.0.0.0", 0)).context("probe client: bind")?;
    socket
        .connect(server)
        .with_context(|| format!("probe client: connect {server}"))?;
    socket.set_read_timeout(Some(timeout))?;
    Ok(socket)
}

/// Sends probe `seq` and waits up to the socket's timeout for its echo
/// (older, late echoes are skipped). Returns the round-trip time, or `None`
/// if it was lost.
pub fn probe(socket: &UdpSocket, seq: u64) -> Result<Option<Duration>> {
    let mut msg = [0u8; PROBE_LEN];
    msg[..8].copy_from_slice(&seq.to_le_bytes());
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    socket.send(&msg).context("probe: send")?;
    loop {
        match socket.recv(&mut buf) {
            Ok(n) if n >= 8 && buf[..8] == msg[..8] => return Ok(Some(start.elapsed())),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(None)
            }
            // ECONNREFUSED: the ICMP of an earlier probe; keep waiting.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e).context("probe: receive"),
        }
    }
}

/// Probes `path` until one echo comes back, within `within`: for a tunnel
/// this completes the WireGuard handshake before anything is measured.
pub fn warm_up(path: &impl Ends, within: Duration) -> Result<()> {
    let _responder = Responder::start(path)?;
    let server = SocketAddr::from((path.server_ip(), PORT));
    path.lab().in_ns(path.client(), move || -> Result<()> {
        let socket = client_socket(server, Duration::from_millis(200))?;
        let deadline = Instant::now() + within;
        for seq in 0.. {
            if probe(&socket, seq)?.is_some() {
                return Ok(());
            }
            if Instant::now() >= deadline || crate::interrupted() {
                break;
            }
        }
        bail!("no echo from {server} within {within:?}: the path does not carry traffic")
    })?
}

/// Sends up to `count` probes one at a time, stopping early after `cap`.
pub fn measure(path: &impl Ends, count: usize, cap: Duration) -> Result<Rtts> {
    let _responder = Responder::start(path)?;
    let server = SocketAddr::from((path.server_ip(), PORT));
    path.lab().in_ns(path.client(), move || -> Result<Rtts> {
        let socket = client_socket(server, PROBE_TIMEOUT)?;
        let deadline = Instant::now() + cap;
        let mut rtts = Rtts::default();
        for seq in 0..count as u64 {
            if Instant::now() >= deadline {
                break;
            }
            if crate::interrupted() {
                bail!("interrupted");
            }
            match probe(&socket, seq)? {
                Some(rtt) => rtts.micros.push(rtt.as_secs_f64() * 1e6),
                None => rtts.lost += 1,
            }
        }
        if rtts.micros.is_empty() {
            bail!("none of {} probes to {server} was answered", rtts.lost);
        }
        Ok(rtts)
    })?
}
