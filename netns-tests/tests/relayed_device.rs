//! warren devices behind symmetric NATs (no direct path possible) reach each
//! other through a `warren relay` on the public segment: a TCP transfer runs
//! through the relay with its content intact, `wg show` names the relay as
//! the endpoint, and the relay counts what it forwarded.

#![allow(clippy::unwrap_used)]

mod relay_support;
mod support;

use base64::Engine as _;
use relay_support::{metric, scrape, start_relay, unix_in, RELAY_PORT};
use std::net::SocketAddr;
use std::time::Duration;
use support::transfer;
use warren_netns_tests::wg::{uapi_socket, warren_bin};
use warren_netns_tests::{wait_for_file, Host, Internet, Lab, Nat, Spawn, WgIface, WgImpl};
use warren_relay::SigningKey;
use warren_wire::NodeKey;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const MIB: usize = 1024 * 1024;

fn key(seed: u8) -> [u8; 32] {
    let mut key = [seed; 32];
    key[0] &= 248;
    key[31] = (key[31] & 127) | 64;
    key
}

fn public(private: [u8; 32]) -> [u8; 32] {
    boringtun::x25519::PublicKey::from(&boringtun::x25519::StaticSecret::from(private)).to_bytes()
}

/// Starts `warren device up` on `host` with tunnel address `address`, one
/// peer (`peer_public`, allowed `peer_ip`, no endpoint) and the relay.
#[allow(clippy::too_many_arguments)]
fn start_device(
    lab: &Lab,
    host: &Host,
    private: [u8; 32],
    address: &str,
    peer_public: [u8; 32],
    peer_ip: &str,
    relay: SocketAddr,
    signer: &SigningKey,
) -> WgIface {
    let name = lab.iface_name("wr");
    let dir = lab.subdir(&name).unwrap();
    let config = dir.join("wg.conf");
    std::fs::write(
        &config,
        format!(
            "[Interface]\nPrivateKey = {}\nListenPort = 51820\n\n[Peer]\nPublicKey = {}\nAllowedIPs = {peer_ip}/32\n",
            B64.encode(private),
            B64.encode(peer_public)
        ),
    )
    .unwrap();
    let ticket = signer.mint(NodeKey(public(private)), unix_in(3600));
    let ticket_file = dir.join("ticket");
    std::fs::write(&ticket_file, ticket.to_base64()).unwrap();
    let proc = lab
        .spawn(
            &host.ns,
            Spawn::new(warren_bin().unwrap())
                .args(["device", "up", &name, "--address", address, "--mtu", "1384"])
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

#[test]
fn devices_behind_symmetric_nats_move_data_through_the_relay() {
    let lab = Lab::new("dev-relay").unwrap();
    let net = Internet::new(&lab).unwrap();
    let relay_host = net.add_public_host(&lab, "relay").unwrap();
    let a = net.add_host(&lab, "a", Nat::Symmetric).unwrap();
    let b = net.add_host(&lab, "b", Nat::Symmetric).unwrap();
    let signer = SigningKey::from_seed(&[0x33; 32]).unwrap();
    let _relay = start_relay(&lab, &relay_host, &B64.encode(signer.control_key().0)).unwrap();
    let relay = SocketAddr::from((relay_host.ip, RELAY_PORT));

    let (key_a, key_b) = (key(1), key(2));
    let dev_a = start_device(
        &lab,
        &a,
        key_a,
        "10.9.0.1/24",
        public(key_b),
        "10.9.0.2",
        relay,
        &signer,
    );
    let dev_b = start_device(
        &lab,
        &b,
        key_b,
        "10.9.0.2/24",
        public(key_a),
        "10.9.0.1",
        relay,
        &signer,
    );
    dev_a
        .proc
        .wait_for_log("registered with relay", Duration::from_secs(10))
        .unwrap();
    dev_b
        .proc
        .wait_for_log("registered with relay", Duration::from_secs(10))
        .unwrap();

    transfer(&a.ns, &b.ns, dev_b.ip(), 4 * MIB).unwrap();
    transfer(&b.ns, &a.ns, dev_a.ip(), 4 * MIB).unwrap();

    let seen = dev_a.peer(&B64.encode(public(key_b))).unwrap();
    assert_eq!(seen.endpoint, Some(relay), "reached through the relay");
    assert!(seen.latest_handshake.is_some());
    let text = scrape(&lab, &relay_host).unwrap();
    let forwarded = metric(&text, "warren_relay_forwarded_frames_total").unwrap_or(0);
    assert!(
        forwarded > 4 * MIB as u64 / 1400,
        "relay forwarded {forwarded} frames:\n{text}"
    );
}
