//! End-to-end tests of `warren relay` on real namespaces and real NAT: a
//! relay on the public segment, nodes behind cone NAT routers running the
//! relay client over real UDP sockets. They register with tickets the test
//! mints, learn their reflexive addresses, exchange datagrams through the
//! relay both ways, are refused with bad tickets, and rejoin a restarted
//! relay by themselves.

#![allow(clippy::unwrap_used)]

mod relay_support;

use base64::Engine as _;
use relay_support::{metric, scrape, start_relay, unix_in, Node, NODE_PORT, RELAY_PORT};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use warren_netns_tests::wg::warren_bin;
use warren_netns_tests::{run_args, Host, Internet, Lab, Nat};
use warren_relay_proto::client::ClientEvent;
use warren_relay_proto::SigningKey;
use warren_wire::{ErrorCode, Frame, Ticket};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// A relay on the public segment and two homes behind cone NATs.
struct World {
    lab: Lab,
    relay_host: Host,
    a: Host,
    b: Host,
    signer: SigningKey,
    control_key: String,
    relay_addr: SocketAddr,
    _net: Internet,
}

fn world(tag: &str) -> World {
    let lab = Lab::new(tag).unwrap();
    let net = Internet::new(&lab).unwrap();
    let relay_host = net.add_public_host(&lab, "relay").unwrap();
    let a = net.add_host(&lab, "a", Nat::Cone).unwrap();
    let b = net.add_host(&lab, "b", Nat::Cone).unwrap();
    let signer = SigningKey::from_seed(&[0x5a; 32]).unwrap();
    let control_key = B64.encode(signer.control_key().0);
    let relay_addr = SocketAddr::from((relay_host.ip, RELAY_PORT));
    World {
        lab,
        relay_host,
        a,
        b,
        signer,
        control_key,
        relay_addr,
        _net: net,
    }
}

impl World {
    fn node(&self, host: &Host, private: [u8; 32], ticket: Ticket) -> Node {
        Node::new(&self.lab, host, private, ticket, self.relay_addr).unwrap()
    }

    fn good_node(&self, host: &Host, private: [u8; 32]) -> Node {
        let key = relay_support::public_of(private);
        self.node(host, private, self.signer.mint(key, unix_in(3600)))
    }
}

/// Sends `count` datagrams from `from` to `to` and waits until `to` has them all.
fn exchange(from: &mut Node, to: &mut Node, count: usize, tag: u8) {
    let before = to.received.len();
    for i in 0..count {
        let payload = vec![tag; 100 + i];
        from.send(&to.key, &payload).unwrap();
    }
    to.pump_until(Duration::from_secs(5), |node| {
        node.received.len() >= before + count
    })
    .unwrap();
    for (i, (src, payload)) in to.received[before..].iter().enumerate() {
        assert_eq!(*src, from.key, "the source is the sender's registered key");
        assert_eq!(
            payload.len(),
            100 + i,
            "datagrams arrive whole and in order here"
        );
        assert!(payload.iter().all(|b| *b == tag));
    }
}

