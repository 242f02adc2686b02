//! Paths through a relay, on a virtual network with a real (sans-IO) relay:
//! peers that cannot reach each other directly talk through it; a direct
//! path that works takes over; when it goes quiet the relay takes back,
//! without a new handshake.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{ipv4_packet, mesh_ip, private_key, public_of};
use warren_mesh::{Node, Path, PeerConfig};
use warren_relay_proto::{Config, Relay, SigningKey};

const WG_DATA: u8 = 4;

/// Two nodes and a relay. Datagrams between the nodes' own addresses pass
/// only while `direct_open`.
struct World {
    nodes: [Node; 2],
    addrs: [SocketAddr; 2],
    /// Each node's address on a LAN they share: always open between them.
    lan: [SocketAddr; 2],
    relay: Relay,
    relay_addr: SocketAddr,
    direct_open: bool,
    now: Instant,
    wall: SystemTime,
    in_flight: VecDeque<(SocketAddr, SocketAddr, Vec<u8>)>,
    delivered: [Vec<Vec<u8>>; 2],
    /// Datagrams that went straight between the nodes (dropped or not).
    direct_attempts: usize,
}

impl World {
    fn new(direct_open: bool) -> World {
        World::build(direct_open, true)
    }

    /// `endpoints_known`: whether each node is configured with the other's address.
    fn build(direct_open: bool, endpoints_known: bool) -> World {
        let now = Instant::now();
        let wall = SystemTime::now();
        let signer = SigningKey::from_seed(&[7; 32]).unwrap();
        let relay_addr: SocketAddr = "203.0.113.1:3478".parse().unwrap();
        let addrs: [SocketAddr; 2] = [
            "198.51.100.1:51820".parse().unwrap(),
            "198.51.100.2:51820".parse().unwrap(),
        ];
        let keys = [private_key(1), private_key(2)];
        let expires = wall.duration_since(UNIX_EPOCH).unwrap().as_secs() + 3600;
        let nodes = [0, 1].map(|i| {
            let other = 1 - i;
            let mut node = Node::new(&keys[i], i as u64 * 77, now);
            node.add_peer(
                public_of(&keys[other]),
                PeerConfig {
                    endpoint: endpoints_known.then_some(addrs[other]),
                    allowed_ips: vec![format!("{}/32", mesh_ip(other)).parse().unwrap()],
                    ..PeerConfig::default()
                },
            )
            .unwrap();
            let ticket = signer.mint(public_of(&keys[i]), expires);
            node.add_relay(relay_addr, ticket, now);
            node
        });
        let relay = Relay::new(Config::default(), signer.control_key(), [9; 32], now);
        let mut world = World {
            nodes,
            addrs,
            lan: [
                "192.168.1.10:51820".parse().unwrap(),
                "192.168.1.11:51820".parse().unwrap(),
            ],
            relay,
            relay_addr,
            direct_open,
            now,
            wall,
            in_flight: VecDeque::new(),
            delivered: [Vec::new(), Vec::new()],
            direct_attempts: 0,
        };
        world.pump();
        world
    }

    fn collect(&mut self) {
        for i in 0..2 {
            while let Some(t) = self.nodes[i].poll_transmit() {
                let from = self.source(i, t.dst);
                self.in_flight.push_back((from, t.dst, t.payload));
            }
        }
        while let Some(t) = self.relay.poll_transmit() {
            self.in_flight
                .push_back((self.relay_addr, t.dst, t.payload));
        }
    }

    /// The address node `i`'s datagrams to `dst` come from: its LAN
    /// address on the LAN, else its own.
    fn source(&self, i: usize, dst: SocketAddr) -> SocketAddr {
        if self.lan.contains(&dst) {
            self.lan[i]
        } else {
            self.addrs[i]
        }
    }

