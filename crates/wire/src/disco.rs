//! Disco messages: what two peers exchange, end to end through a relay, to
//! find a direct path. This is the codec; sealing and opening (the keys
//! and the AEAD) are `warren_mesh::disco`'s.
//!
//! A disco message travels as the payload of a relay `Send`/`Recv` and
//! never looks like WireGuard (first byte 1–4) or a relay frame (`0xFE`):
//!
//! ```text
//! offset  size  field
//!  0       1    magic 0xFD
//!  1       1    version (1)
//!  2      32    sender's public key
//! 34      12    nonce: an 8-byte per-run prefix, then a big-endian u32 counter
//! 46       n    the sealed message: ChaCha20-Poly1305 ciphertext, then its
//!               16-byte tag; the 46-byte header above is the additional data
//!
//! the message, once opened:
//!   type u8 (1: CallMeMaybe) | count u8 (at most 8) | count × candidate addr
//!
//! candidate addr: family u8 (4 or 6) | address 4 or 16 | port u16
//! ```
//! The candidate encoding is the relay frames' `observed addr`
//! ([`frame::write_addr`](crate::frame::write_addr)). A decoded candidate
//! is canonical: `::ffff:a.b.c.d` decodes as `a.b.c.d`, so one host has
//! one form. `docs/protocol.md` has the same table with the key
//! derivation.

use crate::error::DecodeError;
use crate::frame::{addr_len, read_addr, write_addr};
use crate::key::PublicKey;
use crate::reader::Reader;
use std::net::SocketAddr;

/// First byte of every disco message.
pub const MAGIC: u8 = 0xFD;
/// The disco version this build speaks.
pub const VERSION: u8 = 1;
/// Length of a nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the cleartext header: magic, version, sender key, nonce.
pub const HEADER_LEN: usize = 2 + 32 + NONCE_LEN;
/// Length of the AEAD tag that ends a sealed message.
pub const TAG_LEN: usize = 16;
/// Most candidates one `CallMeMaybe` carries.
pub const MAX_CANDIDATES: usize = 8;

/// The message type of a `CallMeMaybe`.
const CALL_ME_MAYBE: u8 = 1;

/// Whether a datagram (or relayed payload) claims to be a disco message.
pub fn is_disco(bytes: &[u8]) -> bool {
    bytes.first() == Some(&MAGIC)
}

/// The sender a disco message claims (bytes 2..34), before it is opened.
pub fn claimed_sender(bytes: &[u8]) -> Option<PublicKey> {
    let mut reader = Reader::new(bytes);
    reader.take(2).ok()?;
    reader.array().ok().map(PublicKey::from_bytes)
}

/// The nonce of a disco message: the sender's per-run prefix and counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoNonce {
    /// Random per run of the sender.
    pub prefix: [u8; 8],
    /// Counts up within a run.
    pub counter: u32,
}

impl DiscoNonce {
    /// The nonce for `prefix` and `counter`.
    pub fn new(prefix: [u8; 8], counter: u32) -> DiscoNonce {
        DiscoNonce { prefix, counter }
    }

    /// Whether a message with this nonce may follow one with `last`: a
    /// higher counter in the same run, or a new run of the sender.
    pub fn follows(&self, last: Option<DiscoNonce>) -> bool {
        match last {
            None => true,
            Some(last) if last.prefix == self.prefix => self.counter > last.counter,
            Some(_) => true,
        }
    }

    /// The 12 bytes on the wire (and the AEAD nonce).
    pub fn to_bytes(&self) -> [u8; NONCE_LEN] {
        let mut bytes = [0u8; NONCE_LEN];
        let (prefix, counter) = bytes.split_at_mut(8);
        prefix.copy_from_slice(&self.prefix);
        counter.copy_from_slice(&self.counter.to_be_bytes());
        bytes
    }

    fn read(reader: &mut Reader<'_>) -> Result<DiscoNonce, DecodeError> {
        Ok(DiscoNonce {
            prefix: reader.array()?,
            counter: u32::from_be_bytes(reader.array()?),
        })
    }
}

/// The cleartext header of a disco message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Who claims to have sealed the message.
    pub sender: PublicKey,
    /// The nonce it was sealed with.
    pub nonce: DiscoNonce,
}

impl Header {
    /// The encoded header: what a sealed message starts with, and the
    /// additional data of its seal.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        let (fixed, rest) = bytes.split_at_mut(2);
        fixed.copy_from_slice(&[MAGIC, VERSION]);
        let (sender, nonce) = rest.split_at_mut(32);
        sender.copy_from_slice(self.sender.as_bytes());
        nonce.copy_from_slice(&self.nonce.to_bytes());
        bytes
    }
}