#[test]
fn nodes_behind_cone_nats_learn_their_reflexive_addresses_and_talk_through_the_relay() {
    let w = world("rl-fwd");
    // The operator's path: keys and a ticket from the CLI.
    let dir = w.lab.dir();
    let bin = warren_bin().unwrap();
    let signing = run_args([bin.as_os_str(), "relay".as_ref(), "keygen".as_ref()]).unwrap();
    std::fs::write(dir.join("control.key"), &signing).unwrap();
    let control_key = w
        .lab
        .exec(
            &w.relay_host.ns,
            [
                "sh",
                "-c",
                &format!(
                    "{} relay pubkey < {}",
                    bin.display(),
                    dir.join("control.key").display()
                ),
            ],
        )
        .unwrap();
    let relay = start_relay(&w.lab, &w.relay_host, control_key.trim()).unwrap();

    let a_private = [1u8; 32];
    let a_key = relay_support::public_of(a_private);
    let cli_ticket = run_args([
        bin.as_os_str(),
        "relay".as_ref(),
        "ticket".as_ref(),
        "--signing-key-file".as_ref(),
        dir.join("control.key").as_os_str(),
        "--node-key".as_ref(),
        a_key.to_base64().as_ref(),
        "--ttl".as_ref(),
        "1h".as_ref(),
    ])
    .unwrap();
    let a_ticket = Ticket::from_base64(&cli_ticket).unwrap();
    assert_eq!(a_ticket.node_key, a_key);
    let signer =
        SigningKey::from_seed(&B64.decode(signing.trim()).unwrap().try_into().unwrap()).unwrap();
    let b_private = [2u8; 32];
    let b_ticket = signer.mint(relay_support::public_of(b_private), unix_in(3600));

    let mut a = w.node(&w.a, a_private, a_ticket);
    let mut b = w.node(&w.b, b_private, b_ticket);
    a.register(REGISTER_TIMEOUT).unwrap();
    b.register(REGISTER_TIMEOUT).unwrap();

    // The reflexive address is the NAT's public address (and, for a
    // port-preserving NAT, the node's own port).
    for (node, host) in [(&a, &w.a), (&b, &w.b)] {
        let reflexive = node.client.reflexive_addr().unwrap();
        assert_eq!(reflexive.ip(), host.reflexive_ip());
        assert_ne!(
            reflexive.ip(),
            host.ip,
            "a private address is not reflexive"
        );
        assert_eq!(reflexive.port(), NODE_PORT);
    }

    exchange(&mut a, &mut b, 20, 0xA1);
    exchange(&mut b, &mut a, 20, 0xB2);

    let text = scrape(&w.lab, &w.relay_host).unwrap();
    assert_eq!(metric(&text, "warren_relay_sessions"), Some(2), "{text}");
    assert_eq!(metric(&text, "warren_relay_registrations_total"), Some(2));
    assert_eq!(
        metric(&text, "warren_relay_forwarded_frames_total"),
        Some(40)
    );
    assert!(relay.is_running(), "{}", relay.describe());
}

