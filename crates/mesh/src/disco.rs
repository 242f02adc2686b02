//! Disco: the messages two peers exchange to find a direct path, sealed end
//! to end with a key only the two of them can compute.
//!
//! A disco message travels as the payload of a relay `Send` and never looks
//! like WireGuard or a relay frame:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 1 | magic `0xFD` |
//! | 1 | 1 | version `1` |
//! | 2 | 32 | sender's public key |
//! | 34 | 12 | nonce: an 8-byte per-run prefix, then a big-endian 32-bit counter |
//! | 46 | n | ChaCha20-Poly1305 ciphertext of the message, then its 16-byte tag |
//!
//! The key for each direction is BLAKE2s over a label, the X25519 shared
//! secret of the two static keys, the sender's and then the receiver's
//! public key: only the two peers can seal or open, and the two directions
//! never share a key. The 46-byte header before the ciphertext is the
//! additional data. The nonce prefix is random per node run (derived from
//! its 64-bit seed), so a restarted node does not reuse nonces with its old
//! counter; a receiver refuses a message whose nonce is not newer than the
//! last one it accepted from the same run of the sender.
//!
//! The one message so far, `CallMeMaybe` (type 1): a count byte, then that
//! many candidate addresses (family `4` + 4 bytes or `6` + 16 bytes, then a
//! big-endian port): "I might be reachable here; probe me there."

use blake2::{Blake2s256, Digest};
use boringtun::x25519::{PublicKey as X25519PublicKey, StaticSecret};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use warren_wire::{PrivateKey, PublicKey};

/// First byte of every disco message.
pub const MAGIC: u8 = 0xFD;
/// The disco version this node speaks.
pub const VERSION: u8 = 1;
/// Most candidates one `CallMeMaybe` carries.
pub const MAX_CANDIDATES: usize = 8;

const HEADER_LEN: usize = 2 + 32 + 12;
const TAG_LEN: usize = 16;
const CALL_ME_MAYBE: u8 = 1;
const KEY_LABEL: &[u8] = b"warren disco v1";

/// Whether a datagram (or relayed payload) is a disco message.
pub fn is_disco(bytes: &[u8]) -> bool {
    bytes.first() == Some(&MAGIC)
}

/// The sender a disco message claims, before it is opened.
pub fn claimed_sender(bytes: &[u8]) -> Option<PublicKey> {
    let key: [u8; 32] = bytes.get(2..34)?.try_into().ok()?;
    Some(PublicKey::from_bytes(key))
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

    fn bytes(&self) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&self.prefix);
        nonce[8..].copy_from_slice(&self.counter.to_be_bytes());
        nonce
    }
}

/// A disco message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The sender's candidate addresses for a direct path.
    CallMeMaybe(Vec<SocketAddr>),
}

/// Why a disco message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DiscoError {
    /// Not a well-formed disco message of a version this node speaks.
    #[error("malformed disco message")]
    Malformed,
    /// The tag does not verify: not sealed by the peer for us, or altered.
    #[error("disco message failed authentication")]
    Unauthenticated,
}

/// The key for messages `from` → `to`, from their X25519 shared secret.
fn direction_key(
    shared: &[u8; 32],
    from: &PublicKey,
    to: &PublicKey,
) -> Result<LessSafeKey, ring::error::Unspecified> {
    let mut hash = Blake2s256::new();
    hash.update(KEY_LABEL);
    hash.update(shared);
    hash.update(from.as_bytes());
    hash.update(to.as_bytes());
    let key: [u8; 32] = hash.finalize().into();
    // A 32-byte key is exactly what ChaCha20-Poly1305 takes.
    UnboundKey::new(&CHACHA20_POLY1305, &key).map(LessSafeKey::new)
}

/// The two directional keys between this node and one peer.
pub struct DiscoKeys {
    own: PublicKey,
    seal: LessSafeKey,
    open: LessSafeKey,
    /// False when the peer's key is a low-order point: the shared secret is
    /// then all zeros, anyone can derive the keys, and nothing is opened.
    contributory: bool,
}

