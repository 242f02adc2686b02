//! End-to-end tests of `warren device` on real network namespaces, real TUN
//! devices and real UDP: traffic between warren devices, interop with
//! wireguard-go and boringtun-cli, `wg show`/`wg set`, roaming, refusal of
//! bad input under load, and clean shutdown.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use support::{
    capture_udp_payloads, echo_server, echo_transfer, pair, pattern, transfer, warren_stats,
    WG_PORT,
};
use warren_mesh::DropReason;
use warren_netns_tests::{wait_for, Lab, PeerConfig, Signal, WgImpl};

const MIB: usize = 1024 * 1024;

#[test]
fn warren_devices_move_10_mib_both_ways_with_content_intact() {
    let lab = Lab::new("dev-tcp").unwrap();
    let p = pair(&lab, WgImpl::Warren, WgImpl::Warren).unwrap();
    transfer(&p.hosts.a.ns, &p.hosts.b.ns, p.b.ip(), 10 * MIB).unwrap();
    // And initiated from the other side.
    transfer(&p.hosts.b.ns, &p.hosts.a.ns, p.a.ip(), 10 * MIB).unwrap();
}

fn interop(reference: WgImpl) {
    let lab = Lab::new(&format!("dev-{}", reference.short())).unwrap();
    let p = pair(&lab, WgImpl::Warren, reference).unwrap();
    // The reference peer initiates the first connection, warren the second.
    transfer(&p.hosts.b.ns, &p.hosts.a.ns, p.a.ip(), 4 * MIB).unwrap();
    transfer(&p.hosts.a.ns, &p.hosts.b.ns, p.b.ip(), 4 * MIB).unwrap();
    // boringtun-cli reports no handshake in the first second of a session: poll.
    p.b.wait_for_handshake(&p.key_a.public, Duration::from_secs(5))
        .unwrap();
    let seen_by_reference = p.b.peer(&p.key_a.public).unwrap();
    assert!(seen_by_reference.rx_bytes > 8 * MIB as u64);
}

#[test]
fn warren_interoperates_with_wireguard_go() {
    interop(WgImpl::WireguardGo);
}

#[test]
fn warren_interoperates_with_boringtun_cli() {
    interop(WgImpl::BoringtunCli);
}

#[test]
fn wg_show_reports_the_peer_and_wg_set_adds_and_removes_peers() {
    let lab = Lab::new("dev-wg").unwrap();
    let p = pair(&lab, WgImpl::Warren, WgImpl::Warren).unwrap();
    transfer(&p.hosts.a.ns, &p.hosts.b.ns, p.b.ip(), MIB).unwrap();

    let dump = p.a.dump().unwrap();
    assert_eq!(dump.public_key.as_deref(), Some(p.key_a.public.as_str()));
    assert_eq!(dump.listen_port, WG_PORT);
    let peer = p.a.peer(&p.key_b.public).unwrap();
    assert_eq!(
        peer.endpoint,
        Some(SocketAddr::from((p.hosts.b.ip, WG_PORT)))
    );
    assert_eq!(peer.allowed_ips, vec!["10.9.0.2/32".to_string()]);
    let handshake = peer.latest_handshake.expect("a handshake happened");
    let age = SystemTime::now()
        .duration_since(handshake)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(60), "handshake {age:?} ago");
    assert!(peer.tx_bytes > MIB as u64 && peer.rx_bytes > MIB as u64);

    transfer(&p.hosts.a.ns, &p.hosts.b.ns, p.b.ip(), MIB).unwrap();
    let later = p.a.peer(&p.key_b.public).unwrap();
    assert!(later.tx_bytes > peer.tx_bytes + MIB as u64);
    assert!(later.rx_bytes > peer.rx_bytes + MIB as u64);

    // wg set: add a third peer with two prefixes, then remove it.
    let extra = warren_netns_tests::KeyPair::generate().unwrap();
    p.a.add_peer(&PeerConfig {
        public_key: extra.public.clone(),
        allowed_ips: vec!["10.9.0.3/32".into(), "10.77.0.0/16".into()],
        endpoint: Some("10.0.0.3:51820".parse().unwrap()),
        keepalive: Some(25),
    })
    .unwrap();
    let added = p.a.peer(&extra.public).unwrap();
    assert_eq!(added.keepalive, Some(25));
    assert_eq!(added.allowed_ips.len(), 2);
    let routes = p
        .hosts
        .a
        .ns
        .ip(["route", "show", "dev", &p.a.name])
        .unwrap();
    assert!(
        routes.contains("10.77.0.0/16"),
        "route for the new prefix:\n{routes}"
    );

    p.a.set(["peer", &extra.public, "remove"]).unwrap();
    assert_eq!(p.a.dump().unwrap().peers.len(), 1);
    let routes = p
        .hosts
        .a
        .ns
        .ip(["route", "show", "dev", &p.a.name])
        .unwrap();
    assert!(
        !routes.contains("10.77.0.0/16"),
        "route removed with the peer:\n{routes}"
    );
    // The remaining peer still works.
    transfer(&p.hosts.a.ns, &p.hosts.b.ns, p.b.ip(), MIB).unwrap();
}