#[test]
fn bad_tickets_and_unregistered_senders_are_refused_while_good_nodes_are_served() {
    let w = world("rl-refuse");
    let _relay = start_relay(&w.lab, &w.relay_host, &w.control_key).unwrap();
    let mut a = w.good_node(&w.a, [1; 32]);
    a.register(REGISTER_TIMEOUT).unwrap();

    // An expired ticket.
    let b_private = [2u8; 32];
    let b_key = relay_support::public_of(b_private);
    let mut expired = w.node(&w.b, b_private, w.signer.mint(b_key, unix_in(-60)));
    expired
        .pump_until(REGISTER_TIMEOUT, |n| {
            n.events
                .contains(&ClientEvent::Refused(ErrorCode::TICKET_EXPIRED))
        })
        .unwrap();
    assert!(!expired.client.is_registered());
    drop(expired);

    // A ticket signed by another key.
    let forger = SigningKey::from_seed(&[0x66; 32]).unwrap();
    let mut forged = w.node(&w.b, b_private, forger.mint(b_key, unix_in(3600)));
    forged
        .pump_until(REGISTER_TIMEOUT, |n| {
            n.events
                .contains(&ClientEvent::Refused(ErrorCode::UNAUTHORIZED))
        })
        .unwrap();
    assert!(!forged.client.is_registered());
    drop(forged);

    // A sender with no session: nothing forwarded, a small refusal back.
    let raw = w
        .lab
        .in_ns(&w.b.ns, || UdpSocket::bind(("0.0.0.0", NODE_PORT + 1)))
        .unwrap()
        .unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let send = Frame::Send {
        dst: a.key,
        payload: &[7u8; 64],
    }
    .to_vec();
    raw.send_to(&send, w.relay_addr).unwrap();
    let mut buf = [0u8; 2048];
    let (len, _) = raw.recv_from(&mut buf).unwrap();
    assert!(len < send.len());
    assert_eq!(
        Frame::decode(&buf[..len]),
        Ok(Frame::Error {
            code: ErrorCode::NOT_REGISTERED
        })
    );
    // Malformed frames of every kind from the same sender: truncated,
    // wrong version, unknown type, oversized (a ping with a kilobyte of
    // trailing bytes, a 60 000-byte registration), not a relay frame at all.
    // Whatever comes back is never larger than what was sent.
    let mut oversized_ping = Frame::Ping { txid: 1 }.to_vec();
    oversized_ping.resize(oversized_ping.len() + 1000, 0);
    let mut oversized_register = vec![0xFE, 1, 1, 0];
    oversized_register.resize(60_000, 0xAA);
    raw.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    for junk in [
        &[0xFE, 1, 5, 0][..],
        &[0xFE, 9, 1, 0, 0, 0],
        &[0xFE, 1, 0x7f, 0],
        &oversized_ping,
        &oversized_register,
        &[1, 0, 0, 0, 1],
    ] {
        raw.send_to(junk, w.relay_addr).unwrap();
        if let Ok((len, _)) = raw.recv_from(&mut buf) {
            assert!(
                len < junk.len(),
                "a {len}-byte answer to {} bytes",
                junk.len()
            );
        }
    }

    // Someone else's valid ticket, presented with one's own key.
    let thief_private = [4u8; 32];
    let stolen = w.signer.mint(a.key, unix_in(3600));
    let mut thief = w.node(&w.b, thief_private, stolen);
    thief
        .pump_until(REGISTER_TIMEOUT, |n| {
            n.events
                .contains(&ClientEvent::Refused(ErrorCode::UNAUTHORIZED))
        })
        .unwrap();
    assert!(!thief.client.is_registered());
    drop(thief);

    // The good node keeps being served: it talks to a second good node.
    let mut c = w.good_node(&w.b, [3; 32]);
    c.register(REGISTER_TIMEOUT).unwrap();
    exchange(&mut a, &mut c, 5, 0x11);
    assert!(
        a.received.is_empty(),
        "nothing reached a from the unregistered sender"
    );

    let text = scrape(&w.lab, &w.relay_host).unwrap();
    let dropped = |reason: &str| {
        metric(
            &text,
            &format!("warren_relay_dropped_total{{reason=\"{reason}\"}}"),
        )
        .unwrap()
    };
    assert!(dropped("expired_ticket") >= 1, "{text}");
    assert!(dropped("invalid_ticket") >= 1, "{text}");
    assert!(dropped("not_registered") >= 1, "{text}");
    assert!(dropped("malformed") >= 4, "{text}");
    assert!(dropped("unsupported_version") >= 1, "{text}");
    assert!(dropped("not_warren") >= 1, "{text}");
    assert_eq!(metric(&text, "warren_relay_sessions"), Some(2));
}

