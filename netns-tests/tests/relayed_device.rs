//! warren devices with a `warren relay` on the public segment: behind
//! symmetric NATs (no direct path possible) they move data through the
//! relay; with reachable endpoints they go direct, and when the direct path
//! is cut mid-transfer they fall back to the relay and the transfer
//! completes.

#![allow(clippy::unwrap_used)]

mod relay_support;
mod support;

use base64::Engine as _;
use relay_support::{metric, scrape, start_relay, unix_in, RELAY_PORT};
use std::net::SocketAddr;
use std::time::Duration;
use support::transfer;
use warren_netns_tests::topology::HostOpts;
use warren_netns_tests::wg::{uapi_socket, warren_bin};
use warren_netns_tests::{wait_for_file, Host, Internet, Lab, Nat, Spawn, WgIface, WgImpl};
use warren_relay_proto::SigningKey;
use warren_wire::PublicKey;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const MIB: usize = 1024 * 1024;
/// The device's default MTU: room for the relay's header on a 1500-byte path.
const DEFAULT_TEST_MTU: u32 = 1384;

fn key(seed: u8) -> [u8; 32] {
    let mut key = [seed; 32];
    key[0] &= 248;
    key[31] = (key[31] & 127) | 64;
    key
}

fn public(private: [u8; 32]) -> [u8; 32] {
    *warren_wire::PrivateKey::from_bytes(private)
        .public_key()
        .as_bytes()
}

/// Starts `warren device up` on `host` with tunnel address `address`, one
/// peer (`peer_public`, allowed `peer_ip`, at `peer_endpoint` if given) and
/// the relay.
#[allow(clippy::too_many_arguments)]
fn start_device(
    lab: &Lab,
    host: &Host,
    private: [u8; 32],
    address: &str,
    peer_public: [u8; 32],
    peer_ip: &str,
    peer_endpoint: Option<SocketAddr>,
    relay: SocketAddr,
    signer: &SigningKey,
    mtu: u32,
) -> WgIface {
    let name = lab.iface_name("wr");
    let dir = lab.subdir(&name).unwrap();
    let config = dir.join("wg.conf");
    std::fs::write(
        &config,
        format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 51820\n\n[Peer]\nPublicKey = {}\nAllowedIPs = {peer_ip}/32\n{}",
            B64.encode(private),
            B64.encode(peer_public),
            peer_endpoint.map_or(String::new(), |e| format!("Endpoint = {e}\n")),
        ),
    )
    .unwrap();
    let ticket = signer.mint(PublicKey::from_bytes(public(private)), unix_in(3600));
    let ticket_file = dir.join("ticket");
    std::fs::write(&ticket_file, ticket.to_base64()).unwrap();
    let proc = lab
        .spawn(
            &host.ns,
            Spawn::new(warren_bin().unwrap())
                .args(["device", "up", &name, "--address", address])
                .args(["--mtu", &mtu.to_string()])
                .arg("--config")
                .arg(config)
                .args(["--relay", &relay.to_string(), "--ticket"])
                .arg(ticket_file)
                .env("WARREN_LOG", "debug")
                .name(format!("warren-{name}")),
        )
        .unwrap();
    wait_for_file(&uapi_socket(&name), Duration::from_secs(10)).unwrap();
    WgIface {
        ns: host.ns.clone(),
        name,
        imp: WgImpl::Warren,
        ip: address.split('/').next().unwrap().parse().unwrap(),
        proc,
    }
}

/// Devices on the two `ends` (host, private key, the endpoint the other
/// end is told, if any), `10.9.0.1` and `10.9.0.2`, each with the other
/// as its peer and the relay; returns once both registered with it.
fn start_pair(
    lab: &Lab,
    ends: [(&Host, [u8; 32], Option<SocketAddr>); 2],
    relay: SocketAddr,
    signer: &SigningKey,
    mtu: u32,
) -> (WgIface, WgIface) {
    let [(host_a, key_a, ep_a), (host_b, key_b, ep_b)] = ends;
    let dev_a = start_device(
        lab,
        host_a,
        key_a,
        "10.9.0.1/24",
        public(key_b),
        "10.9.0.2",
        ep_b,
        relay,
        signer,
        mtu,
    );
    let dev_b = start_device(
        lab,
        host_b,
        key_b,
        "10.9.0.2/24",
        public(key_a),
        "10.9.0.1",
        ep_a,
        relay,
        signer,
        mtu,
    );
    for dev in [&dev_a, &dev_b] {
        dev.proc
            .wait_for_log("registered with relay", Duration::from_secs(10))
            .unwrap();
    }
    (dev_a, dev_b)
}

