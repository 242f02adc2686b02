//! Behaviour of the mesh core on a virtual network: handshakes, cryptokey
//! routing, roaming, path changes, keepalives and refusal of bad input.

mod support;

use proptest::prelude::*;
use std::time::Duration;
use support::{ipv4_packet, mesh_ip, Net};
use warren_mesh::{DropReason, Path};

const WG_DATA: u8 = 4;
const WG_HANDSHAKE_INIT: u8 = 1;

#[test]
fn first_packet_triggers_handshake_and_arrives_intact_both_ways() {
    let mut net = Net::full_mesh(2);
    let hello = ipv4_packet(mesh_ip(0), mesh_ip(1), b"hello from 0");
    net.send_ip(0, &hello).unwrap();
    net.drive();
    assert_eq!(net.hosts[1].delivered, vec![hello]);

    let reply = ipv4_packet(mesh_ip(1), mesh_ip(0), b"hello back");
    net.send_ip(1, &reply).unwrap();
    net.drive();
    assert_eq!(net.hosts[0].delivered, vec![reply]);

    let stats = net.hosts[0].node.peer(&net.key(1)).unwrap();
    assert!(stats.last_handshake.is_some());
    assert!(stats.tx_bytes > 0 && stats.rx_bytes > 0);
    assert_eq!(stats.drops.total(), 0);
}

#[test]
fn packet_to_an_address_no_peer_owns_is_dropped_as_no_route() {
    let mut net = Net::full_mesh(2);
    let stray = ipv4_packet(mesh_ip(0), "10.99.0.1".parse().unwrap(), b"x");
    let err = net.send_ip(0, &stray).unwrap_err();
    assert_eq!(err.reason, DropReason::NoRoute);
    assert_eq!(net.hosts[0].node.drops().get(DropReason::NoRoute), 1);
    assert!(net.in_flight.is_empty());
}

#[test]
fn non_ip_packet_from_the_tun_is_dropped() {
    let mut net = Net::full_mesh(2);
    let err = net.send_ip(0, &[0x10, 0, 0, 0]).unwrap_err();
    assert_eq!(err.reason, DropReason::NotIp);
    assert_eq!(net.hosts[0].node.drops().get(DropReason::NotIp), 1);
}

#[test]
fn decrypted_packet_with_a_source_outside_allowed_ips_is_dropped() {
    let mut net = Net::full_mesh(2);
    net.send_0_to_1(b"ok");
    net.drive();
    // Host 0 spoofs an inner source it is not allowed to use on host 1.
    let spoofed = ipv4_packet("10.0.0.77".parse().unwrap(), mesh_ip(1), b"spoof");
    net.send_ip(0, &spoofed).unwrap();
    let (from, t) = net.in_flight.pop_front().unwrap();
    let err = net.deliver(from, t).unwrap().unwrap_err();
    assert_eq!(err.reason, DropReason::SourceNotAllowed);
    assert_eq!(
        net.hosts[1].delivered.len(),
        1,
        "only the legitimate packet"
    );
    let stats = net.hosts[1].node.peer(&net.key(0)).unwrap();
    assert_eq!(stats.drops.get(DropReason::SourceNotAllowed), 1);
}

#[test]
fn authenticated_packet_from_a_new_address_moves_the_endpoint() {
    let mut net = Net::full_mesh(2);
    net.establish();
    let handshake_before = net.hosts[1].node.peer(&net.key(0)).unwrap().last_handshake;

    // Host 0 changes address (a NAT rebinding, a new Wi-Fi).
    let roamed: std::net::SocketAddr = "198.51.100.7:4000".parse().unwrap();
    net.hosts[0].addr = roamed;
    net.send_0_to_1(b"b");
    net.drive();
    let seen = net.hosts[1].node.peer(&net.key(0)).unwrap();
    assert_eq!(seen.path, Path::Direct(roamed));

    // Host 1's replies now go to the new address, in the same session.
    net.send_ip(1, &ipv4_packet(mesh_ip(1), mesh_ip(0), b"c"))
        .unwrap();
    let (_, t) = net.in_flight.front().unwrap();
    assert_eq!(t.dst, roamed);
    assert_eq!(t.payload[0], WG_DATA);
    net.drive();
    assert_eq!(net.hosts[0].delivered.len(), 1);
    assert!(net.hosts[1].node.peer(&net.key(0)).unwrap().last_handshake >= handshake_before);
}

#[test]
fn unauthenticated_datagram_from_a_new_address_does_not_move_the_endpoint() {
    let mut net = Net::full_mesh(2);
    net.establish();
    net.send_0_to_1(b"b");
    let (_, mut t) = net.in_flight.pop_front().unwrap();
    let last = t.payload.len() - 1;
    t.payload[last] ^= 1; // break the AEAD tag
    let attacker: std::net::SocketAddr = "203.0.113.66:9999".parse().unwrap();
    let err = net.deliver(attacker, t).unwrap().unwrap_err();
    assert_eq!(err.reason, DropReason::Unauthenticated);
    let seen = net.hosts[1].node.peer(&net.key(0)).unwrap();
    assert_eq!(seen.path, Path::Direct(net.hosts[0].addr));
}

