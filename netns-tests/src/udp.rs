//! UDP traffic helpers for tests, run inside namespaces via
//! [`crate::Lab::in_ns`]: a reflector on the public side that tells a client
//! its reflexive address (what a rendezvous server observes), a simultaneous
//! hole-punch loop, and "don't fragment" sockets for path MTU tests.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::Netns;

/// Largest UDP payload tests send.
const BUF: usize = 65_536;

/// A UDP server in a namespace that answers every datagram with the source
/// address it saw, as text (`"203.0.113.11:40000"`). Stops on drop.
#[derive(Debug)]
pub struct Reflector {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reflector {
    /// Binds `addr` inside `ns` and starts answering.
    pub fn start(ns: &Netns, addr: SocketAddr) -> Result<Reflector> {
        let sock = ns
            .run_in(|| UdpSocket::bind(addr))?
            .with_context(|| format!("reflector: bind {addr} in {ns}"))?;
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("reflector-{addr}"))
            .spawn(move || {
                let mut buf = [0u8; 1500];
                while !flag.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = sock.recv_from(&mut buf) {
                        // A lost answer is retried by the client.
                        let _ = sock.send_to(from.to_string().as_bytes(), from);
                    }
                }
            })
            .context("cannot spawn reflector thread")?;
        Ok(Reflector {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Reflector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Asks the reflector at `reflector` which address `sock`'s packets come
/// from (retrying every 100 ms until `timeout`).
pub fn reflexive_addr(
    sock: &UdpSocket,
    reflector: SocketAddr,
    timeout: Duration,
) -> Result<SocketAddr> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 256];
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    while Instant::now() < deadline {
        sock.send_to(b"who", reflector)
            .with_context(|| format!("send to reflector {reflector}"))?;
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from == reflector {
                let text =
                    std::str::from_utf8(&buf[..n]).context("reflector answer is not UTF-8")?;
                return text
                    .parse()
                    .with_context(|| format!("reflector answer {text:?} is not an address"));
            }
        }
    }
    bail!("no answer from reflector {reflector} within {timeout:?}")
}

/// Sends `attempts` punch datagrams to `peer`, `interval` apart, listening
/// in between; returns how many datagrams arrived from `peer`.
pub fn punch(sock: &UdpSocket, peer: SocketAddr, attempts: u32, interval: Duration) -> Result<u32> {
    let mut buf = [0u8; 1500];
    let mut got = 0;
    for _ in 0..attempts {
        // A send can fail transiently (ICMP errors reported on the socket);
        // that is part of what a punch goes through.
        let _ = sock.send_to(b"punch", peer);
        let until = Instant::now() + interval;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left))?;
            match sock.recv_from(&mut buf) {
                Ok((_, from)) if from == peer => got += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    Ok(got)
}

/// Sets "don't fragment" with no local fragmentation
/// (`IP_MTU_DISCOVER = IP_PMTUDISC_DO`): oversized sends fail with EMSGSIZE
/// and the kernel honours ICMP "fragmentation needed".
pub fn set_dont_fragment(sock: &UdpSocket) -> Result<()> {
    let v: libc::c_int = libc::IP_PMTUDISC_DO;
    // SAFETY: setsockopt with a pointer to a c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("setsockopt IP_MTU_DISCOVER");
    }
    Ok(())
}

/// Receives datagrams until none arrives for `quiet`; returns their
/// payload lengths in arrival order.
pub fn drain(sock: &UdpSocket, quiet: Duration) -> Result<Vec<usize>> {
    let mut buf = vec![0u8; BUF];
    let mut lens = Vec::new();
    sock.set_read_timeout(Some(quiet))?;
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        lens.push(n);
    }
    Ok(lens)
}

/// Whether an I/O error is EMSGSIZE ("Message too long").
pub fn is_emsgsize(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EMSGSIZE)
}

/// Round-trip times of `probes` sequential datagrams to an echoing server
/// (e.g. a [`Reflector`]); a probe unanswered within `timeout` is an error.
pub fn round_trips(
    sock: &UdpSocket,
    server: SocketAddr,
    probes: u32,
    timeout: Duration,
) -> Result<Vec<Duration>> {
    let mut buf = [0u8; 1500];
    let mut rtts = Vec::new();
    for i in 0..probes {
        let sent = Instant::now();
        sock.send_to(&i.to_be_bytes(), server)
            .with_context(|| format!("probe to {server}"))?;
        loop {
            let left = timeout.checked_sub(sent.elapsed()).unwrap_or_default();
            if left.is_zero() {
                bail!("probe {i} to {server} unanswered within {timeout:?}");
            }
            sock.set_read_timeout(Some(left))?;
            if let Ok((_, from)) = sock.recv_from(&mut buf) {
                if from == server {
                    rtts.push(sent.elapsed());
                    break;
                }
            }
        }
    }
    Ok(rtts)
}

/// The median of some durations (zero if empty).
pub fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d.get(d.len() / 2).copied().unwrap_or_default()
}