#[test]
fn devices_behind_symmetric_nats_move_data_through_the_relay() {
    let pair = NatPair::new("dev-relay", |_, _| (Nat::Symmetric, Nat::Symmetric));
    pair.transfer_both_ways(4 * MIB);
    let relay = SocketAddr::from((pair.relay_host.ip, RELAY_PORT));
    let seen = pair.dev_a.peer(&B64.encode(public(key(6)))).unwrap();
    assert_eq!(seen.endpoint, Some(relay), "reached through the relay");
    assert!(seen.latest_handshake.is_some());
    let forwarded = forwarded(&pair.lab, &pair.relay_host);
    assert!(
        forwarded > 8 * MIB as u64 / 1400,
        "relay forwarded {forwarded} frames"
    );
}

#[test]
fn a_reachable_peer_goes_direct_and_falls_back_to_the_relay_when_the_path_is_cut() {
    let lab = Lab::new("dev-fallback").unwrap();
    let net = Internet::new(&lab).unwrap();
    let relay_host = net.add_public_host(&lab, "relay").unwrap();
    let a = net.add_public_host(&lab, "a").unwrap();
    let b = net.add_public_host(&lab, "b").unwrap();
    let signer = SigningKey::from_seed(&[0x44; 32]).unwrap();
    let relay_proc = start_relay(&lab, &relay_host, &B64.encode(signer.control_key().0)).unwrap();
    let relay = SocketAddr::from((relay_host.ip, RELAY_PORT));
    let (key_a, key_b) = (key(3), key(4));
    let (ep_a, ep_b) = (
        SocketAddr::from((a.ip, 51820)),
        SocketAddr::from((b.ip, 51820)),
    );
    let ends = [(&a, key_a, Some(ep_a)), (&b, key_b, Some(ep_b))];
    let (dev_a, dev_b) = start_pair(&lab, ends, relay, &signer, DEFAULT_TEST_MTU);

    // The handshake and the direct probes try the direct path; it answers
    // and takes over (within a probe interval or two).
    transfer(&a.ns, &b.ns, dev_b.ip(), MIB).unwrap();
    warren_netns_tests::wait_for(
        "the direct path to take over",
        Duration::from_secs(15),
        || {
            let before = forwarded(&lab, &relay_host);
            transfer(&a.ns, &b.ns, dev_b.ip(), 256 * 1024).unwrap();
            forwarded(&lab, &relay_host) - before < 20
        },
    )
    .unwrap();
    let relayed_before = forwarded(&lab, &relay_host);
    transfer(&a.ns, &b.ns, dev_b.ip(), 4 * MIB).unwrap();
    let relayed_direct = forwarded(&lab, &relay_host) - relayed_before;
    assert!(
        relayed_direct < 100,
        "the direct path carried the transfer, the relay {relayed_direct} frames"
    );
    // `wg show` names where the traffic goes: the peer itself.
    let b_key = B64.encode(public(key_b));
    assert_eq!(dev_a.peer(&b_key).unwrap().endpoint, Some(ep_b));

    // Cut the direct path in the middle of a transfer: it completes through the relay.
    let server = support::echo_server(&b.ns).unwrap();
    let len = 24 * MIB;
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let client = support::echo_transfer(
        &a.ns,
        dev_b.ip(),
        std::sync::Arc::new(support::pattern(11, len)),
        std::sync::Arc::clone(&progress),
    )
    .unwrap();
    warren_netns_tests::wait_for("a quarter of the transfer", Duration::from_secs(30), || {
        progress.load(std::sync::atomic::Ordering::Relaxed) > (len / 4) as u64
    })
    .unwrap();
    let before_cut = forwarded(&lab, &relay_host);
    let _cut = warren_netns_tests::block_udp(&a, &b).unwrap();
    client.join().unwrap().unwrap();
    assert_eq!(server.join().unwrap().unwrap(), len as u64);
    let relayed_after = forwarded(&lab, &relay_host) - before_cut;
    // ...and now the relay.
    assert_eq!(dev_a.peer(&b_key).unwrap().endpoint, Some(relay));
    assert!(
        relayed_after > (len / 4 / 1400) as u64,
        "the relay carried the rest: {relayed_after} frames\n{}",
        relay_proc.log_tail(5)
    );
}