#[test]
fn changing_a_peers_path_keeps_its_session() {
    let mut net = Net::full_mesh(2);
    net.establish();
    // Host 1 is also reachable at a second address; host 0 switches to it.
    let second: std::net::SocketAddr = "198.51.100.2:7000".parse().unwrap();
    net.aliases.push((second, 1));
    let key1 = net.key(1);
    net.hosts[0].node.set_endpoint(&key1, Some(second)).unwrap();
    net.send_0_to_1(b"b");
    let (_, t) = net.in_flight.front().unwrap();
    assert_eq!(t.dst, second);
    assert_eq!(
        t.payload[0], WG_DATA,
        "no new handshake after a path change"
    );
    net.drive();
    assert_eq!(net.hosts[1].delivered.len(), 2);
}

#[test]
fn replayed_data_is_dropped_and_counted() {
    let mut net = Net::full_mesh(2);
    net.establish();
    net.send_0_to_1(b"b");
    let (from, t) = net.in_flight.pop_front().unwrap();
    assert_eq!(net.deliver(from, t.clone()).unwrap(), Ok(true));
    let before = net.hosts[1].node.peer(&net.key(0)).unwrap();
    // The replay comes from somewhere else: it must not move the endpoint.
    let attacker: std::net::SocketAddr = "203.0.113.66:9999".parse().unwrap();
    let err = net.deliver(attacker, t).unwrap().unwrap_err();
    assert_eq!(err.reason, DropReason::Replayed);
    let after = net.hosts[1].node.peer(&net.key(0)).unwrap();
    assert_eq!(after.rx_bytes, before.rx_bytes);
    assert_eq!(after.path, Path::Direct(from));
    assert_eq!(net.hosts[1].delivered.len(), 2);
}

#[test]
fn handshake_from_an_unknown_key_is_refused_without_reply() {
    let mut net = Net::full_mesh(3);
    // Host 1 forgets host 2; host 2 still knows host 1.
    let key2 = net.key(2);
    assert!(net.hosts[1].node.remove_peer(&key2));
    net.send_ip(2, &ipv4_packet(mesh_ip(2), mesh_ip(1), b"x"))
        .unwrap();
    let (from, t) = net.in_flight.pop_front().unwrap();
    assert_eq!(t.payload[0], WG_HANDSHAKE_INIT);
    let err = net.deliver(from, t).unwrap().unwrap_err();
    assert_eq!(err.reason, DropReason::UnknownPeer);
    assert!(net.in_flight.is_empty(), "no reply to an unknown key");
}

#[test]
fn peer_without_endpoint_cannot_be_sent_to_until_it_calls_in() {
    let mut net = Net::full_mesh(2);
    let key1 = net.key(1);
    net.hosts[0].node.set_endpoint(&key1, None).unwrap();
    let err = net
        .send_ip(0, &ipv4_packet(mesh_ip(0), mesh_ip(1), b"a"))
        .unwrap_err();
    assert_eq!(err.reason, DropReason::NoEndpoint);
    // Host 1 initiates; host 0 learns its endpoint from the handshake.
    net.send_ip(1, &ipv4_packet(mesh_ip(1), mesh_ip(0), b"b"))
        .unwrap();
    net.drive();
    assert_eq!(net.hosts[0].delivered.len(), 1);
    assert_eq!(
        net.hosts[0].node.peer(&key1).unwrap().path,
        Path::Direct(net.hosts[1].addr)
    );
}

#[test]
fn persistent_keepalive_is_sent_after_the_interval_of_silence() {
    let mut net = Net::full_mesh(2);
    net.establish();
    let key1 = net.key(1);
    net.hosts[0]
        .node
        .set_persistent_keepalive(&key1, 5)
        .unwrap();
    net.advance(Duration::from_secs(2));
    assert!(net
        .in_flight
        .iter()
        .all(|(from, _)| *from != net.hosts[0].addr));
    net.advance(Duration::from_secs(4));
    let keepalive = net
        .in_flight
        .iter()
        .find(|(from, _)| *from == net.hosts[0].addr)
        .expect("a keepalive after 5 s of silence");
    assert_eq!(keepalive.1.payload[0], WG_DATA);
    assert_eq!(keepalive.1.payload.len(), 32, "an empty data message");
    let rx_before = net.hosts[1].node.peer(&net.key(0)).unwrap().rx_bytes;
    net.drive();
    assert!(net.hosts[1].node.peer(&net.key(0)).unwrap().rx_bytes > rx_before);
}

