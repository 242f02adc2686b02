//! The relay and NAT traversal section: a `warren relay` on a public lab
//! host, warren devices behind NAT routers (iptables), and
//!
//! - the relay's forwarding rate for 1400- and 100-byte payloads against the
//!   same datagrams sent straight over the lab's links;
//! - round-trip latency and iperf3 TCP through a relayed tunnel against a
//!   direct one;
//! - the time from both devices registered with the relay to a direct path,
//!   per NAT pairing, over many trials.
//!
//! With a baseline binary ([`Plan::baseline`]), the forwarding rate and the
//! relay's latency are also measured on a second forwarding lab whose relay
//! (and the devices that register with it) run that binary, interleaved run
//! by run with the first; the tunnel and traversal parts run with the
//! binary under test only.
//!
//! Frames are built and read with `warren-wire`'s codec; keys are the raw
//! 32 bytes.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use warren_netns_tests::wg::{uapi_socket, warren_bin};
use warren_netns_tests::{
    wait_for_file, Host, Internet, KeyPair, Lab, Nat, Netns, Proc, Spawn, WgIface, WgImpl,
};
use warren_wire::frame::SEND_HEADER_LEN;
use warren_wire::{write_send_header, Frame, PublicKey};

use crate::latency::Rtts;
use crate::paths::Ends;

/// The relay's UDP port.
const RELAY_PORT: u16 = 3478;
/// The relay's metrics port.
const METRICS_PORT: u16 = 9478;
/// The devices' (and the blasters') UDP port.
const NODE_PORT: u16 = 51820;
/// The devices' MTU: warren's default, room for relay framing on 1500.
pub const TUNNEL_MTU: u32 = 1384;
/// The relay's per-node limits for the whole section: far above what it
/// can forward, so that they never cap a measurement.
pub const RATE_LIMIT: &str = "100G";
/// See [`RATE_LIMIT`].
pub const PACKET_LIMIT: &str = "10000000";
/// Payload sizes blasted through the relay (the WireGuard datagram a
/// `Send` frame carries).
pub const BLAST_SIZES: [usize; 2] = [1400, 100];
/// Datagram length of the relay ping-pong (a 100-byte payload in a frame).
pub const PING_PONG_LEN: usize = SEND_HEADER_LEN + 100;
/// How long a traversal trial waits for a direct path before it counts as
/// a failure.
pub const TRAVERSAL_TIMEOUT: Duration = Duration::from_secs(8);
/// Interval of the traversal trials' probes.
pub const POLL: Duration = Duration::from_millis(50);

/// A relay on a lab "internet" with its signing key; `bin` is the warren
/// binary that runs the relay, mints the tickets and runs the devices.
struct RelayNet {
    relay: Proc,
    relay_host: Host,
    net: Internet,
    signing_key: PathBuf,
    bin: PathBuf,
    lab: Lab,
}

impl RelayNet {
    fn new(tag: &str, bin: &Path) -> Result<RelayNet> {
        let lab = Lab::new(tag)?;
        let net = Internet::new(&lab)?;
        let relay_host = net.add_public_host(&lab, "relay")?;
        let signing_key = lab.dir().join("control.key");
        let key = Command::new(bin)
            .args(["relay", "keygen"])
            .output()
            .context("warren relay keygen")?;
        std::fs::write(&signing_key, &key.stdout)?;
        let mut pubkey = Command::new(bin)
            .args(["relay", "pubkey"])
            .stdin(std::fs::File::open(&signing_key)?)
            .output()
            .context("warren relay pubkey")?
            .stdout;
        pubkey.retain(|c| !c.is_ascii_whitespace());
        let control_key = String::from_utf8(pubkey)?;
        let listen = SocketAddr::from((relay_host.ip, RELAY_PORT)).to_string();
        let metrics = SocketAddr::from((relay_host.ip, METRICS_PORT)).to_string();
        let relay = lab.spawn(
            &relay_host.ns,
            Spawn::new(bin)
                .args(["relay", "--listen", &listen, "--control-key", &control_key])
                .args(["--metrics", &metrics])
                .args(["--rate-limit", RATE_LIMIT, "--packet-limit", PACKET_LIMIT])
                .name("relay"),
        )?;
        relay.wait_for_log("relay listening on", Duration::from_secs(10))?;
        Ok(RelayNet {
            relay,
            relay_host,
            net,
            signing_key,
            bin: bin.to_path_buf(),
            lab,
        })
    }

