//! Disco: the messages two peers exchange to find a direct path, sealed end
//! to end with a key only the two of them can compute.
//!
//! The wire layout (magic `0xFD`, version, sender key, nonce, sealed
//! message; the `CallMeMaybe` body) is `warren_wire::disco`'s, re-exported
//! here; this module seals and opens.
//!
//! The key for each direction is BLAKE2s over a label, the X25519 shared
//! secret of the two static keys, the sender's and then the receiver's
//! public key: only the two peers can seal or open, and the two directions
//! never share a key. The 46-byte header before the ciphertext is the
//! additional data, and the cipher ChaCha20-Poly1305. The nonce prefix is
//! random per node run (derived from its 64-bit seed), so a restarted node
//! does not reuse nonces with its old counter; a receiver refuses a message
//! whose nonce is not newer than the last one it accepted from the same run
//! of the sender.

use blake2::{Blake2s256, Digest};
use boringtun::x25519::{PublicKey as X25519PublicKey, StaticSecret};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use warren_wire::disco::{Envelope, Header, HEADER_LEN, TAG_LEN};
use warren_wire::{PrivateKey, PublicKey};

pub use warren_wire::disco::{
    claimed_sender, is_disco, DiscoNonce, Message, MAGIC, MAX_CANDIDATES, VERSION,
};

const KEY_LABEL: &[u8] = b"warren disco v1";

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
        let header = Header {
            sender: self.own,
            nonce,
        }
        .to_bytes();
        let mut body = Vec::with_capacity(message.encoded_len() + TAG_LEN);
        message.encode(&mut body);
        // Sealing only fails for messages beyond ChaCha20's 256 GiB limit.
        let _ = self.seal.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce.to_bytes()),
            Aad::from(&header),
            &mut body,
        );
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(&body);
        out
    }

    /// Opens a message the peer sealed for this node; returns it with its nonce.
    pub fn open(&self, bytes: &[u8]) -> Result<(Message, DiscoNonce), DiscoError> {
        let envelope = Envelope::decode(bytes).map_err(|_| DiscoError::Malformed)?;
        if !self.contributory {
            return Err(DiscoError::Unauthenticated);
        }
        let nonce = envelope.header.nonce;
        let mut body = envelope.sealed.to_vec();
        let plain = self
            .open
            .open_in_place(
                Nonce::assume_unique_for_key(nonce.to_bytes()),
                Aad::from(envelope.header_bytes),
                &mut body,
            )
            .map_err(|_| DiscoError::Unauthenticated)?;
        let message = Message::decode(plain).map_err(|_| DiscoError::Malformed)?;
        Ok((message, nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::SocketAddr;

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

    const GOLDEN: &str = "fd01a4e09292b651c278b9772c569f5fa9bb13d906b46ab68c9df9dc2b4409f8a209090909090909090900000003f394c5d51dd40947cd89c540f5c40c7274dba6c2f49e642228d1fbc80bcc6a1795ab3e415db0aa27f98f43e6";

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

    /// A sealed `CallMeMaybe`, byte for byte: the layout is a protocol
    /// (pinned from the implementation before the codec moved to
    /// `warren-wire`).
    #[test]
    fn a_sealed_message_is_byte_for_byte_the_pinned_one() {
        let (a, _) = pair();
        let sealed = a.seal(&call(), DiscoNonce::new([9; 8], 3));
        let hex: String = sealed.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, GOLDEN);
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