/// Two devices behind NATs, knowing nothing of each other's addresses,
/// with a relay on the public segment: everything a traversal test needs.
struct NatPair {
    lab: Lab,
    _net: Internet,
    relay_host: Host,
    relay_proc: warren_netns_tests::Proc,
    a: Host,
    b: Host,
    dev_a: WgIface,
    dev_b: WgIface,
    control_key: String,
}

impl NatPair {
    /// `nats` picks the two hosts' NATs (it may add carriers to the net).
    fn new(tag: &str, nats: impl FnOnce(&Lab, &Internet) -> (Nat, Nat)) -> NatPair {
        NatPair::with_mtus(tag, nats, None, DEFAULT_TEST_MTU)
    }

    /// Like [`NatPair::new`], with host a's link to its router at
    /// `link_mtu` and both tunnels at `tunnel_mtu`.
    fn with_mtus(
        tag: &str,
        nats: impl FnOnce(&Lab, &Internet) -> (Nat, Nat),
        link_mtu: Option<u32>,
        tunnel_mtu: u32,
    ) -> NatPair {
        let hosts = |lab: &Lab, net: &Internet| {
            let (nat_a, nat_b) = nats(lab, net);
            let a = net
                .add_host_with(lab, "a", nat_a, HostOpts { mtu: link_mtu })
                .unwrap();
            (a, net.add_host(lab, "b", nat_b).unwrap())
        };
        NatPair::on_hosts(tag, hosts, tunnel_mtu)
    }

    /// Devices on the two hosts `hosts` builds, tunnels at `tunnel_mtu`.
    fn on_hosts(
        tag: &str,
        hosts: impl FnOnce(&Lab, &Internet) -> (Host, Host),
        tunnel_mtu: u32,
    ) -> NatPair {
        let lab = Lab::new(tag).unwrap();
        let net = Internet::new(&lab).unwrap();
        let relay_host = net.add_public_host(&lab, "relay").unwrap();
        let (a, b) = hosts(&lab, &net);
        let signer = SigningKey::from_seed(&[0x55; 32]).unwrap();
        let control_key = B64.encode(signer.control_key().0);
        let relay_proc = start_relay(&lab, &relay_host, &control_key).unwrap();
        let relay = SocketAddr::from((relay_host.ip, RELAY_PORT));
        let ends = [(&a, key(5), None), (&b, key(6), None)];
        let (dev_a, dev_b) = start_pair(&lab, ends, relay, &signer, tunnel_mtu);
        NatPair {
            lab,
            _net: net,
            relay_host,
            relay_proc,
            a,
            b,
            dev_a,
            dev_b,
            control_key,
        }
    }

    /// Moves `len` bytes a → b → a through the tunnel, content checked.
    fn transfer(&self, len: usize) {
        transfer(&self.a.ns, &self.b.ns, self.dev_b.ip(), len).unwrap();
    }

    /// A transfer initiated from each side.
    fn transfer_both_ways(&self, len: usize) {
        self.transfer(len);
        transfer(&self.b.ns, &self.a.ns, self.dev_a.ip(), len).unwrap();
    }

    /// Whether the pair reaches a direct path within 15 s: a transfer the
    /// relay carries (almost) none of.
    fn goes_direct(&self) -> bool {
        self.transfer(256 * 1024);
        warren_netns_tests::wait_for("a direct path", Duration::from_secs(15), || {
            let before = forwarded(&self.lab, &self.relay_host);
            self.transfer(256 * 1024);
            forwarded(&self.lab, &self.relay_host) - before < 20
        })
        .is_ok()
    }
}

#[test]
fn cone_nat_pairs_punch_through_to_a_direct_path() {
    let pair = NatPair::new("punch-cone", |_, _| (Nat::Cone, Nat::Cone));
    assert!(pair.goes_direct(), "cone <-> cone goes direct");
    pair.transfer_both_ways(MIB);
}

#[test]
fn a_carrier_nat_home_punches_through_to_a_cone_home() {
    let pair = NatPair::new("punch-cgnat", |lab, net| {
        (
            Nat::CarrierGrade(net.add_carrier(lab, "isp").unwrap()),
            Nat::Cone,
        )
    });
    assert!(pair.goes_direct(), "CGNAT <-> cone goes direct");
    pair.transfer_both_ways(MIB);
}

