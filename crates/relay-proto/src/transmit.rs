//! [`Transmit`]: a datagram a sans-IO core hands its driver to send.
//!
//! The relay core, the node's relay client and the mesh core all return
//! these, so a driver sends each the same way: to [`Transmit::dst`], out of
//! the local socket [`Transmit::socket`] names, over
//! [`Transmit::transport`]. Today every driver has one UDP socket (the
//! device its WireGuard socket, which the relay clients share so that a
//! relay observes the NAT mapping WireGuard uses; the relay server its
//! listening socket), so both have one value; they exist so that a second
//! socket or a TCP path to a relay is a new variant the drivers must
//! handle, not a guess.

use std::net::SocketAddr;

/// Which of its driver's local sockets a datagram leaves by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LocalSocket {
    /// The driver's one UDP socket: the device's WireGuard socket (shared
    /// by the relay clients), the relay server's listening socket.
    #[default]
    Main,
}

/// How a datagram travels to its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Transport {
    /// One UDP datagram (or one segment of a GSO send).
    #[default]
    Udp,
}

/// A datagram to send: where, by which local socket and transport, and
/// the bytes. `B` is `Vec<u8>` for queued protocol traffic and a borrowed
/// `&mut [u8]` when the data path wrote into the caller's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<B = Vec<u8>> {
    /// Where to send it.
    pub dst: SocketAddr,
    /// The local socket it leaves by.
    pub socket: LocalSocket,
    /// How it travels.
    pub transport: Transport,
    /// The datagram: a WireGuard message, a relay frame or a disco message.
    pub payload: B,
}

impl<B> Transmit<B> {
    /// A UDP datagram to `dst` out of the driver's one socket.
    pub fn udp(dst: SocketAddr, payload: B) -> Self {
        Transmit {
            dst,
            socket: LocalSocket::Main,
            transport: Transport::Udp,
            payload,
        }
    }

    /// The same transmit with its payload turned into another form (e.g.
    /// a borrowed buffer into an owned copy).
    pub fn map_payload<C>(self, f: impl FnOnce(B) -> C) -> Transmit<C> {
        Transmit {
            dst: self.dst,
            socket: self.socket,
            transport: self.transport,
            payload: f(self.payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_udp_transmit_leaves_by_the_main_socket() {
        let dst: SocketAddr = "192.0.2.1:51820".parse().unwrap();
        let transmit = Transmit::udp(dst, &b"hi"[..]);
        assert_eq!(transmit.socket, LocalSocket::Main);
        assert_eq!(transmit.transport, Transport::Udp);
        let owned: Transmit = transmit.map_payload(<[u8]>::to_vec);
        assert_eq!(owned, Transmit::udp(dst, b"hi".to_vec()));
    }
}
