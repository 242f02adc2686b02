//! Shared pieces of the device end-to-end tests: a configured pair of
//! WireGuard interfaces, TCP echo transfers with content checks, warren's
//! drop counters, and a capture of datagrams on the wire for replaying.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use warren_device::stats::{query_stats, DropReport};
use warren_netns_tests::{start_wg, two_hosts, KeyPair, Lab, Netns, TwoHosts, WgIface, WgImpl};

/// The WireGuard port every lab interface listens on.
pub const WG_PORT: u16 = 51820;
/// The TCP port of the echo server inside the tunnel.
pub const ECHO_PORT: u16 = 5201;
/// Tunnel MTU used by the tests.
pub const MTU: u32 = 1420;

/// Two hosts on a link, each with a WireGuard interface that has the other as peer.
pub struct Pair {
    pub hosts: TwoHosts,
    pub a: WgIface,
    pub b: WgIface,
    pub key_a: KeyPair,
    pub key_b: KeyPair,
}

/// Builds a [`Pair`]: `a` runs `imp_a` with tunnel address 10.9.0.1, `b`
/// runs `imp_b` with 10.9.0.2, each knowing the other's endpoint.
pub fn pair(lab: &Lab, imp_a: WgImpl, imp_b: WgImpl) -> Result<Pair> {
    let hosts = two_hosts(lab)?;
    let a = start_wg(lab, &hosts.a.ns, imp_a, "10.9.0.1/24", MTU)?;
    let b = start_wg(lab, &hosts.b.ns, imp_b, "10.9.0.2/24", MTU)?;
    let (key_a, key_b) = a.pair_with(hosts.a.ip, &b, hosts.b.ip, WG_PORT, lab.dir())?;
    Ok(Pair {
        hosts,
        a,
        b,
        key_a,
        key_b,
    })
}

/// Deterministic pseudo-random bytes (xorshift), so content can be checked.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Starts a TCP echo server on `0.0.0.0:ECHO_PORT` inside `ns` that serves
/// one connection: everything received is sent back. Returns bytes echoed.
pub fn echo_server(ns: &Netns) -> Result<JoinHandle<Result<u64>>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = ns.spawn_thread(move || -> Result<u64> {
        let listener = TcpListener::bind(("0.0.0.0", ECHO_PORT)).context("echo bind")?;
        let _ = ready_tx.send(());
        let (mut conn, _) = listener.accept().context("echo accept")?;
        conn.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut writer = conn.try_clone()?;
        let copied = std::io::copy(&mut conn, &mut writer).context("echo copy")?;
        writer.shutdown(std::net::Shutdown::Write)?;
        Ok(copied)
    })?;
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .context("echo server did not start")?;
    Ok(handle)
}

/// Connects from `ns` to `server:ECHO_PORT` (retrying while the first
/// handshake completes), sends `data`, reads the echo back and checks it is
/// identical. `progress` counts echoed bytes as they arrive.
pub fn echo_transfer(
    ns: &Netns,
    server: Ipv4Addr,
    data: Arc<Vec<u8>>,
    progress: Arc<AtomicU64>,
) -> Result<JoinHandle<Result<()>>> {
    ns.spawn_thread(move || -> Result<()> {
        let addr = SocketAddr::from((server, ECHO_PORT));
        let deadline = Instant::now() + Duration::from_secs(15);
        let conn = loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(3)) {
                Ok(conn) => break conn,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("connect {addr}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e).context(format!("connecting to {addr}")),
            }
        };
        conn.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut writer = conn.try_clone()?;
        let to_send = Arc::clone(&data);
        let sender = std::thread::spawn(move || -> std::io::Result<()> {
            for chunk in to_send.chunks(64 * 1024) {
                writer.write_all(chunk)?;
            }
            writer.shutdown(std::net::Shutdown::Write)
        });
        let mut reader = conn;
        let mut received = Vec::with_capacity(data.len());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf).context("reading the echo")?;
            if n == 0 {
                break;
            }
            received.extend_from_slice(&buf[..n]);
            progress.store(received.len() as u64, Ordering::Relaxed);
        }
        sender
            .join()
            .map_err(|_| anyhow::anyhow!("sender panicked"))?
            .context("sending")?;
        if received.len() != data.len() {
            bail!("echo returned {} of {} bytes", received.len(), data.len());
        }
        if received != *data {
            let at = received.iter().zip(data.iter()).position(|(x, y)| x != y);
            bail!("echoed content differs from what was sent (first difference at byte {at:?})");
        }
        Ok(())
    })
}

/// Runs a complete echo transfer of `len` bytes from `client` to `server_ns`.
pub fn transfer(client: &Netns, server_ns: &Netns, server_ip: Ipv4Addr, len: usize) -> Result<()> {
    let server = echo_server(server_ns)?;
    let data = Arc::new(pattern(len as u64, len));
    let client = echo_transfer(client, server_ip, data, Arc::new(AtomicU64::new(0)))?;
    client
        .join()
        .map_err(|_| anyhow::anyhow!("client panicked"))??;
    let echoed = server
        .join()
        .map_err(|_| anyhow::anyhow!("server panicked"))??;
    assert_eq!(echoed, len as u64);
    Ok(())
}

/// warren's drop counters for an interface (its `stats=1` answer).
pub fn warren_stats(iface: &WgIface) -> Result<DropReport> {
    Ok(query_stats(&warren_netns_tests::wg::uapi_socket(
        &iface.name,
    ))?)
}

/// Captures UDP payloads leaving `ns` from `src` towards port `dst_port`
/// (an AF_PACKET socket sees outgoing packets too), until `count` payloads
/// whose first byte is `message_type` were seen or `timeout` passes.
pub fn capture_udp_payloads(
    ns: &Netns,
    src: Ipv4Addr,
    dst_port: u16,
    message_type: u8,
    count: usize,
    timeout: Duration,
) -> Result<JoinHandle<Vec<Vec<u8>>>> {
    ns.spawn_thread(move || {
        let mut captured = Vec::new();
        // SAFETY: plain socket(2) call; the fd is owned below and closed on return.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM,
                // ETH_P_ALL: only "all" taps see outgoing packets.
                i32::from((libc::ETH_P_ALL as u16).to_be()),
            )
        };
        if fd < 0 {
            return captured;
        }
        // SAFETY: fd was just returned by socket(2) and is owned only here.
        let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let mut file = std::fs::File::from(socket);
        let deadline = Instant::now() + timeout;
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: setsockopt with a valid timeval of the declared size.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        let mut buf = vec![0u8; 65536];
        while captured.len() < count && Instant::now() < deadline {
            let Ok(n) = file.read(&mut buf) else {
                continue;
            };
            let packet = &buf[..n];
            if let Some(payload) = udp_payload(packet, src, dst_port) {
                if payload.first() == Some(&message_type) {
                    captured.push(payload.to_vec());
                }
            }
        }
        captured
    })
}

fn udp_payload(packet: &[u8], src: Ipv4Addr, dst_port: u16) -> Option<&[u8]> {
    if packet.len() < 28 || packet[0] >> 4 != 4 || packet[9] != 17 {
        return None;
    }
    let header = usize::from(packet[0] & 0x0f) * 4;
    if packet[12..16] != src.octets() {
        return None;
    }
    let udp = packet.get(header..)?;
    if udp.len() < 8 || u16::from_be_bytes([udp[2], udp[3]]) != dst_port {
        return None;
    }
    udp.get(8..)
}