    /// Moves datagrams until the network is idle.
    fn pump(&mut self) {
        self.collect();
        let mut moved = 0;
        while let Some((from, to, mut bytes)) = self.in_flight.pop_front() {
            moved += 1;
            assert!(moved < 10_000, "network never idle");
            if to == self.relay_addr {
                if let Ok(Some(dst)) = self
                    .relay
                    .handle_datagram(self.now, self.wall, from, &mut bytes)
                {
                    self.in_flight.push_back((self.relay_addr, dst, bytes));
                }
            } else if let Some(i) = self
                .addrs
                .iter()
                .position(|a| *a == to)
                .or_else(|| self.lan.iter().position(|a| *a == to))
            {
                if from == self.addrs[1 - i] {
                    self.direct_attempts += 1;
                    if !self.direct_open {
                        continue;
                    }
                }
                let mut out = vec![0u8; 65536];
                if let Ok(Some(packet)) =
                    self.nodes[i].handle_datagram(self.now, from, &bytes, &mut out)
                {
                    self.delivered[i].push(packet.to_vec());
                }
            }
            self.collect();
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.wall += by;
        for node in &mut self.nodes {
            node.handle_timeout(self.now);
        }
        self.relay.handle_timeout(self.now);
        self.pump();
    }

    /// Node `from` sends one packet to the other; returns where it went first.
    fn send(&mut self, from: usize, payload: &[u8]) -> SocketAddr {
        let packet = ipv4_packet(mesh_ip(from), mesh_ip(1 - from), payload);
        let mut out = vec![0u8; 65536];
        let start = out.as_ptr();
        let t = self.nodes[from]
            .send_ip(self.now, &packet, &mut out)
            .unwrap()
            .expect("a datagram to send");
        assert_eq!(
            t.payload.as_ptr(),
            start,
            "datagram not at the start of `out`"
        );
        let dst = t.dst;
        let src = self.source(from, dst);
        self.in_flight.push_back((src, dst, t.payload.to_vec()));
        self.pump();
        dst
    }

    /// Runs node 0's timers at `at` and returns where it sent straight to
    /// (everything but the relay): its direct probes.
    fn probes_of_node_0(&mut self, at: Instant) -> Vec<SocketAddr> {
        self.nodes[0].handle_timeout(at);
        let relay = self.relay_addr;
        std::iter::from_fn(|| self.nodes[0].poll_transmit())
            .map(|t| t.dst)
            .filter(|dst| *dst != relay)
            .collect()
    }

    /// A packet from node 0 (which goes through the relay: no direct path
    /// is known), two ticks for disco calls and probes, then traffic both
    /// ways.
    fn punch(&mut self) {
        self.send(0, b"first");
        assert_eq!(self.path(0), Path::Relay(self.relay_addr));
        self.advance(Duration::from_millis(300));
        self.advance(Duration::from_millis(300));
        self.send(1, b"answer");
        self.send(0, b"again");
    }

    fn path(&self, of: usize) -> Path {
        let other = self.nodes[1 - of].public_key();
        self.nodes[of].peer(&other).unwrap().path
    }
}

#[test]
fn peers_without_a_direct_path_talk_through_the_relay() {
    let mut world = World::new(false);
    assert_eq!(world.relay.session_count(), 2, "both nodes registered");
    assert_eq!(world.send(0, b"first"), world.relay_addr);
    assert_eq!(world.delivered[1].len(), 1, "delivered through the relay");
    world.send(1, b"answer");
    assert_eq!(world.delivered[0].len(), 1);
    for i in 0..2 {
        assert_eq!(world.path(i), Path::Relay(world.relay_addr));
    }
    assert!(
        world.direct_attempts > 0,
        "the handshake also tried the direct path"
    );
    // A relayed datagram never moves the direct endpoint.
    let b_seen_by_a = world.nodes[0].peer(&world.nodes[1].public_key()).unwrap();
    assert_eq!(b_seen_by_a.endpoint, Some(world.addrs[1]));
}

#[test]
fn a_working_direct_path_takes_over_and_the_relay_takes_back_when_it_goes_quiet() {
    let mut world = World::new(true);
    world.send(0, b"first");
    world.send(1, b"answer");
    assert_eq!(world.path(0), Path::Direct(world.addrs[1]));
    assert_eq!(world.path(1), Path::Direct(world.addrs[0]));
    assert_eq!(world.send(0, b"direct"), world.addrs[1]);

    // The direct path breaks; after DIRECT_TRUST without a direct datagram
    // the relay carries the traffic, in the same session (a data message).
    world.direct_open = false;
    world.advance(warren_mesh::DIRECT_TRUST + Duration::from_secs(1));
    let before = world.delivered[1].len();
    let packet = ipv4_packet(mesh_ip(0), mesh_ip(1), b"after the break");
    let mut out = vec![0u8; 65536];
    let t = world.nodes[0]
        .send_ip(world.now, &packet, &mut out)
        .unwrap()
        .unwrap();
    assert_eq!(t.dst, world.relay_addr);
    assert_eq!(t.payload[warren_wire::frame::SEND_HEADER_LEN], WG_DATA);
    let payload = t.payload.to_vec();
    world
        .in_flight
        .push_back((world.addrs[0], world.relay_addr, payload));
    world.pump();
    assert_eq!(world.delivered[1].len(), before + 1);
}

#[test]
fn a_direct_path_that_opens_later_is_found_by_the_probes() {
    let mut world = World::new(false);
    world.send(0, b"first");
    world.send(1, b"answer");
    assert_eq!(world.path(0), Path::Relay(world.relay_addr));

    // The direct path starts working (a NAT mapping opened, a firewall rule
    // went away): the next probe finds it, with no new handshake.
    world.direct_open = true;
    world.advance(warren_mesh::DIRECT_PROBE_INTERVAL + Duration::from_millis(300));
    assert_eq!(world.send(1, b"via the probe's proof"), world.addrs[0]);
    world.send(0, b"and back");
    assert_eq!(world.path(0), Path::Direct(world.addrs[1]));
    assert_eq!(world.path(1), Path::Direct(world.addrs[0]));
    assert_eq!(world.delivered[0].len(), 2);
    assert_eq!(world.delivered[1].len(), 2);
}

#[test]
fn peers_that_know_nothing_of_each_other_find_the_direct_path_through_disco() {
    let mut world = World::build(true, false);
    // The ticks exchange CallMeMaybe (each node's reflexive address, as the
    // relay saw it) through the relay and probe the candidates.
    world.punch();
    assert_eq!(world.path(0), Path::Direct(world.addrs[1]));
    assert_eq!(world.path(1), Path::Direct(world.addrs[0]));
    assert_eq!(world.delivered[1].len(), 2);
    assert_eq!(world.delivered[0].len(), 1);
}

/// Two nodes on one LAN behind a NAT that does not hairpin: their
/// reflexive addresses cannot reach each other, their LAN addresses can.
#[test]
fn peers_on_one_lan_go_direct_by_their_local_addresses() {
    let mut world = World::build(false, false);
    for i in 0..2 {
        let lan = world.lan[i];
        world.nodes[i].set_local_candidates(vec![lan]);
    }
    world.punch();
    assert_eq!(world.path(0), Path::Direct(world.lan[1]));
    assert_eq!(world.path(1), Path::Direct(world.lan[0]));
    assert_eq!(world.delivered[1].len(), 2);
}

#[test]
fn disco_calls_are_refused_when_replayed_or_forged_and_only_probeable_candidates_are_probed() {
    use warren_mesh::disco::{DiscoKeys, DiscoNonce, Message};
    use warren_mesh::DropReason;
    use warren_wire::Frame;

    let mut world = World::build(false, false);
    let a = world.nodes[0].public_key();
    let b = world.nodes[1].public_key();
    let b_keys = DiscoKeys::new(&private_key(2), a);
    let good: SocketAddr = "198.51.100.99:4000".parse().unwrap();
    let own: SocketAddr = "192.168.1.10:51820".parse().unwrap();
    let v6: SocketAddr = "[2001:db8::5]:4000".parse().unwrap();
    world.nodes[0].set_local_candidates(vec![own]);
    let call = b_keys.seal(
        &Message::CallMeMaybe(vec![
            "127.0.0.1:1".parse().unwrap(),
            "224.0.0.1:5".parse().unwrap(),
            "198.51.100.50:0".parse().unwrap(),
            world.relay_addr,
            own,
            v6,
            good,
        ]),
        DiscoNonce::new([7; 8], 1_000_000),
    );
    let relayed =
        |payload: &[u8], src: &warren_wire::PublicKey| Frame::Recv { src: *src, payload }.to_vec();
    let mut out = vec![0u8; 65536];
    let (now, relay) = (world.now, world.relay_addr);
    assert_eq!(
        world.nodes[0].handle_datagram(now, relay, &relayed(&call, &b), &mut out),
        Ok(None)
    );

    // The next tick probes the one probeable candidate, nothing else: not
    // this node's own address, not IPv6 (this node has none).
    let later = now + Duration::from_millis(300);
    assert_eq!(world.probes_of_node_0(later), vec![good]);

    // The same call again is a replay.
    let replay = world.nodes[0].handle_datagram(later, relay, &relayed(&call, &b), &mut out);
    assert_eq!(replay.unwrap_err().reason, DropReason::Replayed);

    // A call sealed by b but relayed in a stranger's name is refused.
    let stranger = public_of(&private_key(9));
    let fresh = b_keys.seal(
        &Message::CallMeMaybe(vec![good]),
        DiscoNonce::new([7; 8], 1_000_001),
    );
    assert!(world.nodes[0]
        .handle_datagram(later, relay, &relayed(&fresh, &stranger), &mut out)
        .is_err());
    // ...and one whose claimed sender is not the relayed sender, too.
    let c_keys = DiscoKeys::new(&private_key(9), a);
    let forged = c_keys.seal(
        &Message::CallMeMaybe(vec![good]),
        DiscoNonce::new([8; 8], 1),
    );
    let refused = world.nodes[0].handle_datagram(later, relay, &relayed(&forged, &b), &mut out);
    assert_eq!(refused.unwrap_err().reason, DropReason::Unauthenticated);
}

/// IPv6 candidates are probed when both ends have IPv6, and only then.
#[test]
fn ipv6_candidates_are_probed_by_nodes_with_ipv6() {
    use warren_mesh::disco::{DiscoKeys, DiscoNonce, Message};
    use warren_wire::Frame;

    let v6: SocketAddr = "[2001:db8::5]:4000".parse().unwrap();
    let v4: SocketAddr = "198.51.100.99:4000".parse().unwrap();
    let probed = |own: Vec<SocketAddr>| {
        let mut world = World::build(false, false);
        world.nodes[0].set_local_candidates(own);
        let a = world.nodes[0].public_key();
        let b = world.nodes[1].public_key();
        let call = DiscoKeys::new(&private_key(2), a).seal(
            &Message::CallMeMaybe(vec![v6, v4]),
            DiscoNonce::new([7; 8], 1),
        );
        let relayed = Frame::Recv {
            src: b,
            payload: &call,
        }
        .to_vec();
        let (now, relay) = (world.now, world.relay_addr);
        let mut out = vec![0u8; 65536];
        world.nodes[0]
            .handle_datagram(now, relay, &relayed, &mut out)
            .unwrap();
        world.probes_of_node_0(now + Duration::from_millis(300))
    };
    assert_eq!(
        probed(vec!["192.168.1.10:51820".parse().unwrap()]),
        vec![v4]
    );
    assert_eq!(
        probed(vec!["[2001:db8::1]:51820".parse().unwrap()]),
        vec![v6, v4]
    );
}

/// Candidates the control plane relays are filtered and probed like those
/// of a `CallMeMaybe`; an unknown peer's are refused.
#[test]
fn candidates_from_the_control_plane_are_probed_at_the_next_tick() {
    let mut world = World::build(false, false);
    let b = world.nodes[1].public_key();
    let (now, relay) = (world.now, world.relay_addr);
    let good: SocketAddr = "198.51.100.77:51820".parse().unwrap();
    let candidates = vec![relay, "127.0.0.1:9".parse().unwrap(), good];
    assert!(world.nodes[0].set_peer_candidates(&b, candidates, now));
    assert!(!world.nodes[0].set_peer_candidates(&public_of(&private_key(9)), vec![good], now));
    let targets = world.probes_of_node_0(now + Duration::from_millis(300));
    assert_eq!(targets, vec![good]);
}