/// A received disco message split into its header and its sealed message,
/// not yet opened. Borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The decoded header.
    pub header: Header,
    /// The header as received: the additional data to open with.
    pub header_bytes: &'a [u8],
    /// The ciphertext and its tag (at least [`TAG_LEN`] bytes).
    pub sealed: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Splits a disco message: checks the magic, the version and that a
    /// tag's worth of sealed bytes follows the header.
    pub fn decode(bytes: &'a [u8]) -> Result<Envelope<'a>, DecodeError> {
        let mut reader = Reader::new(bytes);
        if reader.u8()? != MAGIC {
            return Err(DecodeError::InvalidField("disco magic"));
        }
        let version = reader.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let header = Header {
            sender: PublicKey::from_bytes(reader.array()?),
            nonce: DiscoNonce::read(&mut reader)?,
        };
        let header_bytes = bytes.get(..HEADER_LEN).ok_or(DecodeError::Truncated)?;
        let sealed = reader.rest();
        if sealed.len() < TAG_LEN {
            return Err(DecodeError::Truncated);
        }
        Ok(Envelope {
            header,
            header_bytes,
            sealed,
        })
    }
}

/// A disco message, in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The sender's candidate addresses for a direct path ("I might be
    /// reachable here; probe me there"). Only the first
    /// [`MAX_CANDIDATES`] are encoded.
    CallMeMaybe(Vec<SocketAddr>),
}

impl Message {
    /// The candidates that are encoded: at most [`MAX_CANDIDATES`].
    fn candidates(&self) -> &[SocketAddr] {
        let Message::CallMeMaybe(candidates) = self;
        candidates.get(..MAX_CANDIDATES).unwrap_or(candidates)
    }

