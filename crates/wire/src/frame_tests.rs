//! Codec tests: every frame round-trips, every truncation is refused, no
//! input panics, and replies are never larger than what they answer.

use super::*;
use proptest::prelude::*;
use std::net::{SocketAddrV4, SocketAddrV6};

fn arb_key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 32]>().prop_map(PublicKey::from_bytes)
}

fn arb_ticket() -> impl Strategy<Value = Ticket> {
    (
        arb_key(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 64),
    )
        .prop_map(|(node_key, expires, signature)| {
            let mut sig = [0u8; 64];
            sig.copy_from_slice(&signature);
            Ticket {
                node_key,
                expires,
                signature: sig,
            }
        })
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(ip.into(), port))),
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(
            ip.into(),
            port,
            0,
            0
        ))),
    ]
}

/// An owned description of a frame (payloads need an owner to borrow from).
#[derive(Debug, Clone)]
enum Owned {
    Fixed(Frame<'static>),
    Send(PublicKey, Vec<u8>),
    Recv(PublicKey, Vec<u8>),
}

impl Owned {
    fn frame(&self) -> Frame<'_> {
        match self {
            Owned::Fixed(frame) => *frame,
            Owned::Send(dst, payload) => Frame::Send { dst: *dst, payload },
            Owned::Recv(src, payload) => Frame::Recv { src: *src, payload },
        }
    }
}

fn arb_frame() -> impl Strategy<Value = Owned> {
    let payload = || prop::collection::vec(any::<u8>(), 1..300);
    prop_oneof![
        (arb_key(), arb_ticket()).prop_map(|(node_key, ticket)| Owned::Fixed(
            Frame::RegisterRequest(RegisterRequest { node_key, ticket })
        )),
        (any::<[u8; 32]>(), any::<[u8; 16]>(), arb_addr()).prop_map(
            |(ephemeral, cookie, observed)| Owned::Fixed(Frame::Challenge(Challenge {
                ephemeral,
                cookie,
                observed
            }))
        ),
        (
            arb_key(),
            arb_ticket(),
            any::<[u8; 32]>(),
            any::<[u8; 16]>(),
            any::<[u8; 16]>()
        )
            .prop_map(|(node_key, ticket, ephemeral, cookie, mac)| Owned::Fixed(
                Frame::RegisterProof(RegisterProof {
                    node_key,
                    ticket,
                    ephemeral,
                    cookie,
                    mac
                })
            )),
        (arb_addr(), any::<u64>()).prop_map(|(observed, expires)| Owned::Fixed(Frame::Registered(
            Registered { observed, expires }
        ))),
        (arb_key(), payload()).prop_map(|(key, payload)| Owned::Send(key, payload)),
        (arb_key(), payload()).prop_map(|(key, payload)| Owned::Recv(key, payload)),
        any::<u64>().prop_map(|txid| Owned::Fixed(Frame::Ping { txid })),
        (any::<u64>(), arb_addr())
            .prop_map(|(txid, observed)| Owned::Fixed(Frame::Pong { txid, observed })),
        any::<u8>().prop_map(|code| Owned::Fixed(Frame::Error {
            code: ErrorCode(code)
        })),
    ]
}