#[test]
fn a_peer_that_changes_address_mid_transfer_keeps_its_transfer() {
    let lab = Lab::new("dev-roam").unwrap();
    let p = pair(&lab, WgImpl::Warren, WgImpl::Warren).unwrap();
    let server = echo_server(&p.hosts.b.ns).unwrap();
    let len = 24 * MIB;
    let data = Arc::new(pattern(7, len));
    let progress = Arc::new(AtomicU64::new(0));
    let client = echo_transfer(&p.hosts.a.ns, p.b.ip(), data, Arc::clone(&progress)).unwrap();
    wait_for("a quarter of the transfer", Duration::from_secs(30), || {
        progress.load(Ordering::Relaxed) > (len / 4) as u64
    })
    .unwrap();

    // Host a moves to a new underlay address; the old one disappears.
    let a_ns = &p.hosts.a.ns;
    // Keep the new address when the old (primary) one is deleted.
    a_ns.sysctl("net.ipv4.conf.eth0.promote_secondaries", "1")
        .unwrap();
    a_ns.ip(["addr", "add", "10.0.0.11/24", "dev", "eth0"])
        .unwrap();
    a_ns.ip(["addr", "del", "10.0.0.1/24", "dev", "eth0"])
        .unwrap();

    client.join().unwrap().unwrap();
    assert_eq!(server.join().unwrap().unwrap(), len as u64);
    let seen = p.b.peer(&p.key_a.public).unwrap();
    assert_eq!(seen.endpoint, Some("10.0.0.11:51820".parse().unwrap()));
}

