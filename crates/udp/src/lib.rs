//! A tokio UDP socket that moves datagrams in batches: UDP GSO sends a run
//! of equal-sized datagrams to one destination in one call, UDP GRO
//! receives a run from one source in one call. Used by the device (its one
//! WireGuard socket: dual-stack where the host has IPv6, addresses
//! normalised so the mesh core always sees plain IPv4 or IPv6) and by the
//! relay. [`gso_runs`] is the one rule for cutting datagrams into GSO runs.

mod mmsg;
mod msg;
mod runs;

pub use mmsg::{Outgoing, BATCH};
pub use msg::Received;
pub use runs::{gso_runs, GsoRun, GsoRuns};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Most datagrams handed to one GSO send (the kernel's `UDP_MAX_SEGMENTS`
/// is 64 on older kernels).
pub const MAX_GSO_SEGMENTS: usize = 64;

/// Largest buffer one GSO send or GRO receive uses (a UDP length field).
pub const MAX_GSO_BYTES: usize = 65535 - 8 - 40;

/// Socket buffer size asked for: room for bursts while the loop is busy.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// A UDP socket with batched sends and receives.
pub struct GsoSocket {
    socket: UdpSocket,
    dual_stack: bool,
    /// Cleared when the kernel refuses a GSO send, after which every
    /// datagram goes in its own call.
    gso: AtomicBool,
}

impl GsoSocket {
    /// Binds `port` (0 picks a free one) on all addresses: `[::]` accepting
    /// IPv4 too, or `0.0.0.0` when the host has no IPv6.
    pub fn bind(port: u16, fwmark: u32) -> io::Result<GsoSocket> {
        let (socket, dual_stack) = match bind_dual_stack(port) {
            Ok(socket) => (socket, true),
            Err(_) => (bind_v4(port)?, false),
        };
        if fwmark != 0 {
            SockRef::from(&socket).set_mark(fwmark)?;
        }
        GsoSocket::from_std(socket, dual_stack)
    }

    /// Binds exactly `addr` (for a server that listens on one address).
    pub fn bind_addr(addr: SocketAddr) -> io::Result<GsoSocket> {
        let domain = if addr.is_ipv6() {
            Domain::IPV6
        } else {
            Domain::IPV4
        };
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        // `[::]` also takes IPv4, as std's bind does by default.
        let dual_stack = addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        if addr.is_ipv6() {
            socket.set_only_v6(!dual_stack)?;
        }
        socket.bind(&addr.into())?;
        GsoSocket::from_std(socket.into(), dual_stack)
    }

    fn from_std(socket: std::net::UdpSocket, dual_stack: bool) -> io::Result<GsoSocket> {
        let sock = SockRef::from(&socket);
        // Best effort: a smaller buffer only costs throughput.
        let _ = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
        let _ = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES);
        // Best effort: without GRO every datagram is simply read on its own.
        let _ = set_udp_gro(&socket);
        socket.set_nonblocking(true)?;
        Ok(GsoSocket {
            socket: UdpSocket::from_std(socket)?,
            dual_stack,
            gso: AtomicBool::new(true),
        })
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Whether the socket takes IPv6 as well as IPv4.
    pub fn is_dual_stack(&self) -> bool {
        self.dual_stack
    }

    /// The port the socket is bound to.
    pub fn port(&self) -> io::Result<u16> {
        Ok(self.socket.local_addr()?.port())
    }

    /// Sets the firewall mark on outgoing packets (0 clears it).
    pub fn set_fwmark(&self, fwmark: u32) -> io::Result<()> {
        SockRef::from(&self.socket).set_mark(fwmark)
    }

    /// Receives one datagram and the (normalised) address it came from.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (len, from) = self.socket.recv_from(buf).await?;
        Ok((len, normalise(from)))
    }

    /// Sends one datagram to `dst`.
    pub async fn send_to(&self, datagram: &[u8], dst: SocketAddr) -> io::Result<usize> {
        self.socket.send_to(datagram, self.on_the_wire(dst)).await
    }

    /// Sends `datagrams`, back-to-back datagrams of `segment_size` bytes
    /// (the last may be shorter), to `dst`: in one call with GSO, else one
    /// call each.
    pub async fn send_segments(
        &self,
        datagrams: &[u8],
        segment_size: usize,
        dst: SocketAddr,
    ) -> io::Result<()> {
        let dst = SockAddr::from(self.on_the_wire(dst));
        let fd = self.socket.as_raw_fd();
        let segments = datagrams.len().div_ceil(segment_size.max(1));
        if segments > 1 && self.gso.load(Ordering::Relaxed) {
            let size = u16::try_from(segment_size).ok();
            let sent = self
                .socket
                .async_io(Interest::WRITABLE, || msg::send(fd, datagrams, &dst, size))
                .await;
            match sent {
                Ok(_) => return Ok(()),
                // The route's device cannot segment: fall back for good.
                Err(error) if gso_unsupported(&error) => {
                    tracing::info!(%error, "UDP GSO refused; sending datagrams one by one");
                    self.gso.store(false, Ordering::Relaxed);
                }
                Err(error) => return Err(error),
            }
        }
        for datagram in datagrams.chunks(segment_size.max(1)) {
            self.socket
                .async_io(Interest::WRITABLE, || msg::send(fd, datagram, &dst, None))
                .await?;
        }
        Ok(())
    }

    /// Waits for and receives one datagram or GRO batch (see [`Received`]);
    /// the source address is normalised.
    pub async fn recv_segments(&self, buf: &mut [u8]) -> io::Result<Received> {
        let fd = self.socket.as_raw_fd();
        let received = self
            .socket
            .async_io(Interest::READABLE, || msg::recv(fd, buf))
            .await?;
        Ok(normalise_received(received))
    }

    /// Like [`WgSocket::recv_segments`], but returns `WouldBlock` instead of waiting.
    pub fn try_recv_segments(&self, buf: &mut [u8]) -> io::Result<Received> {
        let fd = self.socket.as_raw_fd();
        let received = self
            .socket
            .try_io(Interest::READABLE, || msg::recv(fd, buf))?;
        Ok(normalise_received(received))
    }

    /// Waits for and receives up to [`BATCH`] messages (each a datagram or
    /// a GRO batch) into consecutive `slot`-byte slots of `buf`: message `i`
    /// is in slot `i`, described by `out[i]`. Returns how many arrived.
    /// `slot` should be [`MAX_GSO_BYTES`] or more when GRO is on.
    pub async fn recv_many(
        &self,
        buf: &mut [u8],
        slot: usize,
        out: &mut [Received],
    ) -> io::Result<usize> {
        let fd = self.socket.as_raw_fd();
        let count = self
            .socket
            .async_io(Interest::READABLE, || mmsg::recv(fd, buf, slot, out))
            .await?;
        normalise_all(out.get_mut(..count).unwrap_or_default());
        Ok(count)
    }

    /// Like [`GsoSocket::recv_many`], but returns `WouldBlock` instead of waiting.
    pub fn try_recv_many(
        &self,
        buf: &mut [u8],
        slot: usize,
        out: &mut [Received],
    ) -> io::Result<usize> {
        let fd = self.socket.as_raw_fd();
        let count = self
            .socket
            .try_io(Interest::READABLE, || mmsg::recv(fd, buf, slot, out))?;
        normalise_all(out.get_mut(..count).unwrap_or_default());
        Ok(count)
    }

    /// Sends every message of `outgoing`, [`BATCH`] per call, waiting while
    /// the socket buffer is full. A message the kernel refuses (no route, a
    /// firewall) is skipped and the rest still go: returns how many were
    /// refused. A run ([`Outgoing::gso_size`]) goes in one GSO message while
    /// the kernel takes them; anything else goes one datagram per message.
    pub async fn send_many(&self, outgoing: &[Outgoing<'_>]) -> usize {
        let fd = self.socket.as_raw_fd();
        let mut messages = Vec::with_capacity(outgoing.len());
        self.split_for_the_wire(outgoing, &mut messages);
        let mut refused = 0;
        let mut next = 0;
        while let Some(rest) = messages.get(next..).filter(|rest| !rest.is_empty()) {
            match self
                .socket
                .async_io(Interest::WRITABLE, || mmsg::send(fd, rest))
                .await
            {
                Ok(sent) => next += sent.max(1),
                Err(error) if gso_unsupported(&error) && rest[0].datagrams.len() > 1 => {
                    tracing::info!(%error, "UDP GSO refused; sending datagrams one by one");
                    self.gso.store(false, Ordering::Relaxed);
                    let unsent: Vec<Outgoing<'_>> = rest.to_vec();
                    messages.truncate(next);
                    self.split_for_the_wire(&unsent, &mut messages);
                }
                Err(error) => {
                    tracing::debug!(dst = %rest[0].dst, %error, "send refused");
                    refused += 1;
                    next += 1;
                }
            }
        }
        refused
    }

    /// Appends `outgoing` to `messages` as they go on the wire: addresses
    /// in the socket's family, and each datagram of a message that cannot
    /// be one GSO send (not a run, or GSO off) as a message of its own.
    fn split_for_the_wire<'a>(&self, outgoing: &[Outgoing<'a>], messages: &mut Vec<Outgoing<'a>>) {
        let gso = self.gso.load(Ordering::Relaxed);
        for out in outgoing {
            let dst = self.on_the_wire(out.dst);
            if out.datagrams.len() <= 1 || (gso && out.gso_size().is_some()) {
                messages.push(Outgoing { dst, ..*out });
            } else {
                messages.extend(
                    out.datagrams
                        .chunks(1)
                        .map(|datagrams| Outgoing { dst, datagrams }),
                );
            }
        }
    }

    /// A dual-stack socket sends to IPv4 peers through IPv4-mapped addresses.
    fn on_the_wire(&self, dst: SocketAddr) -> SocketAddr {
        match (self.dual_stack, dst.ip()) {
            (true, IpAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), dst.port()),
            _ => dst,
        }
    }
}