proptest! {
    #[test]
    fn every_frame_round_trips(owned in arb_frame()) {
        let frame = owned.frame();
        let bytes = frame.to_vec();
        prop_assert_eq!(bytes.len(), frame.encoded_len());
        prop_assert!(is_warren_frame(&bytes));
        prop_assert_eq!(Frame::decode(&bytes), Ok(frame));
    }

    /// Every strict prefix is refused. `Send` and `Recv` run to the end of
    /// the datagram, so their prefixes down to one payload byte are still
    /// valid (shorter) frames; every shorter prefix is refused.
    #[test]
    fn every_truncation_is_refused(owned in arb_frame()) {
        let bytes = owned.frame().to_vec();
        let min_len = match owned {
            Owned::Fixed(_) => bytes.len(),
            Owned::Send(..) | Owned::Recv(..) => SEND_HEADER_LEN + 1,
        };
        for len in 0..bytes.len() {
            let prefix = &bytes[..len];
            let decoded = Frame::decode(prefix);
            if len < min_len {
                prop_assert!(decoded.is_err(), "prefix of {} bytes decoded: {:?}", len, decoded);
            } else {
                prop_assert_eq!(decoded.map(|f| f.encoded_len()), Ok(len));
            }
        }
    }

    #[test]
    fn fixed_frames_refuse_trailing_bytes(owned in arb_frame(), extra in 1usize..8) {
        if let Owned::Fixed(frame) = owned {
            let mut bytes = frame.to_vec();
            bytes.extend(std::iter::repeat_n(0u8, extra));
            prop_assert_eq!(Frame::decode(&bytes), Err(DecodeError::TrailingBytes(extra)));
        }
    }

    #[test]
    fn other_versions_are_refused_as_unsupported(owned in arb_frame(), version in any::<u8>()) {
        prop_assume!(version != VERSION);
        let mut bytes = owned.frame().to_vec();
        bytes[1] = version;
        prop_assert_eq!(Frame::decode(&bytes), Err(DecodeError::UnsupportedVersion(version)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Frame::decode(&bytes);
    }

    /// Random bodies behind a valid header: exercises each type's decoder.
    #[test]
    fn arbitrary_bodies_never_panic(
        frame_type in 0u8..12,
        body in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = vec![MAGIC, VERSION, frame_type, 0];
        bytes.extend(body);
        if let Ok(frame) = Frame::decode(&bytes) {
            // What decodes re-encodes to the same bytes.
            prop_assert_eq!(frame.to_vec(), bytes);
        }
    }

    #[test]
    fn wireguard_datagrams_are_never_warren_frames(
        message_type in 1u8..=4,
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = vec![message_type, 0, 0, 0];
        bytes.extend(body);
        prop_assert!(!is_warren_frame(&bytes));
        prop_assert_eq!(Frame::decode(&bytes), Err(DecodeError::NotWarren));
    }

    #[test]
    fn send_rewritten_in_place_is_the_recv(
        dst in arb_key(),
        src in arb_key(),
        payload in prop::collection::vec(any::<u8>(), 1..100),
    ) {
        let mut bytes = Frame::Send { dst, payload: &payload }.to_vec();
        prop_assert_eq!(send_to_recv_in_place(&mut bytes, &src), Some(()));
        prop_assert_eq!(Frame::decode(&bytes), Ok(Frame::Recv { src, payload: &payload }));
    }
}

#[test]
fn unknown_types_and_bad_headers_are_refused() {
    assert_eq!(Frame::decode(&[]), Err(DecodeError::NotWarren));
    assert_eq!(
        Frame::decode(&[MAGIC, VERSION, 0x00, 0]),
        Err(DecodeError::UnknownType(0))
    );
    assert_eq!(
        Frame::decode(&[MAGIC, VERSION, 0x0a, 0]),
        Err(DecodeError::UnknownType(0x0a))
    );
    assert_eq!(
        Frame::decode(&[MAGIC, VERSION, 0x09, 1, 1]),
        Err(DecodeError::InvalidField("reserved header byte"))
    );
    let mut ping = Frame::Ping { txid: 1 }.to_vec();
    ping[20] = 1;
    assert_eq!(
        Frame::decode(&ping),
        Err(DecodeError::InvalidField("ping padding"))
    );
    let mut pong = Frame::Pong {
        txid: 1,
        observed: "203.0.113.5:4000".parse().unwrap(),
    }
    .to_vec();
    pong[12] = 5;
    assert_eq!(
        Frame::decode(&pong),
        Err(DecodeError::InvalidField("address family"))
    );
    assert_eq!(
        Frame::decode(&[MAGIC, VERSION, FrameType::Send.byte(), 0, 1]),
        Err(DecodeError::Truncated)
    );
    let empty_send = Frame::Send {
        dst: PublicKey::from_bytes([0; 32]),
        payload: &[1],
    }
    .to_vec();
    assert_eq!(
        Frame::decode(&empty_send[..SEND_HEADER_LEN]),
        Err(DecodeError::InvalidField("empty payload"))
    );
}

/// The anti-amplification rule, as sizes: every answer the relay gives is
/// smaller than (or, for `Pong`, at most as large as) what it answers.
#[test]
fn replies_are_never_larger_than_requests() {
    let v6: SocketAddr = "[2001:db8::1]:65535".parse().unwrap();
    let challenge = Frame::Challenge(Challenge {
        ephemeral: [0; 32],
        cookie: [0; 16],
        observed: v6,
    });
    let registered = Frame::Registered(Registered {
        observed: v6,
        expires: u64::MAX,
    });
    let pong = Frame::Pong {
        txid: 0,
        observed: v6,
    };
    assert_eq!(REGISTER_REQUEST_LEN, 140);
    assert_eq!(REGISTER_PROOF_LEN, 204);
    assert_eq!(PING_LEN, 32);
    assert!(challenge.encoded_len() < REGISTER_REQUEST_LEN);
    assert!(registered.encoded_len() < REGISTER_PROOF_LEN);
    assert!(pong.encoded_len() < PING_LEN);
    const { assert!(ERROR_LEN < PING_LEN && ERROR_LEN < SEND_HEADER_LEN + 1) };
}

#[test]
fn write_send_header_needs_room() {
    let mut short = [0u8; SEND_HEADER_LEN - 1];
    assert_eq!(
        write_send_header(&mut short, &PublicKey::from_bytes([1; 32])),
        None
    );
    assert_eq!(short, [0u8; SEND_HEADER_LEN - 1], "nothing written");
    let mut buf = vec![0u8; SEND_HEADER_LEN + 3];
    buf[SEND_HEADER_LEN..].copy_from_slice(&[7, 8, 9]);
    assert_eq!(
        write_send_header(&mut buf, &PublicKey::from_bytes([1; 32])),
        Some(())
    );
    assert_eq!(
        Frame::decode(&buf),
        Ok(Frame::Send {
            dst: PublicKey::from_bytes([1; 32]),
            payload: &[7, 8, 9]
        })
    );
}

proptest! {
    /// `send_header` is exactly what `Frame::Send` starts with.
    #[test]
    fn send_header_is_the_encoded_send_frames_start(
        dst in arb_key(),
        payload in prop::collection::vec(any::<u8>(), 1..40),
    ) {
        let frame = Frame::Send { dst, payload: &payload }.to_vec();
        prop_assert_eq!(&send_header(&dst)[..], &frame[..SEND_HEADER_LEN]);
    }
}