#[test]
fn junk_truncated_replayed_and_unknown_datagrams_are_dropped_and_counted_during_a_transfer() {
    let lab = Lab::new("dev-junk").unwrap();
    let p = pair(&lab, WgImpl::Warren, WgImpl::Warren).unwrap();
    // Capture real data messages b sends to a, to replay them later.
    let capture = capture_udp_payloads(
        &p.hosts.b.ns,
        p.hosts.b.ip,
        WG_PORT,
        4,
        50,
        Duration::from_secs(20),
    )
    .unwrap();
    let server = echo_server(&p.hosts.b.ns).unwrap();
    let len = 16 * MIB;
    let progress = Arc::new(AtomicU64::new(0));
    let client = echo_transfer(
        &p.hosts.a.ns,
        p.b.ip(),
        Arc::new(pattern(3, len)),
        Arc::clone(&progress),
    )
    .unwrap();
    let captured = capture.join().unwrap();
    let replay = captured.clone();
    assert!(
        captured.len() >= 10,
        "captured {} data messages",
        captured.len()
    );

    // Flood a's WireGuard port from another port on host b while the transfer runs.
    let target = SocketAddr::from((p.hosts.a.ip, WG_PORT));
    let unknown_init = handshake_initiation_from_unknown_key(&p.key_a.public);
    let kernel_dropped_before = udp_receive_buffer_errors(&p.hosts.a.ns);
    let sent = lab
        .in_ns(&p.hosts.b.ns, move || {
            let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
            let mut sent = 0u64;
            let mut rng = 0x9e37_79b9_7f4a_7c15u64;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            for round in 0..40 {
                for message in &captured {
                    // Replayed as is, truncated, and with a flipped bit.
                    let cut = (next() as usize) % message.len();
                    let mut flipped = message.clone();
                    let at = (next() as usize) % flipped.len();
                    flipped[at] ^= 1 << (next() % 8);
                    for datagram in [message.as_slice(), &message[..cut], &flipped] {
                        socket.send_to(datagram, target).unwrap();
                        sent += 1;
                    }
                }
                // Random bytes, some dressed as WireGuard message types.
                for kind in 0..8u8 {
                    // kind 0: exactly the size of a handshake initiation, so it
                    // gets as far as the MAC check.
                    let size = if kind == 0 {
                        148
                    } else {
                        1 + (next() as usize) % 1400
                    };
                    let mut junk: Vec<u8> = (0..size).map(|_| next() as u8).collect();
                    if kind < 4 {
                        junk[0] = kind + 1;
                        if junk.len() > 4 {
                            junk[1..4].fill(0);
                        }
                    }
                    socket.send_to(&junk, target).unwrap();
                    sent += 1;
                }
                // A well-formed handshake from a key a does not know.
                socket.send_to(&unknown_init, target).unwrap();
                sent += 1;
                if round % 10 == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            sent
        })
        .unwrap();

    client.join().unwrap().unwrap();
    assert_eq!(server.join().unwrap().unwrap(), len as u64);
    assert!(
        p.a.proc.is_running(),
        "the device survived:\n{}",
        p.a.proc.log_tail(20)
    );

    let stats = warren_stats(&p.a).unwrap();
    eprintln!("sent {sent} bad datagrams; drops: {stats:?}");
    assert!(
        stats.device_count(DropReason::Replayed) >= 40,
        "replays counted: {stats:?}"
    );
    assert!(
        stats.device_count(DropReason::Unauthenticated) > 0,
        "bit flips counted: {stats:?}"
    );
    assert!(
        stats.device_count(DropReason::Malformed) > 0,
        "truncations counted: {stats:?}"
    );
    assert!(
        stats.device_count(DropReason::InvalidMac) > 0,
        "handshakes not for us counted: {stats:?}"
    );
    assert!(
        stats.device_count(DropReason::UnknownPeer) >= 40,
        "handshakes from unknown keys counted: {stats:?}"
    );
    // Every bad datagram that reached the socket was refused and counted
    // (the kernel may drop some of the flood when the socket buffer is
    // full); the device's own traffic may add a few more drops (IPv6
    // router solicitations from its interface: no_route).
    let kernel_dropped = udp_receive_buffer_errors(&p.hosts.a.ns) - kernel_dropped_before;
    eprintln!("the kernel dropped {kernel_dropped} datagrams for a full socket buffer");
    assert!(
        stats.device_total() + kernel_dropped >= sent,
        "{} drops for {sent} bad datagrams",
        stats.device_total()
    );
    // With the tunnel quiet, replay b's captured messages from another
    // address of b's: not one may move a's endpoint for b.
    p.hosts
        .b
        .ns
        .ip(["addr", "add", "10.0.0.3/24", "dev", "eth0"])
        .unwrap();
    let replays = replay.len() as u64;
    lab.in_ns(&p.hosts.b.ns, move || {
        let socket = UdpSocket::bind("10.0.0.3:0").unwrap();
        for message in &replay {
            socket.send_to(message, target).unwrap();
        }
    })
    .unwrap();
    wait_for("a to count the replays", Duration::from_secs(5), || {
        warren_stats(&p.a)
            .unwrap()
            .device_count(DropReason::Replayed)
            >= stats.device_count(DropReason::Replayed) + replays
    })
    .unwrap();
    let seen = p.a.peer(&p.key_b.public).unwrap();
    assert_eq!(
        seen.endpoint,
        Some(SocketAddr::from((p.hosts.b.ip, WG_PORT)))
    );
}

#[test]
fn handshake_is_retried_until_the_peer_knows_us_and_keepalives_flow_when_idle() {
    let lab = Lab::new("dev-timers").unwrap();
    let p = pair(&lab, WgImpl::Warren, WgImpl::Warren).unwrap();
    // b forgets a: a's first handshakes go unanswered.
    p.b.set(["peer", &p.key_a.public, "remove"]).unwrap();
    let server = echo_server(&p.hosts.b.ns).unwrap();
    let client = echo_transfer(
        &p.hosts.a.ns,
        p.b.ip(),
        Arc::new(pattern(5, 64 * 1024)),
        Arc::new(AtomicU64::new(0)),
    )
    .unwrap();
    wait_for("b to refuse a's handshake", Duration::from_secs(10), || {
        warren_stats(&p.b)
            .map(|stats| stats.device_count(DropReason::UnknownPeer) > 0)
            .unwrap_or(false)
    })
    .unwrap();
    // b learns a again; a's next handshake retry (every 5 s) gets through.
    p.b.add_peer(&PeerConfig {
        public_key: p.key_a.public.clone(),
        allowed_ips: vec!["10.9.0.1/32".into()],
        endpoint: None,
        keepalive: None,
    })
    .unwrap();
    client.join().unwrap().unwrap();
    server.join().unwrap().unwrap();

    // Persistent keepalive: with no traffic at all, a keeps talking to b.
    p.a.set(["peer", &p.key_b.public, "persistent-keepalive", "1"])
        .unwrap();
    let before = p.b.peer(&p.key_a.public).unwrap().rx_bytes;
    std::thread::sleep(Duration::from_millis(3500));
    let after = p.b.peer(&p.key_a.public).unwrap().rx_bytes;
    // Only keepalives (empty data messages, 32 bytes each) crossed.
    let keepalive_bytes = after - before;
    assert!(
        keepalive_bytes >= 2 * 32 && keepalive_bytes % 32 == 0,
        "keepalives arrived: {before} -> {after} bytes"
    );
}

/// UDP datagrams the kernel dropped in `ns` because a socket buffer was full.
fn udp_receive_buffer_errors(ns: &warren_netns_tests::Netns) -> u64 {
    let snmp = ns.exec(["cat", "/proc/net/snmp"]).unwrap();
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let (names, values) = (udp.next().unwrap(), udp.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .map(|(_, value)| value.parse().unwrap())
        .unwrap()
}

/// A valid handshake initiation to `responder` from a fresh key it does not know.
fn handshake_initiation_from_unknown_key(responder: &str) -> Vec<u8> {
    use base64::Engine as _;
    let responder: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(responder)
        .unwrap()
        .try_into()
        .unwrap();
    let stranger = boringtun::x25519::StaticSecret::from([0x42u8; 32]);
    let mut tunn = boringtun::noise::Tunn::new(
        stranger,
        boringtun::x25519::PublicKey::from(responder),
        None,
        None,
        1,
        None,
    );
    let mut out = vec![0u8; 256];
    match tunn.format_handshake_initiation(&mut out, false) {
        boringtun::noise::TunnResult::WriteToNetwork(init) => init.to_vec(),
        other => panic!("no handshake initiation: {other:?}"),
    }
}

#[test]
fn sigint_and_sigterm_remove_the_interface_and_uapi_socket() {
    for signal in [Signal::Int, Signal::Term] {
        let lab = Lab::new("dev-stop").unwrap();
        let p = pair(&lab, WgImpl::Warren, WgImpl::Warren).unwrap();
        transfer(&p.hosts.a.ns, &p.hosts.b.ns, p.b.ip(), MIB).unwrap();
        p.a.proc.signal(signal).unwrap();
        let status = p.a.proc.wait_exit(Duration::from_secs(10)).unwrap();
        assert!(
            status.success(),
            "exit after {signal:?}: {status:?}\n{}",
            p.a.proc.log_tail(10)
        );
        let links = p.hosts.a.ns.ip(["-brief", "link"]).unwrap();
        assert!(
            !links.contains(&p.a.name),
            "interface still there:\n{links}"
        );
        assert!(!warren_netns_tests::wg::uapi_socket(&p.a.name).exists());
    }
}