    fn relay_addr(&self) -> SocketAddr {
        SocketAddr::from((self.relay_host.ip, RELAY_PORT))
    }

    /// Starts `warren device up` on `host` with one peer and the relay.
    fn device(
        &self,
        host: &Host,
        key: &KeyPair,
        address: &str,
        peer: &KeyPair,
        peer_ip: &str,
        port: u16,
    ) -> Result<WgIface> {
        let lab = &self.lab;
        let name = lab.iface_name("wr");
        let dir = lab.subdir(&name)?;
        let config = dir.join("wg.conf");
        std::fs::write(
            &config,
            format!(
                "[Interface]\nPrivateKey = {}\nListenPort = {port}\n\n[Peer]\nPublicKey = {}\nAllowedIPs = {peer_ip}/32\n",
                key.private, peer.public
            ),
        )?;
        let ticket = Command::new(&self.bin)
            .args(["relay", "ticket", "--signing-key-file"])
            .arg(&self.signing_key)
            .args(["--node-key", &key.public, "--ttl", "2h"])
            .output()
            .context("warren relay ticket")?;
        if !ticket.status.success() {
            bail!(
                "warren relay ticket: {}",
                String::from_utf8_lossy(&ticket.stderr)
            );
        }
        let ticket_file = dir.join("ticket");
        std::fs::write(&ticket_file, &ticket.stdout)?;
        let proc = lab.spawn(
            &host.ns,
            Spawn::new(&self.bin)
                .args(["device", "up", &name, "--address", address])
                .args(["--mtu", &TUNNEL_MTU.to_string()])
                .arg("--config")
                .arg(config)
                .args(["--relay", &self.relay_addr().to_string(), "--ticket"])
                .arg(ticket_file)
                .name(format!("warren-{name}")),
        )?;
        wait_for_file(&uapi_socket(&name), Duration::from_secs(10))?;
        Ok(WgIface {
            ns: host.ns.clone(),
            name,
            imp: WgImpl::Warren,
            ip: address.split('/').next().unwrap_or_default().parse()?,
            proc,
        })
    }

    /// The relay's `warren_relay_forwarded_frames_total`.
    fn forwarded(&self) -> Result<u64> {
        let addr = SocketAddr::from((self.relay_host.ip, METRICS_PORT));
        let text = self
            .lab
            .in_ns(&self.relay_host.ns, move || -> Result<String> {
                let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
                stream.set_read_timeout(Some(Duration::from_secs(3)))?;
                stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n")?;
                let mut text = String::new();
                stream.read_to_string(&mut text)?;
                Ok(text)
            })??;
        Ok(text
            .lines()
            .find_map(|l| {
                l.strip_prefix("warren_relay_forwarded_frames_total ")?
                    .trim()
                    .parse()
                    .ok()
            })
            .unwrap_or(0))
    }
}

/// Polls both devices' logs until each says it registered with the relay.
fn wait_registered(devs: [&WgIface; 2], timeout: Duration) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if devs
            .iter()
            .all(|d| d.proc.log().contains("registered with relay"))
        {
            return Ok(Instant::now());
        }
        for d in devs {
            if !d.proc.is_running() {
                bail!("device died: {}", d.proc.describe());
            }
        }
        if Instant::now() >= deadline || crate::interrupted() {
            bail!("the devices did not both register with the relay within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Two warren devices behind NATs, knowing only the relay.
pub struct Pair {
    devs: Option<(WgIface, WgIface)>,
    keys: (KeyPair, KeyPair),
    a: Host,
    b: Host,
    rn: RelayNet,
    label: String,
}

impl Ends for Pair {
    fn lab(&self) -> &Lab {
        &self.rn.lab
    }
    fn client(&self) -> &Netns {
        &self.a.ns
    }
    fn server(&self) -> &Netns {
        &self.b.ns
    }
    fn server_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 9, 0, 2)
    }
    fn label(&self) -> &str {
        &self.label
    }
}

/// A NAT pairing of the traversal trials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pairing {
    ConeCone,
    CgnatCone,
    SymmetricCone,
    SymmetricSymmetric,
}

impl Pairing {
    pub fn name(self) -> &'static str {
        match self {
            Pairing::ConeCone => "cone ↔ cone",
            Pairing::CgnatCone => "CGNAT ↔ cone",
            Pairing::SymmetricCone => "symmetric ↔ cone",
            Pairing::SymmetricSymmetric => "symmetric ↔ symmetric",
        }
    }
}