    /// How many bytes [`Message::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        2 + self.candidates().iter().map(addr_len).sum::<usize>()
    }

    /// Appends the encoded message (the plaintext that gets sealed) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let candidates = self.candidates();
        out.reserve(self.encoded_len());
        out.push(CALL_ME_MAYBE);
        // At most MAX_CANDIDATES (8): the count fits a byte.
        out.push(candidates.len() as u8);
        for candidate in candidates {
            write_addr(candidate, out);
        }
    }

    /// Decodes an opened message: its type, then the whole body, with no
    /// bytes after it.
    pub fn decode(plain: &[u8]) -> Result<Message, DecodeError> {
        let mut reader = Reader::new(plain);
        match reader.u8()? {
            CALL_ME_MAYBE => {}
            other => return Err(DecodeError::UnknownType(other)),
        }
        let count = usize::from(reader.u8()?);
        if count > MAX_CANDIDATES {
            return Err(DecodeError::InvalidField("candidate count"));
        }
        let mut candidates = Vec::with_capacity(count);
        for _ in 0..count {
            let mut candidate = read_addr(&mut reader)?;
            candidate.set_ip(candidate.ip().to_canonical());
            candidates.push(candidate);
        }
        reader.finish()?;
        Ok(Message::CallMeMaybe(candidates))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn call() -> Message {
        Message::CallMeMaybe(vec![
            "203.0.113.7:51820".parse().unwrap(),
            "[2001:db8::1]:4000".parse().unwrap(),
        ])
    }

    /// The layout, byte for byte, as `docs/protocol.md` describes it.
    #[test]
    fn the_layout_is_the_documented_one() {
        let header = Header {
            sender: PublicKey::from_bytes([7; 32]),
            nonce: DiscoNonce::new([1, 2, 3, 4, 5, 6, 7, 8], 0x0a0b_0c0d),
        };
        let mut expected = vec![0xFD, 1];
        expected.extend_from_slice(&[7; 32]);
        expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 0x0a, 0x0b, 0x0c, 0x0d]);
        assert_eq!(header.to_bytes().to_vec(), expected);

        let mut body = Vec::new();
        call().encode(&mut body);
        let mut expected = vec![1, 2, 4, 203, 0, 113, 7, 0xca, 0x6c, 6];
        expected.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        expected.extend_from_slice(&[0x0f, 0xa0]);
        assert_eq!(body, expected);
        assert_eq!(call().encoded_len(), body.len());
    }

    #[test]
    fn a_message_and_an_envelope_round_trip_and_every_truncation_is_refused() {
        let mut body = Vec::new();
        call().encode(&mut body);
        assert_eq!(Message::decode(&body), Ok(call()));
        for len in 0..body.len() {
            assert!(
                Message::decode(&body[..len]).is_err(),
                "message cut to {len}"
            );
        }
        let mut longer = body.clone();
        longer.push(0);
        assert_eq!(Message::decode(&longer), Err(DecodeError::TrailingBytes(1)));

        let header = Header {
            sender: PublicKey::from_bytes([3; 32]),
            nonce: DiscoNonce::new([9; 8], 2),
        };
        let mut sealed = header.to_bytes().to_vec();
        sealed.extend_from_slice(&[0xAA; TAG_LEN + 5]);
        let envelope = Envelope::decode(&sealed).unwrap();
        assert_eq!(envelope.header, header);
        assert_eq!(envelope.header_bytes, &header.to_bytes()[..]);
        assert_eq!(envelope.sealed, &[0xAA; TAG_LEN + 5][..]);
        assert!(is_disco(&sealed));
        assert_eq!(claimed_sender(&sealed), Some(header.sender));
        // A sealed message is at least a tag: anything shorter is cut.
        for len in 0..HEADER_LEN + TAG_LEN {
            assert!(
                Envelope::decode(&sealed[..len]).is_err(),
                "envelope cut to {len}"
            );
        }
        assert!(claimed_sender(&sealed[..33]).is_none());
    }

    #[test]
    fn bad_magic_versions_types_counts_and_families_are_refused() {
        let mut sealed = Header {
            sender: PublicKey::from_bytes([3; 32]),
            nonce: DiscoNonce::new([9; 8], 2),
        }
        .to_bytes()
        .to_vec();
        sealed.extend_from_slice(&[0; TAG_LEN]);
        let mut bad = sealed.clone();
        bad[0] = 0xFE;
        assert_eq!(
            Envelope::decode(&bad),
            Err(DecodeError::InvalidField("disco magic"))
        );
        let mut bad = sealed.clone();
        bad[1] = 2;
        assert_eq!(
            Envelope::decode(&bad),
            Err(DecodeError::UnsupportedVersion(2))
        );

        assert_eq!(Message::decode(&[2, 0]), Err(DecodeError::UnknownType(2)));
        assert_eq!(
            Message::decode(&[1, 9]),
            Err(DecodeError::InvalidField("candidate count"))
        );
        assert_eq!(
            Message::decode(&[1, 1, 5, 1, 2, 3, 4, 0, 1]),
            Err(DecodeError::InvalidField("address family"))
        );
    }

    #[test]
    fn candidates_past_the_cap_are_not_encoded_and_mapped_ones_decode_as_ipv4() {
        let many: Vec<SocketAddr> = (1..=10)
            .map(|port| SocketAddr::from(([198, 51, 100, 1], port)))
            .collect();
        let mut body = Vec::new();
        Message::CallMeMaybe(many.clone()).encode(&mut body);
        assert_eq!(
            Message::decode(&body),
            Ok(Message::CallMeMaybe(many[..MAX_CANDIDATES].to_vec()))
        );

        let mapped: SocketAddr = "[::ffff:198.51.100.1]:7".parse().unwrap();
        let mut body = Vec::new();
        Message::CallMeMaybe(vec![mapped]).encode(&mut body);
        assert_eq!(
            Message::decode(&body),
            Ok(Message::CallMeMaybe(vec!["198.51.100.1:7"
                .parse()
                .unwrap()]))
        );
    }

    #[test]
    fn only_newer_nonces_of_a_run_follow() {
        let last = Some(DiscoNonce::new([1; 8], 5));
        assert!(DiscoNonce::new([1; 8], 6).follows(last));
        assert!(!DiscoNonce::new([1; 8], 5).follows(last), "a replay");
        assert!(!DiscoNonce::new([1; 8], 4).follows(last));
        assert!(DiscoNonce::new([2; 8], 0).follows(last), "a new run");
        assert!(DiscoNonce::new([1; 8], 0).follows(None));
    }

    fn arb_candidate() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
            (any::<[u8; 16]>(), any::<u16>())
                .prop_map(|(ip, port)| SocketAddr::from((ip, port)))
                // Mapped addresses decode as IPv4 (tested above).
                .prop_filter("not IPv4-mapped", |addr| addr.ip().to_canonical()
                    == addr.ip()),
        ]
    }

    proptest! {
        #[test]
        fn every_message_round_trips_and_every_truncation_is_refused(
            candidates in proptest::collection::vec(arb_candidate(), 0..=MAX_CANDIDATES)
        ) {
            let message = Message::CallMeMaybe(candidates);
            let mut body = Vec::new();
            message.encode(&mut body);
            prop_assert_eq!(body.len(), message.encoded_len());
            prop_assert_eq!(Message::decode(&body), Ok(message));
            for len in 0..body.len() {
                prop_assert!(Message::decode(&body[..len]).is_err());
            }
        }

        #[test]
        fn every_header_round_trips(
            sender in any::<[u8; 32]>(),
            prefix in any::<[u8; 8]>(),
            counter in any::<u32>(),
            sealed_len in TAG_LEN..100,
        ) {
            let header = Header {
                sender: PublicKey::from_bytes(sender),
                nonce: DiscoNonce::new(prefix, counter),
            };
            let mut bytes = header.to_bytes().to_vec();
            bytes.resize(HEADER_LEN + sealed_len, 0x55);
            let envelope = Envelope::decode(&bytes).unwrap();
            prop_assert_eq!(envelope.header, header);
            prop_assert_eq!(envelope.sealed.len(), sealed_len);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Envelope::decode(&bytes);
            let _ = Message::decode(&bytes);
            let _ = claimed_sender(&bytes);
        }
    }
}