impl DiscoKeys {
    /// The keys between `private_key` (this node) and `peer`.
    pub fn new(private_key: &PrivateKey, peer: PublicKey) -> DiscoKeys {
        let own = private_key.public_key();
        let shared = StaticSecret::from(private_key).diffie_hellman(&X25519PublicKey::from(peer));
        let derive = |from: &PublicKey, to: &PublicKey| direction_key(shared.as_bytes(), from, to);
        let contributory = shared.as_bytes().iter().any(|b| *b != 0);
        match (derive(&own, &peer), derive(&peer, &own)) {
            (Ok(seal), Ok(open)) => DiscoKeys {
                own,
                seal,
                open,
                contributory,
            },
            _ => unreachable!("ChaCha20-Poly1305 accepts every 32-byte key"),
        }
    }

    /// Seals `message` with `nonce` (never reuse one).
    pub fn seal(&self, message: &Message, nonce: DiscoNonce) -> Vec<u8> {
        let nonce = nonce.bytes();
        let mut out = Vec::with_capacity(HEADER_LEN + 64);
        out.push(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(self.own.as_bytes());
        out.extend_from_slice(&nonce);
        let mut body = encode(message);
        // Sealing only fails for messages beyond ChaCha20's 256 GiB limit.
        let _ = self.seal.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&out[..]),
            &mut body,
        );
        out.extend_from_slice(&body);
        out
    }

    /// Opens a message the peer sealed for this node; returns it with its nonce.
    pub fn open(&self, bytes: &[u8]) -> Result<(Message, DiscoNonce), DiscoError> {
        if bytes.len() < HEADER_LEN + TAG_LEN || bytes.first() != Some(&MAGIC) {
            return Err(DiscoError::Malformed);
        }
        if bytes.get(1) != Some(&VERSION) {
            return Err(DiscoError::Malformed);
        }
        if !self.contributory {
            return Err(DiscoError::Unauthenticated);
        }
        let (header, sealed) = bytes.split_at(HEADER_LEN);
        let nonce: [u8; 12] = header[34..46]
            .try_into()
            .map_err(|_| DiscoError::Malformed)?;
        let mut body = sealed.to_vec();
        let plain = self
            .open
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(header),
                &mut body,
            )
            .map_err(|_| DiscoError::Unauthenticated)?;
        let (prefix, counter) = nonce.split_at(8);
        let nonce = DiscoNonce {
            prefix: prefix.try_into().map_err(|_| DiscoError::Malformed)?,
            counter: u32::from_be_bytes(counter.try_into().map_err(|_| DiscoError::Malformed)?),
        };
        Ok((decode(plain)?, nonce))
    }
}

fn encode(message: &Message) -> Vec<u8> {
    let Message::CallMeMaybe(candidates) = message;
    let mut out = vec![CALL_ME_MAYBE];
    let candidates = &candidates[..candidates.len().min(MAX_CANDIDATES)];
    out.push(candidates.len() as u8);
    for candidate in candidates {
        match candidate.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&candidate.port().to_be_bytes());
    }
    out
}

