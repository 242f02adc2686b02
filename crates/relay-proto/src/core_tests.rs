//! Core tests on a virtual clock: the registration handshake through the
//! real client, forwarding, and the invariants as property tests.

use super::*;
use crate::client::{ClientEvent, RelayClient};
use crate::crypto::SigningKey;
use proptest::prelude::*;
use warren_wire::{FrameType, PrivateKey, Ticket};

const HOUR: Duration = Duration::from_secs(3600);

/// A relay on a virtual clock, with the control key that signs its tickets.
struct Harness {
    relay: Relay,
    signer: SigningKey,
    start: Instant,
    now: Instant,
    wall_start: SystemTime,
}

/// What one datagram did.
struct Outcome {
    result: Result<Option<SocketAddr>, Dropped>,
    /// The datagram after the call (a forwarded `Send` is now a `Recv`).
    bytes: Vec<u8>,
    /// Answers queued by the call.
    replies: Vec<Transmit>,
}

/// A node: the sans-IO client and the address the relay sees it at.
struct TestNode {
    client: RelayClient,
    addr: SocketAddr,
    key: PublicKey,
}

fn addr(n: u16) -> SocketAddr {
    SocketAddr::from(([198, 51, 100, (n % 250) as u8 + 1], 40_000 + n))
}

fn private_key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes([n.wrapping_mul(7).wrapping_add(1); 32])
}