fn normalise_all(received: &mut [Received]) {
    for one in received {
        *one = normalise_received(*one);
    }
}

fn normalise_received(received: Received) -> Received {
    Received {
        from: normalise(received.from),
        ..received
    }
}

/// Errors with which the kernel refuses a GSO send it cannot do.
fn gso_unsupported(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

fn set_udp_gro(socket: &std::net::UdpSocket) -> io::Result<()> {
    let enable: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int option of the declared size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_UDP,
            libc::UDP_GRO,
            (&enable as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `::ffff:a.b.c.d` becomes `a.b.c.d`, so one peer has one address form.
fn normalise(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

fn bind_dual_stack(port: u16) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(false)?;
    socket.bind(&SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port).into())?;
    Ok(socket.into())
}

fn bind_v4(port: u16) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port).into())?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::IoSlice;

    #[test]
    fn mapped_addresses_are_normalised_to_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:51820".parse().unwrap();
        assert_eq!(normalise(mapped), "10.0.0.1:51820".parse().unwrap());
        let v6: SocketAddr = "[fd00::1]:51820".parse().unwrap();
        assert_eq!(normalise(v6), v6);
    }

    #[tokio::test]
    async fn ipv4_peer_reaches_a_dual_stack_socket_and_gets_answers() {
        let device = GsoSocket::bind(0, 0).unwrap();
        let port = device.port().unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        peer.send_to(b"ping", ("127.0.0.1", port)).await.unwrap();
        let mut buf = [0u8; 16];
        let (len, from) = device.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"ping");
        assert_eq!(from, peer.local_addr().unwrap());
        device.send_to(b"pong", from).await.unwrap();
        let (len, _) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"pong");
    }

    #[tokio::test]
    async fn segments_sent_in_one_call_arrive_as_separate_datagrams_and_are_regrouped() {
        let sender = GsoSocket::bind(0, 0).unwrap();
        let receiver = GsoSocket::bind(0, 0).unwrap();
        let dst: SocketAddr = format!("127.0.0.1:{}", receiver.port().unwrap())
            .parse()
            .unwrap();
        // Five 1000-byte datagrams and a 300-byte tail, numbered by their first byte.
        let mut batch = Vec::new();
        for i in 0..6u8 {
            let size = if i == 5 { 300 } else { 1000 };
            batch.extend(std::iter::repeat_n(i, size));
        }
        sender.send_segments(&batch, 1000, dst).await.unwrap();

        // A plain socket sees six datagrams on the wire.
        let plain = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        sender
            .send_segments(&batch, 1000, plain.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = vec![0u8; 65536];
        for i in 0..6u8 {
            let (len, _) = plain.recv_from(&mut buf).await.unwrap();
            assert_eq!(len, if i == 5 { 300 } else { 1000 });
            assert!(buf[..len].iter().all(|b| *b == i));
        }

        // The GRO socket gets all the bytes, in order, with the segment size.
        let mut got = Vec::new();
        while got.len() < batch.len() {
            let received = receiver.recv_segments(&mut buf).await.unwrap();
            assert_eq!(received.from.port(), sender.port().unwrap());
            for datagram in buf[..received.len].chunks(received.segment_size) {
                got.extend_from_slice(datagram);
            }
        }
        assert_eq!(got, batch);
    }

    /// One `send_many` reaches two receivers, one of them with a GSO run,
    /// and one `recv_many` takes datagrams from several senders, each in
    /// its own slot with its own source.
    #[tokio::test]
    async fn batches_cross_destinations_and_senders() {
        let relay = GsoSocket::bind_addr("127.0.0.1:0".parse().unwrap()).unwrap();
        let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let run: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 500]).collect();
        let run: Vec<IoSlice<'_>> = run.iter().map(|d| IoSlice::new(d)).collect();
        let to_a = [IoSlice::new(b"to a")];
        let to_nobody = [IoSlice::new(b"to nobody"), IoSlice::new(b"but sent anyway")];
        let outgoing = [
            Outgoing {
                dst: a.local_addr().unwrap(),
                datagrams: &to_a,
            },
            Outgoing {
                dst: b.local_addr().unwrap(),
                datagrams: &run,
            },
            Outgoing {
                dst: "127.0.0.1:9".parse().unwrap(),
                datagrams: &to_nobody,
            },
        ];
        assert_eq!(outgoing[1].gso_size(), Some(500));
        assert_eq!(
            outgoing[2].gso_size(),
            None,
            "the last is longer: not a run"
        );
        assert_eq!(relay.send_many(&outgoing).await, 0);
        let mut buf = [0u8; 2048];
        let (len, _) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"to a");
        for i in 0..3u8 {
            let (len, _) = b.recv_from(&mut buf).await.unwrap();
            assert_eq!(len, 500);
            assert!(buf[..len].iter().all(|byte| *byte == i));
        }

        let dst = relay.local_addr().unwrap();
        a.send_to(b"from a", dst).await.unwrap();
        b.send_to(b"from b, longer", dst).await.unwrap();
        let slot = MAX_GSO_BYTES;
        let mut many = vec![0u8; slot * 4];
        let mut out = [Received {
            len: 0,
            from: dst,
            segment_size: 0,
        }; 4];
        let mut got = Vec::new();
        while got.len() < 2 {
            let count = relay.recv_many(&mut many, slot, &mut out).await.unwrap();
            for (i, received) in out[..count].iter().enumerate() {
                let start = i * slot;
                got.push((received.from, many[start..start + received.len].to_vec()));
            }
        }
        got.sort();
        let mut expected = vec![
            (a.local_addr().unwrap(), b"from a".to_vec()),
            (b.local_addr().unwrap(), b"from b, longer".to_vec()),
        ];
        expected.sort();
        assert_eq!(got, expected);
    }
}