impl Pair {
    /// The lab, its relay and two hosts behind `pairing`'s NATs; no devices yet.
    fn new(tag: &str, pairing: Pairing) -> Result<Pair> {
        let rn = RelayNet::new(tag, &warren_bin()?)?;
        let (nat_a, nat_b) = match pairing {
            Pairing::ConeCone => (Nat::Cone, Nat::Cone),
            Pairing::CgnatCone => (
                Nat::CarrierGrade(rn.net.add_carrier(&rn.lab, "isp")?),
                Nat::Cone,
            ),
            Pairing::SymmetricCone => (Nat::Symmetric, Nat::Cone),
            Pairing::SymmetricSymmetric => (Nat::Symmetric, Nat::Symmetric),
        };
        let a = rn.net.add_host(&rn.lab, "a", nat_a)?;
        let b = rn.net.add_host(&rn.lab, "b", nat_b)?;
        Ok(Pair {
            devs: None,
            keys: (KeyPair::generate()?, KeyPair::generate()?),
            a,
            b,
            rn,
            label: format!("warren {}", pairing.name()),
        })
    }

    /// (Re)starts both devices on `port`; returns when both registered.
    fn start(&mut self, port: u16) -> Result<(Instant, Instant)> {
        self.devs = None;
        let started = Instant::now();
        let (ka, kb) = &self.keys;
        let da = self
            .rn
            .device(&self.a, ka, "10.9.0.1/24", kb, "10.9.0.2", port)?;
        let db = self
            .rn
            .device(&self.b, kb, "10.9.0.2/24", ka, "10.9.0.1", port)?;
        let registered = wait_registered([&da, &db], Duration::from_secs(15))?;
        self.devs = Some((da, db));
        Ok((started, registered))
    }

    fn check_alive(&self) -> Result<()> {
        for d in self.devs.iter().flat_map(|(a, b)| [a, b]) {
            if !d.proc.is_running() {
                bail!("{}: device died: {}", self.label, d.proc.describe());
            }
        }
        Ok(())
    }

    fn pids(&self) -> Vec<u32> {
        self.devs
            .iter()
            .flat_map(|(a, b)| [a.proc.pid(), b.proc.pid()])
            .collect()
    }

    /// Probes through the tunnel every [`POLL`] from `since` until one round
    /// trip completes with the relay's forwarded counter unchanged across
    /// it; returns the time from `since` to that probe's send.
    fn time_to_direct(&self, since: Instant, timeout: Duration) -> Result<Option<Duration>> {
        let server = SocketAddr::from((self.server_ip(), crate::latency::PORT));
        let sock = self.rn.lab.in_ns(&self.a.ns, move || {
            crate::latency::client_socket(server, Duration::from_millis(300))
        })??;
        let deadline = since + timeout;
        let mut seq = 0u64;
        while Instant::now() < deadline {
            crate::check_interrupt()?;
            let sent = Instant::now();
            let before = self.rn.forwarded()?;
            let answered = crate::latency::probe(&sock, seq)?.is_some();
            seq += 1;
            if answered && self.rn.forwarded()? == before {
                return Ok(Some(sent.saturating_duration_since(since)));
            }
            let next = sent + POLL;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok(None)
    }
}

/// One blast: datagrams sent and received over `secs`.
#[derive(Clone, Copy, Debug)]
pub struct Blast {
    pub sent: u64,
    pub received: u64,
    pub secs: f64,
    /// The relay process's CPU seconds during the blast (0 for veth).
    pub relay_cpu: f64,
}

impl Blast {
    pub fn pps(&self) -> f64 {
        self.received as f64 / self.secs
    }
    pub fn gbps(&self, payload: usize) -> f64 {
        self.pps() * payload as f64 * 8.0 / 1e9
    }
    pub fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return 100.0;
        }
        100.0 * (1.0 - self.received as f64 / self.sent as f64).max(0.0)
    }
}

/// Everything the relay section measured.
#[derive(Debug, Default)]
pub struct RelayResults {
    /// Per payload size: runs through the relay and over the bare links.
    pub blasts: Vec<(usize, Vec<Blast>, Vec<Blast>)>,
    /// The baseline binary's relay, if one was given.
    pub baseline: Option<RelayBaseline>,
    /// One frame at a time through the relay and over the bare links.
    pub rtt_relay: crate::latency::Rtts,
    pub rtt_bare: crate::latency::Rtts,
    pub lat_relayed: crate::latency::Rtts,
    pub lat_direct: crate::latency::Rtts,
    pub tcp_relayed: Vec<f64>,
    pub tcp_direct: Vec<f64>,
    /// Per pairing: time from registered to direct per trial (`None`: not
    /// direct within [`TRAVERSAL_TIMEOUT`]), and time from start to both
    /// registered.
    pub traversal: Vec<(Pairing, Vec<Option<f64>>, Vec<f64>)>,
    pub seconds: u32,
    pub runs: usize,
    pub probes: usize,
    pub trials: usize,
}

