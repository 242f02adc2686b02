//! The device's one UDP socket: dual-stack where the host has IPv6, with
//! addresses normalised so the mesh core always sees plain IPv4 or IPv6.

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::net::UdpSocket;

/// Socket buffer size asked for: room for bursts while the loop is busy.
const SOCKET_BUFFER_BYTES: usize = 4 << 20;

/// The device's UDP socket.
pub struct WgSocket {
    socket: UdpSocket,
    dual_stack: bool,
}

impl WgSocket {
    /// Binds `port` (0 picks a free one) on all addresses: `[::]` accepting
    /// IPv4 too, or `0.0.0.0` when the host has no IPv6.
    pub fn bind(port: u16, fwmark: u32) -> io::Result<WgSocket> {
        let (socket, dual_stack) = match bind_dual_stack(port) {
            Ok(socket) => (socket, true),
            Err(_) => (bind_v4(port)?, false),
        };
        let sock = SockRef::from(&socket);
        // Best effort: a smaller buffer only costs throughput.
        let _ = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
        let _ = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES);
        if fwmark != 0 {
            sock.set_mark(fwmark)?;
        }
        socket.set_nonblocking(true)?;
        Ok(WgSocket {
            socket: UdpSocket::from_std(socket)?,
            dual_stack,
        })
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

    /// A dual-stack socket sends to IPv4 peers through IPv4-mapped addresses.
    fn on_the_wire(&self, dst: SocketAddr) -> SocketAddr {
        match (self.dual_stack, dst.ip()) {
            (true, IpAddr::V4(v4)) => SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), dst.port()),
            _ => dst,
        }
    }
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

    #[test]
    fn mapped_addresses_are_normalised_to_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:51820".parse().unwrap();
        assert_eq!(normalise(mapped), "10.0.0.1:51820".parse().unwrap());
        let v6: SocketAddr = "[fd00::1]:51820".parse().unwrap();
        assert_eq!(normalise(v6), v6);
    }

    #[tokio::test]
    async fn ipv4_peer_reaches_a_dual_stack_socket_and_gets_answers() {
        let device = WgSocket::bind(0, 0).unwrap();
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
}