fn decode(plain: &[u8]) -> Result<Message, DiscoError> {
    let mut rest = plain;
    let mut take = |n: usize| -> Result<&[u8], DiscoError> {
        if rest.len() < n {
            return Err(DiscoError::Malformed);
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    if take(1)? != [CALL_ME_MAYBE] {
        return Err(DiscoError::Malformed);
    }
    let count = usize::from(take(1)?[0]);
    if count > MAX_CANDIDATES {
        return Err(DiscoError::Malformed);
    }
    let mut candidates = Vec::with_capacity(count);
    for _ in 0..count {
        let ip = match take(1)? {
            [4] => {
                let octets: [u8; 4] = take(4)?.try_into().map_err(|_| DiscoError::Malformed)?;
                IpAddr::V4(Ipv4Addr::from(octets))
            }
            [6] => {
                let octets: [u8; 16] = take(16)?.try_into().map_err(|_| DiscoError::Malformed)?;
                IpAddr::V6(Ipv6Addr::from(octets))
            }
            _ => return Err(DiscoError::Malformed),
        };
        let port = take(2)?;
        // One host, one form: `::ffff:a.b.c.d` is `a.b.c.d`.
        candidates.push(SocketAddr::new(
            ip.to_canonical(),
            u16::from_be_bytes([port[0], port[1]]),
        ));
    }
    if !rest.is_empty() {
        return Err(DiscoError::Malformed);
    }
    Ok(Message::CallMeMaybe(candidates))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A peer configured with a low-order key shares an all-zero secret
    /// with this node, which anyone can compute: its messages are refused.
    #[test]
    fn a_low_order_peer_key_opens_nothing() {
        let node = PrivateKey::from_bytes([1u8; 32]);
        let node_public = node.public_key();
        let low_order = PublicKey::from_bytes([0; 32]);
        let keys = DiscoKeys::new(&node, low_order);
        let zero = [0u8; 32];
        let forger = DiscoKeys {
            own: low_order,
            seal: direction_key(&zero, &low_order, &node_public).unwrap(),
            open: direction_key(&zero, &node_public, &low_order).unwrap(),
            contributory: true,
        };
        let forged = forger.seal(
            &Message::CallMeMaybe(vec!["198.51.100.1:1".parse().unwrap()]),
            DiscoNonce::new([1; 8], 1),
        );
        assert_eq!(keys.open(&forged), Err(DiscoError::Unauthenticated));
    }

    fn pair() -> (DiscoKeys, DiscoKeys) {
        let a = PrivateKey::from_bytes([1u8; 32]);
        let b = PrivateKey::from_bytes([2u8; 32]);
        let (pa, pb) = (a.public_key(), b.public_key());
        (DiscoKeys::new(&a, pb), DiscoKeys::new(&b, pa))
    }

    fn call() -> Message {
        Message::CallMeMaybe(vec![
            "203.0.113.7:51820".parse().unwrap(),
            "[2001:db8::1]:4000".parse().unwrap(),
        ])
    }

    #[test]
    fn a_sealed_message_opens_only_for_its_peer_and_direction() {
        let (a, b) = pair();
        let nonce = DiscoNonce::new([9; 8], 1);
        let sealed = a.seal(&call(), nonce);
        assert!(is_disco(&sealed));
        assert_eq!(claimed_sender(&sealed), Some(a.own));
        assert_eq!(b.open(&sealed), Ok((call(), nonce)));
        assert_eq!(
            a.open(&sealed),
            Err(DiscoError::Unauthenticated),
            "not a's own direction"
        );
        let stranger = DiscoKeys::new(&PrivateKey::from_bytes([3u8; 32]), a.own);
        assert_eq!(stranger.open(&sealed), Err(DiscoError::Unauthenticated));
    }

    #[test]
    fn every_truncation_and_every_flipped_bit_is_refused() {
        let (a, b) = pair();
        let sealed = a.seal(&call(), DiscoNonce::new([9; 8], 2));
        for len in 0..sealed.len() {
            assert!(b.open(&sealed[..len]).is_err(), "truncation to {len}");
        }
        for at in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[at] ^= 0x10;
            assert!(b.open(&bad).is_err(), "flip at {at}");
        }
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

    proptest! {
        #[test]
        fn arbitrary_bytes_never_open_or_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let (_, b) = pair();
            prop_assert!(b.open(&bytes).is_err());
        }

        #[test]
        fn candidates_round_trip(ports in proptest::collection::vec(any::<u16>(), 0..=MAX_CANDIDATES)) {
            let (a, b) = pair();
            let candidates: Vec<SocketAddr> = ports
                .iter()
                .map(|port| SocketAddr::from(([198, 51, 100, (*port % 250) as u8], *port)))
                .collect();
            let message = Message::CallMeMaybe(candidates);
            let nonce = DiscoNonce::new([1; 8], 7);
            prop_assert_eq!(b.open(&a.seal(&message, nonce)), Ok((message, nonce)));
        }
    }
}