/// Two machines on one LAN behind a NAT that does not hairpin, knowing
/// nothing of each other but the relay: their reflexive addresses cannot
/// reach each other, so they go direct by the LAN addresses each device
/// lists as candidates.
#[test]
fn two_machines_on_one_lan_go_direct_by_their_lan_addresses() {
    let pair = NatPair::on_hosts(
        "punch-lan",
        |lab, net| {
            let mut lan = net.add_lan(lab, "home", Nat::Cone, 2).unwrap();
            let b = lan.pop().unwrap();
            (lan.pop().unwrap(), b)
        },
        DEFAULT_TEST_MTU,
    );
    assert!(pair.goes_direct(), "one LAN goes direct");
    let b_key = B64.encode(public(key(6)));
    assert_eq!(
        pair.dev_a.peer(&b_key).unwrap().endpoint,
        Some(SocketAddr::from((pair.b.ip, 51820))),
        "the endpoint is b's LAN address"
    );
    pair.transfer_both_ways(MIB);
}

#[test]
fn a_symmetric_nat_pair_stays_relayed_and_works() {
    let pair = NatPair::new("punch-sym", |_, _| (Nat::Symmetric, Nat::Cone));
    assert!(
        !pair.goes_direct(),
        "symmetric <-> cone cannot punch (docs/lab.md)"
    );
    pair.transfer_both_ways(MIB);
}

#[test]
fn two_homes_behind_one_carrier_stay_relayed_and_work() {
    let pair = NatPair::new("punch-hairpin", |lab, net| {
        let isp = net.add_carrier(lab, "isp").unwrap();
        (Nat::CarrierGrade(isp.clone()), Nat::CarrierGrade(isp))
    });
    assert!(!pair.goes_direct(), "the carrier does not hairpin");
    pair.transfer_both_ways(MIB);
}

#[test]
fn homes_whose_udp_to_each_other_is_blocked_stay_relayed_and_work() {
    let pair = NatPair::new("punch-blocked", |_, _| (Nat::Cone, Nat::Cone));
    let _blocked = warren_netns_tests::block_udp(&pair.a, &pair.b).unwrap();
    assert!(!pair.goes_direct(), "no direct UDP between the homes");
    pair.transfer_both_ways(MIB);
}

#[test]
fn a_restarted_relay_resumes_relayed_pairs_and_does_not_disturb_direct_ones() {
    let relayed = NatPair::new("restart-relayed", |_, _| (Nat::Symmetric, Nat::Cone));
    let direct = NatPair::new("restart-direct", |_, _| (Nat::Cone, Nat::Cone));
    assert!(direct.goes_direct());
    relayed.transfer(MIB);

    for pair in [&relayed, &direct] {
        pair.relay_proc
            .signal(warren_netns_tests::Signal::Kill)
            .unwrap();
        pair.relay_proc.wait_exit(Duration::from_secs(5)).unwrap();
    }
    // With the relay down, the direct pair carries on.
    direct.transfer(MIB);

    // Back up with no memory of anyone: the relayed pair re-registers and resumes.
    let _restarted = start_relay(&relayed.lab, &relayed.relay_host, &relayed.control_key).unwrap();
    relayed.transfer_both_ways(MIB);
}

#[test]
fn bulk_tcp_crosses_a_1280_byte_path_relayed_and_direct_without_fragments() {
    // 1280 − 20 (IPv4) − 8 (UDP) − 36 (relay header) − 32 (WireGuard).
    const TUNNEL_MTU: u32 = 1184;
    for (tag, nat_b, direct) in [
        ("mtu-direct", Nat::Cone, true),
        ("mtu-relay", Nat::Symmetric, false),
    ] {
        let pair = NatPair::with_mtus(tag, |_, _| (Nat::Cone, nat_b), Some(1280), TUNNEL_MTU);
        assert_eq!(pair.goes_direct(), direct, "{tag}");
        pair.transfer_both_ways(8 * MIB);
        let router = pair.a.router.as_ref().unwrap();
        for ns in [&pair.a.ns, &router.ns, &pair.b.ns] {
            assert_eq!(fragments_created(ns), 0, "{tag}: {} fragmented", ns.name());
        }
    }
}

/// IPv4 fragments the namespace's stack created (sending or forwarding).
fn fragments_created(ns: &warren_netns_tests::Netns) -> u64 {
    let snmp = ns.exec(["cat", "/proc/net/snmp"]).unwrap();
    let mut ip = snmp.lines().filter(|line| line.starts_with("Ip:"));
    let (names, values) = (ip.next().unwrap(), ip.next().unwrap());
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "FragCreates")
        .map(|(_, value)| value.parse().unwrap())
        .unwrap()
}

fn forwarded(lab: &Lab, relay_host: &Host) -> u64 {
    let text = scrape(lab, relay_host).unwrap();
    metric(&text, "warren_relay_forwarded_frames_total").unwrap_or(0)
}