/// What the baseline binary's relay did, in its own forwarding lab,
/// interleaved with the relay under test.
#[derive(Debug, Default)]
pub struct RelayBaseline {
    /// Per payload size (as in [`RelayResults::blasts`]): runs through the
    /// baseline relay. Its bare-link reference is the main lab's.
    pub blasts: Vec<(usize, Vec<Blast>)>,
    /// Ping-pong through the baseline relay, and over its lab's bare links.
    pub rtt_relay: Rtts,
    pub rtt_bare: Rtts,
}

fn big_buffers(sock: &UdpSocket) {
    let size: libc::c_int = 8 << 20;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF, libc::SO_RCVBUFFORCE] {
        // SAFETY: a valid fd and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                std::ptr::addr_of!(size).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// The forwarding lab: relay plus two public hosts whose relay sessions
/// were set up by warren devices, which are then stopped so that the
/// blaster and the counter can use their addresses (a session is bound to
/// the source address; `Send` frames carry no per-frame authentication).
struct Forwarding {
    s: Host,
    r: Host,
    r_key: [u8; 32],
    rn: RelayNet,
}

/// The raw key of a base64 WireGuard key as `wg` prints it.
fn decode_key(text: &str) -> Result<[u8; 32]> {
    let key = PublicKey::from_base64(text).with_context(|| format!("{text:?}"))?;
    Ok(*key.as_bytes())
}

/// A `Send` frame to `dst` with a `payload_len`-byte payload of zeros.
fn send_frame(dst: [u8; 32], payload_len: usize) -> Result<Vec<u8>> {
    let mut frame = vec![0u8; SEND_HEADER_LEN + payload_len];
    // The one place the bench names warren-wire's key type.
    write_send_header(&mut frame, &PublicKey::from_bytes(dst))
        .context("a Send frame is longer than its header")?;
    Ok(frame)
}

/// Turns a `Recv` frame in `datagram` in place into the `Send` that returns
/// its payload to its source; false (and nothing changed) for anything else.
fn recv_to_send_in_place(datagram: &mut [u8]) -> bool {
    let src = match Frame::decode(datagram) {
        Ok(Frame::Recv { src, .. }) => src,
        _ => return false,
    };
    write_send_header(datagram, &src).is_some()
}

impl Forwarding {
    fn new(tag: &str, bin: &Path) -> Result<Forwarding> {
        let rn = RelayNet::new(tag, bin)?;
        let s = rn.net.add_public_host(&rn.lab, "s")?;
        let r = rn.net.add_public_host(&rn.lab, "r")?;
        let (ks, kr) = (KeyPair::generate()?, KeyPair::generate()?);
        {
            let ds = rn.device(&s, &ks, "10.9.0.1/24", &kr, "10.9.0.2", NODE_PORT)?;
            let dr = rn.device(&r, &kr, "10.9.0.2/24", &ks, "10.9.0.1", NODE_PORT)?;
            wait_registered([&ds, &dr], Duration::from_secs(15))?;
            for d in [&ds, &dr] {
                d.proc.stop()?;
            }
        }
        Ok(Forwarding {
            s,
            r,
            r_key: decode_key(&kr.public)?,
            rn,
        })
    }

    /// Sends `payload`-byte datagrams (inside `Send` frames, so every
    /// datagram is [`SEND_HEADER_LEN`] bytes longer) as fast as one thread
    /// can for `secs`, through the relay or straight to the receiver.
    fn blast(&self, payload: usize, secs: u32, via_relay: bool) -> Result<Blast> {
        let frame = send_frame(self.r_key, payload)?;
        let frame_len = frame.len();
        let dst = if via_relay {
            self.rn.relay_addr()
        } else {
            SocketAddr::from((self.r.ip, NODE_PORT))
        };
        let relay = self.rn.relay_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let receiver = {
            let (stop, received) = (Arc::clone(&stop), Arc::clone(&received));
            self.r.ns.spawn_thread(move || -> Result<()> {
                let bound = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, NODE_PORT));
                let sock = match bound {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return Ok(());
                    }
                };
                big_buffers(&sock);
                sock.set_read_timeout(Some(Duration::from_millis(50)))?;
                let _ = ready_tx.send(Ok(()));
                let mut bufs = vec![[0u8; 2048]; BATCH];
                let ping = Frame::Ping { txid: 0 }.to_vec();
                let mut last_ping = Instant::now() - Duration::from_secs(10);
                let mut quiet_since: Option<Instant> = None;
                loop {
                    if via_relay && last_ping.elapsed() > Duration::from_secs(1) {
                        // Keeps the receiver's session fresh.
                        let _ = sock.send_to(&ping, relay);
                        last_ping = Instant::now();
                    }
                    match recv_batch(&sock, &mut bufs, frame_len) {
                        Ok(n) => {
                            received.fetch_add(n, Ordering::Relaxed);
                            quiet_since = None;
                        }
                        Err(_) => {
                            if stop.load(Ordering::Relaxed) {
                                let q = *quiet_since.get_or_insert_with(Instant::now);
                                if q.elapsed() > Duration::from_millis(200) {
                                    return Ok(());
                                }
                            }
                        }
                    }
                }
            })?
        };
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .context("the counter did not start")??;
        let relay_pid = [self.rn.relay.pid()];
        let cpu_before = crate::cpu::cpu_seconds(&relay_pid)?;
        let length = Duration::from_secs(u64::from(secs));
        let (sent, elapsed) = self
            .rn
            .lab
            .in_ns(&self.s.ns, move || -> Result<(u64, f64)> {
                let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, NODE_PORT))?;
                big_buffers(&sock);
                sock.connect(dst)?;
                let start = Instant::now();
                let mut sent = 0u64;
                loop {
                    sent += send_batch(&sock, &frame);
                    if start.elapsed() >= length {
                        break;
                    }
                }
                Ok((sent, start.elapsed().as_secs_f64()))
            })??;
        stop.store(true, Ordering::Relaxed);
        receiver
            .join()
            .map_err(|_| anyhow::anyhow!("the counter panicked"))??;
        let relay_cpu = if via_relay {
            crate::cpu::cpu_seconds(&relay_pid)? - cpu_before
        } else {
            0.0
        };
        if !self.rn.relay.is_running() {
            bail!("the relay died: {}", self.rn.relay.describe());
        }
        Ok(Blast {
            sent,
            received: received.load(Ordering::Relaxed),
            secs: elapsed,
            relay_cpu,
        })
    }
}