#[test]
fn allowed_ip_moves_to_the_peer_that_claims_it_last() {
    let mut net = Net::full_mesh(3);
    let (key1, key2) = (net.key(1), net.key(2));
    let shared: ip_network::IpNetwork = "10.50.0.0/16".parse().unwrap();
    net.hosts[0].node.add_allowed_ip(&key1, shared).unwrap();
    net.hosts[0].node.add_allowed_ip(&key2, shared).unwrap();
    let p1 = net.hosts[0].node.peer(&key1).unwrap();
    let p2 = net.hosts[0].node.peer(&key2).unwrap();
    assert!(!p1.allowed_ips.contains(&shared));
    assert!(p2.allowed_ips.contains(&shared));
}

#[test]
fn every_truncation_of_valid_messages_is_dropped() {
    let mut net = Net::full_mesh(2);
    net.send_0_to_1(b"a");
    let (from, init) = net.in_flight.pop_front().unwrap();
    net.deliver(from, init.clone());
    net.drive();
    net.send_0_to_1(b"data");
    let (_, data) = net.in_flight.pop_front().unwrap();
    for message in [init, data] {
        for len in 0..message.payload.len() {
            let cut = warren_mesh::Transmit {
                payload: message.payload[..len].to_vec(),
                ..message.clone()
            };
            let result = net.deliver(from, cut).unwrap();
            assert!(result.is_err(), "truncation to {len} bytes was accepted");
        }
    }
    assert_eq!(net.hosts[1].delivered.len(), 1);
}

#[test]
fn forged_handshake_responses_never_move_the_endpoint_even_in_a_flood() {
    let mut net = Net::full_mesh(2);
    net.establish();
    let real = net.hosts[0].addr;
    let attacker: std::net::SocketAddr = "203.0.113.66:9999".parse().unwrap();
    let victim = net.key(1);
    // Session indexes are visible in every data message's header; try the
    // whole range a peer index owns, well past any per-peer rate limit.
    for nonce in 0..300u32 {
        let receiver_index = (1000 << 8) | (nonce & 0xff);
        let forged = support::forged_handshake_response(&victim, receiver_index, nonce);
        let t = warren_mesh::Transmit::udp(net.hosts[1].addr, forged);
        assert!(net.deliver(attacker, t).unwrap().is_err());
    }
    let seen = net.hosts[1].node.peer(&net.key(0)).unwrap();
    assert_eq!(seen.path, Path::Direct(real));
    // Past the node's handshake rate limit the forger gets cookie replies
    // (type 3, 64 bytes): smaller than what it sent, and nothing else.
    for (_, t) in net.in_flight.iter().filter(|(_, t)| t.dst == attacker) {
        assert_eq!((t.payload[0], t.payload.len()), (3, 64));
    }
}

#[test]
fn resetting_the_same_private_key_keeps_sessions_and_a_new_key_restarts_them() {
    let mut net = Net::full_mesh(2);
    net.establish();
    let own = net.hosts[0].node.private_key();
    net.hosts[0].node.set_private_key(&own);
    net.send_0_to_1(b"same key");
    assert_eq!(net.in_flight.front().unwrap().1.payload[0], WG_DATA);
    net.drive();

    net.hosts[0].node.set_private_key(&support::private_key(99));
    net.send_0_to_1(b"new key");
    assert_eq!(
        net.in_flight.front().unwrap().1.payload[0],
        WG_HANDSHAKE_INIT,
        "a new identity needs a new handshake"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary datagrams never panic, never reach the TUN, are always
    /// counted, never get a reply larger than themselves, and leave the
    /// established session working.
    #[test]
    fn junk_datagrams_change_nothing(
        junk in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..300), 1..20),
        first_byte in 1u8..=4,
        from_port in 1u16..,
    ) {
        let mut net = Net::full_mesh(2);
        net.establish();
        let before = net.hosts[1].node.peer(&net.key(0)).unwrap();
        let drops_before = net.hosts[1].node.drops().total();
        let from = std::net::SocketAddr::from(([203, 0, 113, 9], from_port));
        for mut datagram in junk.clone() {
            // Half the junk looks like a WireGuard message type.
            if datagram.len() > 4 && datagram[1] % 2 == 0 {
                datagram[0] = first_byte;
                datagram[1..4].fill(0);
            }
            let len = datagram.len();
            let t = warren_mesh::Transmit::udp(net.hosts[1].addr, datagram);
            let result = net.deliver(from, t).unwrap();
            prop_assert!(result.is_err());
            // `deliver` moved host 1's replies onto the wire.
            for (_, reply) in net.in_flight.drain(..) {
                prop_assert!(reply.payload.len() <= len, "amplification");
            }
        }
        let after = net.hosts[1].node.peer(&net.key(0)).unwrap();
        prop_assert_eq!(after.path, before.path);
        prop_assert_eq!(after.rx_bytes, before.rx_bytes);
        prop_assert_eq!(net.hosts[1].node.drops().total(), drops_before + junk.len() as u64);
        net.send_0_to_1(b"still works");
        net.drive();
        prop_assert_eq!(net.hosts[1].delivered.len(), 2);
    }
}