impl Harness {
    fn new(config: Config) -> Self {
        let signer = SigningKey::from_seed(&[42; 32]).unwrap();
        let start = Instant::now();
        Harness {
            relay: Relay::new(config, signer.control_key(), [7; 32], start),
            signer,
            start,
            now: start,
            wall_start: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    fn wall(&self) -> SystemTime {
        self.wall_start + (self.now - self.start)
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.relay.handle_timeout(self.now);
    }

    fn ticket(&self, key: PublicKey, ttl: Duration) -> Ticket {
        let expires = unix_seconds(self.wall()) + ttl.as_secs();
        self.signer.mint(key, expires)
    }

    fn deliver(&mut self, from: SocketAddr, bytes: &[u8]) -> Outcome {
        let mut bytes = bytes.to_vec();
        let wall = self.wall();
        let result = self.relay.handle_datagram(self.now, wall, from, &mut bytes);
        let replies = std::iter::from_fn(|| self.relay.poll_transmit()).collect();
        Outcome {
            result,
            bytes,
            replies,
        }
    }

    fn node(&self, n: u16, ttl: Duration) -> TestNode {
        let private = private_key(n as u8);
        let key = private.public_key();
        let relay_addr = SocketAddr::from(([203, 0, 113, 1], 3478));
        TestNode {
            client: RelayClient::new(relay_addr, &private, self.ticket(key, ttl), self.now),
            addr: addr(n),
            key,
        }
    }

    /// Moves frames between the node's client and the relay until neither
    /// has anything more to say.
    fn exchange(&mut self, node: &mut TestNode) {
        node.client.handle_timeout(self.now);
        while let Some(transmit) = node.client.poll_transmit() {
            let outcome = self.deliver(node.addr, &transmit.payload);
            for reply in outcome.replies {
                assert!(reply.payload.len() < transmit.payload.len());
                let relay = node.client.relay_addr();
                node.client
                    .handle_datagram(self.now, relay, &reply.payload)
                    .unwrap();
            }
        }
    }

    fn registered(&mut self, n: u16, ttl: Duration) -> TestNode {
        let mut node = self.node(n, ttl);
        self.exchange(&mut node);
        assert!(node.client.is_registered(), "node {n} registered");
        node
    }

    fn send(&mut self, from: &TestNode, dst: &PublicKey, payload: &[u8]) -> Outcome {
        let mut frame = Vec::new();
        Frame::Send { dst: *dst, payload }.encode(&mut frame);
        self.deliver(from.addr, &frame)
    }

    /// Everything about sessions, for clone-and-compare.
    fn session_state(&self) -> (HashMap<PublicKey, Session>, HashMap<SocketAddr, PublicKey>) {
        (self.relay.sessions.clone(), self.relay.by_addr.clone())
    }
}

fn error_code(transmit: &Transmit) -> Option<ErrorCode> {
    match Frame::decode(&transmit.payload) {
        Ok(Frame::Error { code }) => Some(code),
        _ => None,
    }
}

#[test]
fn spoofed_registered_and_pong_frames_cannot_set_the_clients_reflexive_address() {
    let mut h = Harness::new(Config::default());
    let mut node = h.registered(1, HOUR);
    while node.client.poll_event().is_some() {}
    let relay = node.client.relay_addr();
    let victim: SocketAddr = "192.168.77.1:9".parse().unwrap();
    let registered = warren_wire::Frame::Registered(warren_wire::Registered {
        observed: victim,
        expires: u64::MAX,
    })
    .to_vec();
    assert!(node
        .client
        .handle_datagram(h.now, relay, &registered)
        .is_err());
    // A pong for a ping never sent.
    let pong = warren_wire::Frame::Pong {
        txid: 12345,
        observed: victim,
    }
    .to_vec();
    assert!(node.client.handle_datagram(h.now, relay, &pong).is_err());
    assert_eq!(node.client.reflexive_addr(), Some(addr(1)));
    assert!(node.client.is_registered());
    assert_eq!(node.client.poll_event(), None);
    assert!(node.client.poll_transmit().is_none(), "no re-registration");
}

#[test]
fn the_client_registers_and_learns_its_reflexive_address() {
    let mut h = Harness::new(Config::default());
    let mut node = h.registered(1, HOUR);
    assert_eq!(node.client.reflexive_addr(), Some(addr(1)));
    assert_eq!(
        node.client.poll_event(),
        Some(ClientEvent::Registered {
            reflexive: addr(1),
            expires: unix_seconds(h.wall()) + 3600,
        })
    );
    assert_eq!(
        h.relay.sessions(),
        vec![SessionInfo {
            key: node.key,
            addr: addr(1),
            expires: unix_seconds(h.wall()) + 3600,
        }]
    );
    let counters = h.relay.metrics();
    assert_eq!((counters.challenges, counters.registrations), (1, 1));
    assert_eq!(counters.drops.total(), 0);
}

#[test]
fn datagrams_are_forwarded_both_ways_with_the_senders_session_key() {
    let mut h = Harness::new(Config::default());
    let a = h.registered(1, HOUR);
    let b = h.registered(2, HOUR);
    let out = h.send(&a, &b.key, b"wireguard bytes");
    assert_eq!(out.result, Ok(Some(b.addr)));
    assert_eq!(
        Frame::decode(&out.bytes),
        Ok(Frame::Recv {
            src: a.key,
            payload: b"wireguard bytes"
        })
    );
    assert!(out.replies.is_empty());
    let back = h.send(&b, &a.key, b"reply");
    assert_eq!(back.result, Ok(Some(a.addr)));
    let mut b_client = b.client;
    assert_eq!(
        b_client.handle_datagram(h.now, b_client.relay_addr(), &out.bytes),
        Ok(Some(crate::client::Received {
            src: a.key,
            payload: b"wireguard bytes"
        }))
    );
    assert_eq!(h.relay.metrics().forwarded_frames, 2);
}

/// A dual-stack socket reports IPv4 senders as `::ffff:a.b.c.d`: the relay
/// and the client take that form for the plain IPv4 address, so a node has
/// one session whichever form its datagrams arrive in.
#[test]
fn ipv4_mapped_addresses_are_the_plain_ipv4_ones() {
    let mapped = |addr: SocketAddr| match addr.ip() {
        std::net::IpAddr::V4(ip) => SocketAddr::new(ip.to_ipv6_mapped().into(), addr.port()),
        std::net::IpAddr::V6(_) => addr,
    };
    let mut h = Harness::new(Config::default());
    let mut a = h.registered(1, HOUR);
    let b = h.registered(2, HOUR);
    let mut frame = Vec::new();
    Frame::Send {
        dst: b.key,
        payload: b"via a mapped source",
    }
    .encode(&mut frame);
    let out = h.deliver(mapped(a.addr), &frame);
    assert_eq!(out.result, Ok(Some(b.addr)), "the session at the IPv4 form");
    assert!(out.replies.is_empty());

    // The client takes frames from the mapped form of its relay's address.
    let relay = mapped(a.client.relay_addr());
    let recv = Frame::Recv {
        src: b.key,
        payload: b"back",
    }
    .to_vec();
    let received = a.client.handle_datagram(h.now, relay, &recv).unwrap();
    assert_eq!(received.map(|r| r.payload), Some(&b"back"[..]));
    let elsewhere = SocketAddr::new(relay.ip(), relay.port() + 1);
    assert_eq!(
        a.client.handle_datagram(h.now, elsewhere, &recv),
        Err(crate::client::ClientError::NotFromRelay(elsewhere))
    );
}

#[test]
fn unknown_destinations_are_dropped_counted_and_answered_small() {
    let mut h = Harness::new(Config::default());
    let a = h.registered(1, HOUR);
    let out = h.send(&a, &PublicKey::from_bytes([9; 32]), b"x");
    assert_eq!(
        out.result,
        Err(Dropped {
            reason: DropReason::UnknownDestination
        })
    );
    assert_eq!(
        out.replies.iter().map(error_code).collect::<Vec<_>>(),
        vec![Some(ErrorCode::UNKNOWN_DESTINATION)]
    );
}

#[test]
fn an_expired_ticket_stops_working() {
    let mut h = Harness::new(Config::default());
    let a = h.registered(1, Duration::from_secs(60));
    let b = h.registered(2, HOUR);
    assert_eq!(h.send(&a, &b.key, b"x").result, Ok(Some(b.addr)));
    h.now += Duration::from_secs(61); // no sweep yet: checked on use
    let out = h.send(&a, &b.key, b"x");
    assert_eq!(
        out.result,
        Err(Dropped {
            reason: DropReason::ExpiredTicket
        })
    );
    assert_eq!(
        out.replies.iter().map(error_code).next(),
        Some(Some(ErrorCode::TICKET_EXPIRED))
    );
    assert_eq!(h.relay.session_count(), 1);
    // Sending to it fails too, and it cannot register again with that ticket.
    assert_eq!(
        h.send(&b, &a.key, b"x").result,
        Err(Dropped {
            reason: DropReason::UnknownDestination
        })
    );
    let mut again = a;
    again.client.reregister(h.now);
    h.exchange(&mut again);
    assert!(!again.client.is_registered());
    assert!(h.relay.metrics().drops.get(DropReason::ExpiredTicket) >= 2);
}

#[test]
fn sessions_expire_and_idle_out_in_the_sweep() {
    let mut h = Harness::new(Config::default());
    let _short = h.registered(1, Duration::from_secs(30));
    let mut chatty = h.registered(2, HOUR);
    let _quiet = h.registered(3, HOUR);
    for _ in 0..20 {
        h.advance(Duration::from_secs(10));
        h.exchange(&mut chatty); // pings every 10 s
    }
    assert_eq!(
        h.relay
            .sessions()
            .iter()
            .map(|s| s.addr)
            .collect::<Vec<_>>(),
        vec![chatty.addr]
    );
    assert_eq!(h.relay.metrics().expired, 1);
    assert_eq!(h.relay.metrics().idled_out, 1);
}

#[test]
fn a_forged_ticket_registers_nothing() {
    let mut h = Harness::new(Config::default());
    let mut node = h.node(1, HOUR);
    let forger = SigningKey::from_seed(&[1; 32]).unwrap();
    let ticket = forger.mint(node.key, unix_seconds(h.wall()) + 3600);
    node.client.set_ticket(ticket, h.now);
    h.exchange(&mut node);
    assert!(!node.client.is_registered());
    assert_eq!(h.relay.session_count(), 0);
    assert_eq!(h.relay.metrics().drops.get(DropReason::InvalidTicket), 2);
    let refusals: Vec<_> = std::iter::from_fn(|| node.client.poll_event()).collect();
    assert!(refusals.contains(&ClientEvent::Refused(ErrorCode::UNAUTHORIZED)));
}

#[test]
fn someone_elses_ticket_registers_nothing() {
    let mut h = Harness::new(Config::default());
    let mut thief = h.node(1, HOUR);
    let victim = h.node(2, HOUR);
    let stolen = h.ticket(victim.key, HOUR);
    thief.client.set_ticket(stolen, h.now);
    h.exchange(&mut thief);
    assert_eq!(h.relay.session_count(), 0);
}

#[test]
fn challenges_last_one_to_two_epochs_and_bind_the_source_address() {
    let mut h = Harness::new(Config::default());
    let mut node = h.node(1, HOUR);
    let request = node.client.poll_transmit().unwrap();
    let challenge = h.deliver(node.addr, &request.payload).replies.remove(0);
    let relay = node.client.relay_addr();
    node.client
        .handle_datagram(h.now, relay, &challenge.payload)
        .unwrap();
    let proof = node.client.poll_transmit().unwrap().payload;

    // From another address: the cookie does not match.
    let moved = h.deliver(addr(2), &proof);
    assert_eq!(moved.result.unwrap_err().reason, DropReason::InvalidCookie);
    // Two epochs later: stale (tried on a copy of the relay).
    let saved = h.relay.clone();
    h.now += EPOCH * 2;
    let stale = h.deliver(node.addr, &proof);
    h.relay = saved;
    h.now -= EPOCH * 2;
    assert_eq!(stale.result.unwrap_err().reason, DropReason::StaleChallenge);
    assert_eq!(
        stale.replies.iter().map(error_code).next(),
        Some(Some(ErrorCode::STALE_CHALLENGE))
    );
    // One epoch later (the previous epoch's keys): still good.
    h.now += EPOCH;
    let ok = h.deliver(node.addr, &proof);
    assert_eq!(ok.result, Ok(None));
    assert_eq!(h.relay.session_count(), 1);
}

#[test]
fn a_node_that_moves_takes_its_session_along() {
    let mut h = Harness::new(Config::default());
    let mut a = h.registered(1, HOUR);
    let b = h.registered(2, HOUR);
    let old = a.addr;
    a.addr = addr(77);
    // The old address's session no longer answers once the node moves.
    a.client.reregister(h.now);
    h.exchange(&mut a);
    assert_eq!(a.client.reflexive_addr(), Some(addr(77)));
    assert_eq!(h.relay.metrics().moves, 1);
    assert_eq!(h.send(&b, &a.key, b"x").result, Ok(Some(addr(77))));
    let stale = h.deliver(
        old,
        &Frame::Send {
            dst: b.key,
            payload: b"x",
        }
        .to_vec(),
    );
    assert_eq!(stale.result.unwrap_err().reason, DropReason::NotRegistered);
}

#[test]
fn the_registration_cap_holds_but_refreshes_pass() {
    let mut h = Harness::new(Config {
        max_sessions: 2,
        ..Config::default()
    });
    let mut a = h.registered(1, HOUR);
    let _b = h.registered(2, HOUR);
    let mut c = h.node(3, HOUR);
    h.exchange(&mut c);
    assert!(!c.client.is_registered());
    assert_eq!(h.relay.metrics().drops.get(DropReason::Capacity), 1);
    a.client.reregister(h.now);
    h.exchange(&mut a);
    assert!(a.client.is_registered());
    assert_eq!(h.relay.metrics().refreshes, 1);
}

#[test]
fn a_restarted_relay_is_rejoined_by_the_client_by_itself() {
    let mut h = Harness::new(Config::default());
    let mut a = h.registered(1, HOUR);
    // The relay restarts: a new core, a new seed, no sessions.
    h.relay = Relay::new(Config::default(), h.signer.control_key(), [8; 32], h.now);
    h.advance(crate::client::KEEPALIVE_INTERVAL);
    h.exchange(&mut a); // ping → NOT_REGISTERED → request → challenge → proof
    assert!(a.client.is_registered());
    assert_eq!(h.relay.session_count(), 1);
    let events: Vec<_> = std::iter::from_fn(|| a.client.poll_event()).collect();
    assert!(events.contains(&ClientEvent::Lost), "{events:?}");
}

#[test]
fn a_flooding_node_is_held_to_its_rate_while_another_flows() {
    let limit = RateLimit {
        bytes_per_second: 1_000_000,
        packets_per_second: 100_000,
        burst: Duration::from_millis(100),
    };
    let mut h = Harness::new(Config {
        rate_limit: limit,
        ..Config::default()
    });
    let flooder = h.registered(1, HOUR);
    let steady = h.registered(2, HOUR);
    let sink = h.registered(3, HOUR);
    let big = vec![0u8; 1000];
    let (mut flood_bytes, mut steady_ok) = (0u64, 0u32);
    // One second: the flooder offers 10 MB/s, the other node 100 kB/s.
    for tick in 0..10_000u32 {
        h.now += Duration::from_micros(100);
        let out = h.send(&flooder, &sink.key, &big);
        if out.result.is_ok() {
            flood_bytes += out.bytes.len() as u64;
        }
        if tick % 100 == 0 {
            assert_eq!(h.send(&steady, &sink.key, &big).result, Ok(Some(sink.addr)));
            steady_ok += 1;
        }
    }
    assert_eq!(steady_ok, 100);
    let allowed = limit.bytes_per_second + 100_000 + 1036;
    assert!(flood_bytes <= allowed, "{flood_bytes} > {allowed}");
    assert!(flood_bytes >= limit.bytes_per_second, "{flood_bytes}");
    assert!(h.relay.metrics().drops.get(DropReason::RateLimited) > 8_000);
}

#[test]
fn non_warren_datagrams_get_no_answer() {
    let mut h = Harness::new(Config::default());
    let out = h.deliver(addr(1), &[1, 0, 0, 0, 5, 5, 5, 5, 5, 5, 5, 5]);
    assert_eq!(out.result.unwrap_err().reason, DropReason::NotWarren);
    assert!(out.replies.is_empty());
    let future = h.deliver(addr(1), &[0xFE, 2, 1, 0, 0, 0, 0, 0]);
    assert_eq!(
        future.result.unwrap_err().reason,
        DropReason::UnsupportedVersion
    );
    assert_eq!(
        future.replies.iter().map(error_code).next(),
        Some(Some(ErrorCode::UNSUPPORTED_VERSION))
    );
    let tiny = h.deliver(addr(1), &[0xFE, 2, 1, 0]);
    assert!(
        tiny.replies.is_empty(),
        "an error is never as large as its request"
    );
}

/// Frames an attacker without a session might send: noise, and well-formed
/// frames of every type with arbitrary contents.
fn arb_hostile() -> impl Strategy<Value = Vec<u8>> {
    let key = any::<[u8; 32]>().prop_map(PublicKey::from_bytes);
    let ticket = (any::<[u8; 32]>(), any::<u64>(), any::<[u8; 32]>()).prop_map(|(k, e, s)| {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&s);
        Ticket {
            node_key: PublicKey::from_bytes(k),
            expires: e,
            signature,
        }
    });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        (0u8..12, prop::collection::vec(any::<u8>(), 0..220)).prop_map(|(t, body)| {
            let mut bytes = vec![0xFE, 1, t, 0];
            bytes.extend(body);
            bytes
        }),
        (key.clone(), prop::collection::vec(any::<u8>(), 1..100)).prop_map(|(dst, payload)| {
            Frame::Send {
                dst,
                payload: &payload,
            }
            .to_vec()
        }),
        any::<u64>().prop_map(|txid| Frame::Ping { txid }.to_vec()),
        (key.clone(), ticket.clone()).prop_map(|(node_key, ticket)| {
            Frame::RegisterRequest(RegisterRequest { node_key, ticket }).to_vec()
        }),
        (
            key,
            ticket,
            any::<[u8; 32]>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>()
        )
            .prop_map(
                |(node_key, ticket, ephemeral, cookie, mac)| Frame::RegisterProof(RegisterProof {
                    node_key,
                    ticket,
                    ephemeral,
                    cookie,
                    mac
                })
                .to_vec()
            ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// An unregistered sender gets nothing forwarded, creates no session, and
    /// no answer it gets is as large as what it sent.
    #[test]
    fn unregistered_senders_get_nothing_forwarded_and_no_amplification(
        frames in prop::collection::vec(arb_hostile(), 1..40),
    ) {
        let mut h = Harness::new(Config::default());
        let a = h.registered(1, HOUR);
        let before = h.session_state();
        for (i, frame) in frames.iter().enumerate() {
            h.now += Duration::from_millis(300);
            let out = h.deliver(addr(100 + (i % 3) as u16), frame);
            prop_assert!(!matches!(out.result, Ok(Some(_))), "forwarded for an unregistered sender");
            for reply in &out.replies {
                prop_assert!(reply.payload.len() < frame.len(), "reply {} >= request {}", reply.payload.len(), frame.len());
            }
                let keys: Vec<PublicKey> = h.relay.sessions.keys().copied().collect();
            prop_assert_eq!(keys, vec![a.key]);
        }
        let after = h.session_state();
        prop_assert_eq!(after.1, before.1);
        prop_assert_eq!(after.0.get(&a.key).map(|s| s.addr), Some(a.addr));
    }

    /// Whatever a registered node sends, every forwarded frame names it (its
    /// session's key) as the source, and only ever goes to a registered node.
    #[test]
    fn a_registered_sender_cannot_send_as_another_key(
        frames in prop::collection::vec((0usize..4, prop::collection::vec(any::<u8>(), 1..64), any::<bool>()), 1..40),
    ) {
        let mut h = Harness::new(Config::default());
        let nodes = [h.registered(1, HOUR), h.registered(2, HOUR), h.registered(3, HOUR)];
        let sender = &nodes[0];
        for (target, payload, as_recv) in frames {
            let dst = nodes.get(target).map_or(PublicKey::from_bytes([0xAA; 32]), |n| n.key);
            // Either a Send, or a Recv that claims to come from someone else.
            let frame = if as_recv {
                Frame::Recv { src: nodes[1].key, payload: &payload }.to_vec()
            } else {
                Frame::Send { dst, payload: &payload }.to_vec()
            };
            let out = h.deliver(sender.addr, &frame);
            if let Ok(Some(to)) = out.result {
                prop_assert!(!as_recv);
                prop_assert_eq!(Frame::decode(&out.bytes), Ok(Frame::Recv { src: sender.key, payload: &payload }));
                prop_assert_eq!(Some(to), nodes.iter().find(|n| n.key == dst).map(|n| n.addr));
            }
        }
    }

    /// A valid proof with any one byte changed registers nothing and leaves
    /// every session as it was.
    #[test]
    fn a_tampered_proof_changes_nothing(position in 4usize..204, flip in 1u8..=255) {
        let mut h = Harness::new(Config::default());
        let _other = h.registered(2, HOUR);
        let mut node = h.node(1, HOUR);
        let request = node.client.poll_transmit().unwrap();
        let challenge = h.deliver(node.addr, &request.payload).replies.remove(0);
        let relay = node.client.relay_addr();
        node.client.handle_datagram(h.now, relay, &challenge.payload).unwrap();
        let mut proof = node.client.poll_transmit().unwrap().payload;
        proof[position] ^= flip;
        let before = h.session_state();
        let snapshot = h.relay.clone();
        let out = h.deliver(node.addr, &proof);
        prop_assert!(out.result.is_err());
        prop_assert_eq!(h.session_state(), before);
        prop_assert_eq!(h.relay.metrics().drops.total(), snapshot.metrics().drops.total() + 1);
        prop_assert!(out.replies.iter().all(|r| r.payload.len() < proof.len()));
        prop_assert!(out.replies.iter().all(|r| Frame::decode(&r.payload).map(|f| f.frame_type()) == Ok(FrameType::Error)));
    }

    /// Arbitrary datagrams from anywhere, at any time, never panic the core.
    #[test]
    fn arbitrary_input_never_panics(
        inputs in prop::collection::vec((any::<u16>(), prop::collection::vec(any::<u8>(), 0..300), 0u64..100_000), 0..50),
    ) {
        let mut h = Harness::new(Config::default());
        let _a = h.registered(1, HOUR);
        for (from, mut bytes, millis) in inputs {
            h.advance(Duration::from_millis(millis));
            if let Some(first) = bytes.first_mut() {
                if from % 2 == 0 { *first = 0xFE; }
            }
            if bytes.len() > 1 && from % 3 == 0 { bytes[1] = 1; }
            let _ = h.deliver(addr(from % 4), &bytes);
        }
    }
}

#[test]
fn a_renewed_ticket_extends_the_session_without_leaving_it() {
    let mut h = Harness::new(Config::default());
    let mut node = h.registered(1, Duration::from_secs(60));
    let _ = std::iter::from_fn(|| node.client.poll_event()).count();
    let renewed = h.ticket(node.key, HOUR);
    node.client.renew_ticket(renewed, h.now);
    assert!(node.client.is_registered(), "still usable while renewing");
    h.exchange(&mut node);
    assert!(node.client.is_registered());
    assert_eq!(h.relay.metrics().refreshes, 1);
    let events: Vec<_> = std::iter::from_fn(|| node.client.poll_event()).collect();
    assert!(
        events.iter().any(
            |e| matches!(e, ClientEvent::Registered { expires, .. } if *expires == renewed.expires)
        ),
        "{events:?}"
    );
    // The session now outlives the first ticket.
    h.advance(Duration::from_secs(120));
    let peer = h.registered(2, HOUR);
    assert!(h
        .send(&peer, &node.key, b"still here")
        .result
        .unwrap()
        .is_some());
}

#[test]
fn a_revoked_key_loses_its_session_and_cannot_register_until_the_hold_ends() {
    let mut h = Harness::new(Config::default());
    let mut node = h.registered(1, HOUR);
    let peer = h.registered(2, HOUR);
    h.relay.revoke(node.key, h.now + Duration::from_secs(600));
    assert!(
        h.send(&peer, &node.key, b"gone").result.is_err(),
        "no session to forward to"
    );
    node.client.set_ticket(h.ticket(node.key, HOUR), h.now);
    h.exchange(&mut node);
    assert!(!node.client.is_registered());
    assert!(h.relay.metrics().drops.get(DropReason::Revoked) >= 1);
    assert_eq!(h.relay.metrics().revocations, 1);
    h.advance(Duration::from_secs(601));
    node.client.set_ticket(h.ticket(node.key, HOUR), h.now);
    h.exchange(&mut node);
    assert!(node.client.is_registered(), "the hold is over");
}