impl Forwarding {
    /// Round trips of one `probe_len`-byte frame at a time, alternating
    /// through the relay (out and back: two relay hops) and straight over
    /// the bare links, so both see the same moments of a noisy machine.
    /// The echo in the receiver's namespace turns each `Recv` back into a
    /// `Send` to its source; a bare probe is echoed as it is.
    fn ping_pong(&self, probes: usize, probe_len: usize) -> Result<(Rtts, Rtts)> {
        let relay = self.rn.relay_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let echo = {
            let stop = Arc::clone(&stop);
            self.r.ns.spawn_thread(move || -> Result<()> {
                let sock = match UdpSocket::bind((Ipv4Addr::UNSPECIFIED, NODE_PORT)) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return Ok(());
                    }
                };
                sock.set_read_timeout(Some(Duration::from_millis(50)))?;
                let _ = ready_tx.send(Ok(()));
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = sock.recv_from(&mut buf) else {
                        continue;
                    };
                    if from == relay {
                        recv_to_send_in_place(&mut buf[..n]);
                    }
                    let _ = sock.send_to(&buf[..n], from);
                }
                Ok(())
            })?
        };
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .context("the echo did not start")??;
        let bare = SocketAddr::from((self.r.ip, NODE_PORT));
        let r_key = self.r_key;
        let measured = self
            .rn
            .lab
            .in_ns(&self.s.ns, move || -> Result<(Rtts, Rtts)> {
                let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, NODE_PORT))?;
                sock.set_read_timeout(Some(Duration::from_millis(20)))?;
                let mut frame =
                    send_frame(r_key, probe_len.max(SEND_HEADER_LEN + 8) - SEND_HEADER_LEN)?;
                let seq_at = SEND_HEADER_LEN..SEND_HEADER_LEN + 8;
                let (mut via_relay, mut via_bare) = (Rtts::default(), Rtts::default());
                let mut buf = [0u8; 2048];
                for seq in 0..2 * probes as u64 {
                    let (dst, rtts) = if seq % 2 == 0 {
                        (relay, &mut via_relay)
                    } else {
                        (bare, &mut via_bare)
                    };
                    frame[seq_at.clone()].copy_from_slice(&seq.to_be_bytes());
                    let sent = Instant::now();
                    sock.send_to(&frame, dst)?;
                    loop {
                        if sent.elapsed() > Duration::from_secs(1) {
                            rtts.lost += 1;
                            break;
                        }
                        match sock.recv_from(&mut buf) {
                            Ok((n, _))
                                if n == frame.len()
                                    && buf.get(seq_at.clone()) == Some(&seq.to_be_bytes()[..]) =>
                            {
                                rtts.micros.push(sent.elapsed().as_secs_f64() * 1e6);
                                break;
                            }
                            _ => {}
                        }
                    }
                }
                Ok((via_relay, via_bare))
            });
        stop.store(true, Ordering::Relaxed);
        echo.join()
            .map_err(|_| anyhow::anyhow!("the echo panicked"))??;
        measured?
    }
}

