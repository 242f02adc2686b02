//! `lab-nfq-delay --queue N --delay-ms D`: holds every packet of NFQUEUE
//! queue `N` (in the network namespace it runs in) for `D` ms, then accepts
//! it. The lab's stand-in for netem, which this kernel lacks (docs/lab.md "Delay
//! and loss"): pair it with
//! `iptables -t raw -A PREROUTING -i IFACE -j NFQUEUE --queue-num N --queue-bypass`.
//!
//! It speaks nfnetlink_queue over a raw netlink socket with libc only: no
//! crate wraps it without pulling libnetfilter_queue (C) in. Packets are
//! queued metadata-only (no payload copy); since every packet waits the same
//! time and the kernel numbers them in order, one batch verdict accepts all
//! packets that are due.
//!
//! Prints `bound queue N delay D ms` on stderr once the queue is bound.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_QUEUE: u16 = 3;
const NFQNL_MSG_PACKET: u16 = 0;
const NFQNL_MSG_CONFIG: u16 = 2;
const NFQNL_MSG_VERDICT_BATCH: u16 = 3;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NF_ACCEPT: u32 = 1;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_HDRLEN: usize = 16;
const NFGEN_HDRLEN: usize = 4;
/// Kernel queue length: enough for ~100 ms of a fast TCP stream.
const QUEUE_MAXLEN: u32 = 16_384;
/// Socket receive buffer (SO_RCVBUFFORCE, as root): packet notices must not
/// be lost while the program sleeps.
const RCVBUF: libc::c_int = 16 << 20;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds one nfnetlink message: netlink header, nfgenmsg, attributes.
fn message(msg: u16, flags: u16, seq: u32, queue: u16, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut b = vec![0u8; NLMSG_HDRLEN];
    b.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]);
    b.extend_from_slice(&queue.to_be_bytes());
    for (ty, payload) in attrs {
        let len = 4 + payload.len();
        b.extend_from_slice(&(len as u16).to_ne_bytes());
        b.extend_from_slice(&ty.to_ne_bytes());
        b.extend_from_slice(payload);
        b.resize(align4(b.len()), 0);
    }
    let total = b.len() as u32;
    b[0..4].copy_from_slice(&total.to_ne_bytes());
    b[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | msg).to_ne_bytes());
    b[6..8].copy_from_slice(&flags.to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    b
}

struct Socket {
    fd: libc::c_int,
    queue: u16,
    seq: u32,
}

impl Socket {
    fn open(queue: u16) -> Result<Socket> {
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("netlink socket");
        }
        let s = Socket { fd, queue, seq: 0 };
        // SAFETY: sockaddr_nl is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: bind with a valid sockaddr_nl and its size.
        let rc = unsafe {
            libc::bind(
                fd,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("bind netlink socket");
        }
        s.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF)
            .context("SO_RCVBUFFORCE")?;
        // Overflow is reported as lost packets, not as an error that stops us.
        s.setsockopt(libc::SOL_NETLINK, libc::NETLINK_NO_ENOBUFS, 1)
            .context("NETLINK_NO_ENOBUFS")?;
        Ok(s)
    }

    fn setsockopt(&self, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> Result<()> {
        // SAFETY: setsockopt with a pointer to a c_int and its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd,
                level,
                name,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(())
    }

    fn send(&mut self, msg: u16, flags: u16, attrs: &[(u16, Vec<u8>)]) -> Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let b = message(msg, flags, self.seq, self.queue, attrs);
        // SAFETY: send(2) of an initialised buffer.
        let n = unsafe { libc::send(self.fd, b.as_ptr().cast(), b.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("netlink send");
        }
        Ok(self.seq)
    }

    /// Sends a config request and waits for its acknowledgement.
    fn configure(&mut self, attrs: &[(u16, Vec<u8>)]) -> Result<()> {
        let seq = self.send(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, attrs)?;
        let mut buf = vec![0u8; 8192];
        loop {
            let n = self.recv(&mut buf, 0)?;
            for (ty, hdr_seq, body) in parse_messages(&buf[..n]) {
                if ty == NLMSG_ERROR && hdr_seq == seq {
                    let code = body
                        .get(..4)
                        .and_then(|b| b.try_into().ok())
                        .map(i32::from_ne_bytes)
                        .context("short netlink error message")?;
                    if code != 0 {
                        bail!("{}", std::io::Error::from_raw_os_error(-code));
                    }
                    return Ok(());
                }
            }
        }
    }

    fn recv(&self, buf: &mut [u8], flags: libc::c_int) -> Result<usize> {
        // SAFETY: recv(2) into a buffer we own, bounded by its length.
        let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        Ok(n as usize)
    }

    /// Accepts every queued packet with an id up to `id`.
    fn accept_through(&mut self, id: u32) -> Result<()> {
        let mut hdr = NF_ACCEPT.to_be_bytes().to_vec();
        hdr.extend_from_slice(&id.to_be_bytes());
        self.send(
            NFQNL_MSG_VERDICT_BATCH,
            NLM_F_REQUEST,
            &[(NFQA_VERDICT_HDR, hdr)],
        )
        .map(drop)
    }

    /// Waits until the socket is readable or `timeout` passes (`None`: forever).
    fn wait_readable(&self, timeout: Option<Duration>) -> Result<()> {
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ts = timeout.map(|t| libc::timespec {
            tv_sec: t.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
        });
        let tsp = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: ppoll on one valid pollfd with an optional timespec.
        let rc = unsafe { libc::ppoll(&mut pfd, 1, tsp, std::ptr::null()) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e).context("ppoll");
            }
        }
        Ok(())
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor we own.
        unsafe { libc::close(self.fd) };
    }
}