/// A node blasting as fast as one thread can, at its default allowance
/// (100 Mbit/s per node): the relay forwards no more than that allowance
/// to the flood's target, counts the rest as rate-limited, and two other
/// nodes keep talking through it.
#[test]
fn a_flooding_node_is_held_to_its_allowance_while_others_are_served() {
    let w = world("rl-flood");
    let _relay = start_relay(&w.lab, &w.relay_host, &w.control_key).unwrap();
    let node = |host: &Host, port: u16, n: u8| {
        let private = [n; 32];
        let key = relay_support::public_of(private);
        let ticket = w.signer.mint(key, unix_in(3600));
        let mut node = Node::on_port(&w.lab, host, port, private, ticket, w.relay_addr).unwrap();
        node.register(REGISTER_TIMEOUT).unwrap();
        node
    };
    let mut a = node(&w.a, NODE_PORT, 1);
    let mut c = node(&w.b, NODE_PORT, 3);
    let flooder = node(&w.a, NODE_PORT + 1, 4);
    let sink = node(&w.b, NODE_PORT + 1, 5);

    let mut frame = Vec::new();
    flooder
        .client
        .encode_send(&sink.key, &[0x77; 1000], &mut frame)
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sink_sock = sink.sock.try_clone().unwrap();
    sink_sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let counting = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut bytes, mut buf) = (0u64, vec![0u8; 2048]);
            while !stop.load(Ordering::Relaxed) {
                if let Ok((len, _)) = sink_sock.recv_from(&mut buf) {
                    bytes += len as u64;
                }
            }
            bytes
        })
    };
    let flood_sock = flooder.sock.try_clone().unwrap();
    let relay_addr = w.relay_addr;
    let flooding = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (started, mut sent) = (Instant::now(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                if flood_sock.send_to(&frame, relay_addr).is_ok() {
                    sent += frame.len() as u64;
                }
            }
            (sent, started.elapsed())
        })
    };

    // The others keep talking while the flood runs.
    for round in 0..10u8 {
        exchange(&mut a, &mut c, 5, round);
        exchange(&mut c, &mut a, 5, round);
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let (offered, flooded_for) = flooding.join().unwrap();
    let delivered = counting.join().unwrap();

    // The default allowance: 12.5 MB/s and a 100 ms burst, 0.2 s of slack
    // for frames still in flight when the clock stopped.
    let allowance = 12_500_000.0 * (flooded_for.as_secs_f64() + 0.1 + 0.2);
    eprintln!("flooder offered {offered} B in {flooded_for:?}; the sink got {delivered} B");
    assert!(
        (delivered as f64) <= allowance,
        "{delivered} B forwarded, allowance {allowance:.0} B"
    );
    assert!(delivered > 0, "the flooder still gets its allowance");
    assert!(
        offered as f64 > 2.0 * allowance,
        "the flood must exceed the allowance for the test to mean anything"
    );
    let text = scrape(&w.lab, &w.relay_host).unwrap();
    assert!(
        metric(&text, "warren_relay_dropped_total{reason=\"rate_limited\"}").unwrap() > 0,
        "{text}"
    );
}

#[test]
fn nodes_rejoin_a_restarted_relay_by_themselves() {
    let w = world("rl-restart");
    let relay = start_relay(&w.lab, &w.relay_host, &w.control_key).unwrap();
    let mut a = w.good_node(&w.a, [1; 32]);
    let mut b = w.good_node(&w.b, [2; 32]);
    a.register(REGISTER_TIMEOUT).unwrap();
    b.register(REGISTER_TIMEOUT).unwrap();
    exchange(&mut a, &mut b, 3, 1);

    let status = relay.stop().unwrap();
    assert!(
        status.success(),
        "the relay exits cleanly on SIGTERM: {status:?}"
    );
    let _relay = start_relay(&w.lab, &w.relay_host, &w.control_key).unwrap();
    let restarted = Instant::now();

    // Traffic (or the next keepalive) meets NOT_REGISTERED; each client
    // registers again without being told to.
    let b_key = b.key;
    a.send(&b_key, b"after the restart").unwrap();
    a.pump_until(REGISTER_TIMEOUT, |n| {
        n.events.contains(&ClientEvent::Lost) && n.client.is_registered()
    })
    .unwrap();
    b.pump_until(Duration::from_secs(15), |n| {
        n.events.contains(&ClientEvent::Lost) && n.client.is_registered()
    })
    .unwrap();
    let rejoined = restarted.elapsed();
    assert!(
        rejoined < Duration::from_secs(15),
        "rejoined after {rejoined:?}"
    );
    exchange(&mut a, &mut b, 3, 2);
    exchange(&mut b, &mut a, 3, 3);
}
