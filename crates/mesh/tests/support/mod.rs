//! A virtual network for two or more mesh nodes: datagrams move between
//! in-memory queues and time is whatever the test says it is.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;
use warren_mesh::{Node, PeerConfig, Transmit};
use warren_wire::{PrivateKey, PublicKey};

/// One simulated host: a node, its UDP address and what reached its TUN.
pub struct Host {
    pub node: Node,
    pub addr: SocketAddr,
    pub delivered: Vec<Vec<u8>>,
}

/// Hosts on a lossless in-memory network.
pub struct Net {
    pub hosts: Vec<Host>,
    pub in_flight: VecDeque<(SocketAddr, Transmit)>,
    pub now: Instant,
    /// Addresses that reach a host other than the one owning them (a roamed host).
    pub aliases: Vec<(SocketAddr, usize)>,
}

pub fn private_key(seed: u8) -> PrivateKey {
    let mut key = [seed; 32];
    key[0] &= 248;
    key[31] = (key[31] & 127) | 64;
    PrivateKey::from_bytes(key)
}

pub fn public_of(private: &PrivateKey) -> PublicKey {
    private.public_key()
}

/// Mesh address of host `i` (10.0.0.<i+1>).
pub fn mesh_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, i as u8 + 1)
}

impl Net {
    /// `n` hosts, each the peer of every other, each allowed its own /32 and
    /// knowing every other's endpoint.
    pub fn full_mesh(n: usize) -> Net {
        let now = Instant::now();
        let keys: Vec<PrivateKey> = (0..n).map(|i| private_key(i as u8 + 1)).collect();
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([192, 168, 1, i as u8 + 1], 51820)))
            .collect();
        let mut hosts = Vec::new();
        for i in 0..n {
            let mut node = Node::new(&keys[i], i as u64 * 1000, now);
            for j in (0..n).filter(|j| *j != i) {
                node.add_peer(
                    public_of(&keys[j]),
                    PeerConfig {
                        endpoint: Some(addrs[j]),
                        allowed_ips: vec![format!("{}/32", mesh_ip(j)).parse().unwrap()],
                        ..PeerConfig::default()
                    },
                )
                .unwrap();
            }
            hosts.push(Host {
                node,
                addr: addrs[i],
                delivered: Vec::new(),
            });
        }
        Net {
            hosts,
            in_flight: VecDeque::new(),
            now,
            aliases: Vec::new(),
        }
    }

    pub fn key(&self, i: usize) -> PublicKey {
        self.hosts[i].node.public_key()
    }

    /// Host `from` sends an IP packet from its TUN; what it emits goes on the wire
    /// from `self.hosts[from].addr`.
    pub fn send_ip(&mut self, from: usize, packet: &[u8]) -> Result<(), warren_mesh::Dropped> {
        let mut out = vec![0u8; 65536];
        let start = out.as_ptr();
        let now = self.now;
        let src = self.hosts[from].addr;
        if let Some(t) = self.hosts[from].node.send_ip(now, packet, &mut out)? {
            // Drivers lay datagrams back to back: each must start at `out[0]`.
            assert_eq!(
                t.payload.as_ptr(),
                start,
                "datagram not at the start of `out`"
            );
            self.in_flight
                .push_back((src, t.map_payload(|payload| payload.to_vec())));
        }
        self.collect(from);
        Ok(())
    }

    /// Host 0 sends a small packet to host 1's mesh address.
    pub fn send_0_to_1(&mut self, payload: &[u8]) {
        self.send_ip(0, &ipv4_packet(mesh_ip(0), mesh_ip(1), payload))
            .unwrap();
    }

    /// Host 0 sends host 1 a first packet and the network runs until the
    /// handshake is complete and the packet delivered.
    pub fn establish(&mut self) {
        self.send_0_to_1(b"first");
        self.drive();
        assert_eq!(self.hosts[1].delivered.len(), 1, "session established");
    }

    /// Moves queued transmits of host `i` onto the wire.
    pub fn collect(&mut self, i: usize) {
        let src = self.hosts[i].addr;
        while let Some(t) = self.hosts[i].node.poll_transmit() {
            self.in_flight.push_back((src, t));
        }
    }

    fn host_at(&self, addr: SocketAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.addr == addr).or_else(|| {
            self.aliases
                .iter()
                .find(|(a, _)| *a == addr)
                .map(|(_, i)| *i)
        })
    }

    /// Delivers one datagram to whoever owns its destination; returns the
    /// result of `handle_datagram` (datagrams to nowhere vanish).
    pub fn deliver(
        &mut self,
        from: SocketAddr,
        t: Transmit,
    ) -> Option<Result<bool, warren_mesh::Dropped>> {
        let i = self.host_at(t.dst)?;
        let mut out = vec![0u8; 65536];
        let now = self.now;
        let result = self.hosts[i]
            .node
            .handle_datagram(now, from, &t.payload, &mut out)
            .map(|delivered| match delivered {
                Some(packet) => {
                    self.hosts[i].delivered.push(packet.to_vec());
                    true
                }
                None => false,
            });
        self.collect(i);
        Some(result)
    }

    /// Runs the network until nothing is in flight. Returns the datagrams moved.
    pub fn drive(&mut self) -> usize {
        let mut moved = 0;
        while let Some((from, t)) = self.in_flight.pop_front() {
            self.deliver(from, t);
            moved += 1;
            assert!(moved < 10_000, "the network never went idle");
        }
        moved
    }

    /// Advances virtual time and runs every host's timers.
    pub fn advance(&mut self, by: std::time::Duration) {
        self.now += by;
        for i in 0..self.hosts.len() {
            let now = self.now;
            self.hosts[i].node.handle_timeout(now);
            self.collect(i);
        }
    }
}

/// A minimal valid IPv4/UDP packet from `src` to `dst` carrying `payload`.
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    let total = 20 + 8 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    let mut sum: u32 = 0;
    for chunk in p[..20].chunks(2) {
        sum += u32::from(u16::from_be_bytes([chunk[0], chunk[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&4000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

/// A handshake response to the node with public key `to`, for session index
/// `receiver_index`, with a valid MAC1 (anyone who knows `to` can compute it)
/// and garbage everywhere else: what an attacker can forge.
pub fn forged_handshake_response(to: &PublicKey, receiver_index: u32, nonce: u32) -> Vec<u8> {
    use blake2::digest::{FixedOutput, KeyInit, Update};
    use blake2::{Blake2s256, Blake2sMac, Digest};
    let mut message = vec![0u8; 92];
    message[0] = 2;
    message[4..8].copy_from_slice(&nonce.to_le_bytes());
    message[8..12].copy_from_slice(&receiver_index.to_le_bytes());
    message[12..44].fill(nonce as u8);
    let mut hash = Blake2s256::new();
    Digest::update(&mut hash, b"mac1----");
    Digest::update(&mut hash, to.as_bytes());
    let mac1_key: [u8; 32] = hash.finalize().into();
    let mut mac =
        <Blake2sMac<blake2::digest::consts::U16> as KeyInit>::new_from_slice(&mac1_key).unwrap();
    Update::update(&mut mac, &message[..60]);
    let tag: [u8; 16] = mac.finalize_fixed().into();
    message[60..76].copy_from_slice(&tag);
    message
}