/// Splits a netlink datagram into (type, seq, body after the netlink header).
fn parse_messages(mut b: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            break;
        }
        let ty = u16::from_ne_bytes([b[4], b[5]]);
        let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
        out.push((ty, seq, &b[NLMSG_HDRLEN..len]));
        b = b.get(align4(len)..).unwrap_or_default();
    }
    out
}

/// The packet id of an NFQNL_MSG_PACKET body (nfgenmsg + attributes).
fn packet_id(body: &[u8]) -> Option<u32> {
    let mut a = body.get(NFGEN_HDRLEN..)?;
    while a.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([a[0], a[1]]));
        let ty = u16::from_ne_bytes([a[2], a[3]]) & 0x3fff;
        if len < 4 || len > a.len() {
            return None;
        }
        if ty == NFQA_PACKET_HDR {
            let p = a.get(4..8)?;
            return Some(u32::from_be_bytes([p[0], p[1], p[2], p[3]]));
        }
        a = a.get(align4(len)..).unwrap_or_default();
    }
    None
}

fn parse_args() -> Result<(u16, Duration)> {
    let mut queue = None;
    let mut delay = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--queue" => queue = Some(v.parse().with_context(|| format!("--queue {v}"))?),
            "--delay-ms" => {
                delay = Some(Duration::from_millis(
                    v.parse().with_context(|| format!("--delay-ms {v}"))?,
                ))
            }
            _ => bail!("unknown argument {a}; usage: lab-nfq-delay --queue N --delay-ms D"),
        }
    }
    Ok((
        queue.context("--queue N is required")?,
        delay.context("--delay-ms D is required")?,
    ))
}

fn run() -> Result<()> {
    let (queue, delay) = parse_args()?;
    let mut sock = Socket::open(queue)?;
    sock.configure(&[(NFQA_CFG_CMD, vec![NFQNL_CFG_CMD_BIND, 0, 0, 0])])
        .with_context(|| format!("bind queue {queue}"))?;
    let mut params = 0u32.to_be_bytes().to_vec();
    params.push(NFQNL_COPY_META);
    sock.configure(&[
        (NFQA_CFG_PARAMS, params),
        (NFQA_CFG_QUEUE_MAXLEN, QUEUE_MAXLEN.to_be_bytes().to_vec()),
    ])
    .context("configure queue")?;
    eprintln!("bound queue {queue} delay {} ms", delay.as_millis());

    let mut held: VecDeque<(Instant, u32)> = VecDeque::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let timeout = held
            .front()
            .map(|(due, _)| due.saturating_duration_since(Instant::now()));
        sock.wait_readable(timeout)?;
        // Drain every notice that is there.
        while let Ok(n) = sock.recv(&mut buf, libc::MSG_DONTWAIT) {
            let now = Instant::now();
            for (ty, _, body) in parse_messages(&buf[..n]) {
                if ty == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET {
                    if let Some(id) = packet_id(body) {
                        held.push_back((now + delay, id));
                    }
                }
            }
        }
        let now = Instant::now();
        let mut last_due = None;
        while let Some(&(due, id)) = held.front() {
            if due > now {
                break;
            }
            last_due = Some(id);
            held.pop_front();
        }
        if let Some(id) = last_due {
            sock.accept_through(id)?;
        }
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("lab-nfq-delay: {e:#}");
        std::process::exit(1);
    }
}