/// Datagrams per `sendmmsg`/`recvmmsg` call of the blaster and the counter.
const BATCH: usize = 64;

/// Sends `frame` [`BATCH`] times on a connected socket with one
/// `sendmmsg`; returns how many the kernel took.
fn send_batch(sock: &UdpSocket, frame: &[u8]) -> u64 {
    let mut iov = libc::iovec {
        iov_base: frame.as_ptr() as *mut libc::c_void,
        iov_len: frame.len(),
    };
    // SAFETY: all-zero is a valid mmsghdr (null pointers, zero lengths).
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for m in &mut msgs {
        m.msg_hdr.msg_iov = std::ptr::addr_of_mut!(iov);
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: every header points at one live iovec over `frame`, which the
    // kernel only reads; the socket is connected, so no address is needed.
    let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), BATCH as _, 0) };
    u64::try_from(n).unwrap_or(0)
}

/// Receives up to [`BATCH`] datagrams with one `recvmmsg` (waiting for the
/// first up to the socket's timeout); returns how many were `len` long.
fn recv_batch(sock: &UdpSocket, bufs: &mut [[u8; 2048]], len: usize) -> std::io::Result<u64> {
    let mut iovs: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: all-zero is a valid mmsghdr.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for (m, iov) in msgs.iter_mut().zip(&mut iovs) {
        m.msg_hdr.msg_iov = iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    let count = iovs.len().min(BATCH);
    // SAFETY: each header points at its own iovec over a live, writable
    // buffer of the stated length.
    let n = unsafe {
        libc::recvmmsg(
            sock.as_raw_fd(),
            msgs.as_mut_ptr(),
            count as _,
            libc::MSG_WAITFORONE,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(msgs[..n as usize]
        .iter()
        .filter(|m| m.msg_len as usize == len)
        .count() as u64)
}

/// What the section runs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub runs: usize,
    pub seconds: u32,
    pub probes: usize,
    pub trials: usize,
    pub blast_seconds: u32,
    /// Another warren binary whose relay is measured beside this one's.
    pub baseline: Option<PathBuf>,
}

/// Where a forwarding blast goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leg {
    /// Through the relay under test.
    Relay,
    /// Through the baseline binary's relay (in its own lab).
    BaselineRelay,
    /// Straight to the receiver.
    Bare,
}

/// One blast of `size`-byte payloads along `leg`, with its progress line.
fn logged_blast(fwd: &Forwarding, size: usize, plan: &Plan, run: usize, leg: Leg) -> Result<Blast> {
    crate::check_interrupt()?;
    let b = fwd.blast(size, plan.blast_seconds, leg != Leg::Bare)?;
    eprintln!(
        "relay forwarding {size} B {} run {run}: {:.2} Gbit/s, {:.0} kpps, {:.2} % lost (sent {:.0} kpps)",
        match leg {
            Leg::Relay => "via relay",
            Leg::BaselineRelay => "via baseline relay",
            Leg::Bare => "bare links",
        },
        b.gbps(size),
        b.pps() / 1e3,
        b.loss_pct(),
        b.sent as f64 / b.secs / 1e3,
    );
    Ok(b)
}

fn log_ping_pong(what: &str, relayed: &Rtts, bare: &Rtts) {
    let pct = |r: &Rtts, p| crate::stats::percentile(&r.micros, p).unwrap_or(f64::NAN);
    eprintln!(
        "{what}: relay p50 {:.0} µs p99 {:.0} µs, bare p50 {:.0} µs p99 {:.0} µs",
        pct(relayed, 50.0),
        pct(relayed, 99.0),
        pct(bare, 50.0),
        pct(bare, 99.0),
    );
}

/// Waits (sending through the tunnel) until the pair's path is direct.
fn wait_direct(pair: &Pair) -> Result<()> {
    let since = Instant::now();
    match pair.time_to_direct(since, Duration::from_secs(20))? {
        Some(_) => Ok(()),
        None => bail!("{} did not go direct within 20 s", pair.label),
    }
}

/// Runs the whole section; progress lines on stderr.
pub fn run(plan: Plan) -> Result<RelayResults> {
    let started = Instant::now();
    let mut res = RelayResults {
        seconds: plan.seconds,
        runs: plan.runs,
        probes: plan.probes,
        trials: plan.trials,
        ..RelayResults::default()
    };

    eprintln!("relay: setting up the forwarding lab");
    {
        let fwd = Forwarding::new("benchrelayfwd", &warren_bin()?)?;
        let old = match &plan.baseline {
            Some(bin) => {
                eprintln!("relay: setting up the baseline's forwarding lab");
                Some(Forwarding::new("benchrelaybase", bin)?)
            }
            None => None,
        };
        let mut baseline = old.as_ref().map(|_| RelayBaseline::default());
        for &size in &BLAST_SIZES {
            let (mut relayed, mut bare, mut base) = (Vec::new(), Vec::new(), Vec::new());
            for run in 1..=plan.runs {
                relayed.push(logged_blast(&fwd, size, &plan, run, Leg::Relay)?);
                if let Some(old) = &old {
                    base.push(logged_blast(old, size, &plan, run, Leg::BaselineRelay)?);
                }
                bare.push(logged_blast(&fwd, size, &plan, run, Leg::Bare)?);
            }
            res.blasts.push((size, relayed, bare));
            if let Some(b) = &mut baseline {
                b.blasts.push((size, base));
            }
        }
        crate::check_interrupt()?;
        match (&old, &mut baseline) {
            (Some(old), Some(b)) => {
                // The two labs take turns, a run's share of the probes each,
                // so that both see the same moments of the machine.
                let share = plan.probes.div_ceil(plan.runs);
                let mut left = plan.probes;
                while left > 0 {
                    let n = share.min(left);
                    left -= n;
                    crate::check_interrupt()?;
                    let (relayed, bare) = fwd.ping_pong(n, PING_PONG_LEN)?;
                    res.rtt_relay.append(relayed);
                    res.rtt_bare.append(bare);
                    crate::check_interrupt()?;
                    let (relayed, bare) = old.ping_pong(n, PING_PONG_LEN)?;
                    b.rtt_relay.append(relayed);
                    b.rtt_bare.append(bare);
                }
                log_ping_pong("relay ping-pong", &res.rtt_relay, &res.rtt_bare);
                log_ping_pong("baseline relay ping-pong", &b.rtt_relay, &b.rtt_bare);
            }
            _ => {
                let (relayed, bare) = fwd.ping_pong(plan.probes, PING_PONG_LEN)?;
                log_ping_pong("relay ping-pong", &relayed, &bare);
                (res.rtt_relay, res.rtt_bare) = (relayed, bare);
            }
        }
        res.baseline = baseline;
    }

    eprintln!(
        "relay: setting up a relayed pair (symmetric ↔ symmetric) and a direct one (cone ↔ cone)"
    );
    {
        let mut relayed = Pair::new("benchrelayed", Pairing::SymmetricSymmetric)?;
        relayed.start(NODE_PORT)?;
        let mut direct = Pair::new("benchdirect", Pairing::ConeCone)?;
        direct.start(NODE_PORT)?;
        crate::latency::warm_up(&relayed, Duration::from_secs(15))?;
        {
            let _responder = crate::latency::Responder::start(&direct)?;
            wait_direct(&direct)?;
        }
        for (pair, is_direct) in [(&relayed, false), (&direct, true)] {
            pair.check_alive()?;
            let before = pair.rn.forwarded()?;
            let rtts = crate::latency::measure(pair, plan.probes, Duration::from_secs(60))?;
            let frames = pair.rn.forwarded()? - before;
            eprintln!(
                "{} latency: p50 {:.0} µs, p99 {:.0} µs ({} probes, {} lost; relay forwarded {frames} frames)",
                pair.label,
                crate::stats::percentile(&rtts.micros, 50.0).unwrap_or(f64::NAN),
                crate::stats::percentile(&rtts.micros, 99.0).unwrap_or(f64::NAN),
                rtts.micros.len(),
                rtts.lost
            );
            check_path(pair, is_direct, frames, rtts.micros.len() as u64)?;
            if is_direct {
                res.lat_direct = rtts;
            } else {
                res.lat_relayed = rtts;
            }
        }
        for run in 1..=plan.runs {
            for (pair, is_direct) in [(&relayed, false), (&direct, true)] {
                crate::check_interrupt()?;
                pair.check_alive()?;
                let _ = pair.pids();
                let before = pair.rn.forwarded()?;
                let tcp = crate::iperf::tcp(pair, plan.seconds)?;
                let frames = pair.rn.forwarded()? - before;
                eprintln!(
                    "{} tcp run {run}: {:.2} Gbit/s (relay forwarded {frames} frames)",
                    pair.label, tcp.gbps
                );
                check_path(pair, is_direct, frames, tcp.bytes / 1400)?;
                if is_direct {
                    res.tcp_direct.push(tcp.gbps);
                } else {
                    res.tcp_relayed.push(tcp.gbps);
                }
            }
        }
    }

    for pairing in [
        Pairing::ConeCone,
        Pairing::CgnatCone,
        Pairing::SymmetricCone,
    ] {
        let mut pair = Pair::new("benchtrav", pairing)?;
        let _responder = crate::latency::Responder::start(&pair)?;
        let (mut times, mut regs) = (Vec::new(), Vec::new());
        for trial in 0..plan.trials {
            crate::check_interrupt()?;
            // A new port per trial: NAT mappings and conntrack start fresh.
            let port = NODE_PORT + 1 + trial as u16;
            let (started, registered) = pair.start(port)?;
            let t = pair.time_to_direct(registered, TRAVERSAL_TIMEOUT)?;
            pair.check_alive()?;
            let reg = registered.duration_since(started).as_secs_f64();
            eprintln!(
                "traversal {} trial {}: registered {:.2} s after start, {}",
                pairing.name(),
                trial + 1,
                reg,
                t.map_or_else(
                    || format!("not direct within {TRAVERSAL_TIMEOUT:?}"),
                    |t| format!("direct {:.2} s after registered", t.as_secs_f64())
                )
            );
            times.push(t.map(|t| t.as_secs_f64()));
            regs.push(reg);
        }
        res.traversal.push((pairing, times, regs));
    }
    eprintln!(
        "relay section done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(res)
}

/// Fails if a pair that should be direct used the relay (or the other way
/// round): `frames` forwarded while `units` went through the tunnel.
fn check_path(pair: &Pair, direct: bool, frames: u64, units: u64) -> Result<()> {
    if direct && frames > 50 + units / 100 {
        bail!(
            "{}: meant to be direct, yet the relay forwarded {frames} frames",
            pair.label
        );
    }
    if !direct && frames < units {
        bail!(
            "{}: meant to be relayed, yet the relay forwarded only {frames} frames",
            pair.label
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;

    #[test]
    fn keys_decode_as_wg_prints_them() -> Result<()> {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8 * 7);
        assert_eq!(decode_key(&format!(" {}\n", BASE64.encode(key)))?, key);
        assert!(decode_key("AAAA").is_err());
        assert!(decode_key("not base64!").is_err());
        Ok(())
    }

    #[test]
    fn frames_the_relay_reads() -> Result<()> {
        let dst = [9u8; 32];
        let frame = send_frame(dst, 100)?;
        assert_eq!(frame.len(), PING_PONG_LEN);
        match Frame::decode(&frame)? {
            Frame::Send { dst: d, payload } => {
                assert_eq!(d, PublicKey::from_bytes(dst));
                assert_eq!(payload, &[0u8; 100][..]);
            }
            other => bail!("not a Send: {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn the_echo_returns_a_recv_to_its_source() -> Result<()> {
        let src = [3u8; 32];
        let mut datagram = Frame::Recv {
            src: PublicKey::from_bytes(src),
            payload: b"probe",
        }
        .to_vec();
        assert!(recv_to_send_in_place(&mut datagram));
        assert_eq!(datagram, {
            let mut f = send_frame(src, 5)?;
            f[SEND_HEADER_LEN..].copy_from_slice(b"probe");
            f
        });
        // A Send, a bare datagram or junk is left as it is.
        for other in [datagram.clone(), b"bare probe".to_vec(), vec![0xFE]] {
            let mut copy = other.clone();
            assert!(!recv_to_send_in_place(&mut copy));
            assert_eq!(copy, other);
        }
        Ok(())
    }
}
