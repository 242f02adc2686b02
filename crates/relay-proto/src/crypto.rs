//! The relay protocol's cryptography, shared by the relay ([`crate::core`])
//! and the node side ([`crate::client`]).
//!
//! - **Tickets** are Ed25519 signatures by the control plane's key (ring's
//!   Ed25519: no second curve library)
//!   over `b"warren-relay-ticket-v1" || node key || expiry`.
//! - **Epoch keys.** Time since the relay started is cut into epochs of
//!   [`EPOCH`]; for epoch `n` the relay derives, from its 32-byte secret seed,
//!   an ephemeral X25519 key `BLAKE2s-MAC-256(seed, "warren-relay-ephemeral-v1" || n)`
//!   and a cookie key `BLAKE2s-MAC-256(seed, "warren-relay-cookie-v1" || n)`
//!   (`n` as a big-endian u64). Nothing random is drawn after start-up, and the
//!   relay keeps no state per unproven sender.
//! - **Cookie** = `BLAKE2s-MAC-128(cookie key, "warren-relay-cookie-v1" ||
//!   observed addr || node key)`: proves the proof's sender received the
//!   challenge at the address it registers from, in this or the previous epoch.
//! - **Proof MAC** = `BLAKE2s-MAC-128(k, transcript)` with
//!   `k = BLAKE2s-MAC-256(X25519(node static, relay ephemeral), "warren-relay-proof-key-v1")`
//!   and `transcript = "warren-relay-proof-v1" || version || 0x03 || node key ||
//!   ticket || ephemeral || cookie || observed addr`. Only the holder of the
//!   node key's private half (or of the relay's ephemeral one) can compute it.
//!
//! MACs are compared in constant time (`Mac::verify_slice`).

use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use blake2::{Blake2sMac, Blake2sMac256};
use ring::signature::{Ed25519KeyPair, KeyPair as _, UnparsedPublicKey, ED25519};
use std::net::SocketAddr;
use std::time::Duration;
use warren_wire::frame::{write_addr, COOKIE_LEN, MAC_LEN, VERSION};
use warren_wire::{FrameType, PublicKey, Ticket};
use x25519_dalek::{PublicKey as X25519PublicKey, StaticSecret};

/// How long one set of epoch keys is current. A challenge stays valid while
/// its epoch is the current or the previous one: 30–60 s, far more than a
/// round trip, short enough that a captured cookie soon goes stale.
pub const EPOCH: Duration = Duration::from_secs(30);

type Blake2sMac128 = Blake2sMac<U16>;

/// An Ed25519 public key that signs tickets: the control plane's.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ControlKey(pub [u8; 32]);

/// A ticket the control key did not sign for the key it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ticket signature does not verify with the control key")]
pub struct BadSignature;

impl ControlKey {
    /// Checks the ticket's signature (not its expiry).
    pub fn verify(&self, ticket: &Ticket) -> Result<(), BadSignature> {
        let message = Ticket::signed_message(&ticket.node_key, ticket.expires);
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&message, &ticket.signature)
            .map_err(|_| BadSignature)
    }
}

/// The control plane's Ed25519 signing key, from its 32-byte seed.
pub struct SigningKey(Ed25519KeyPair);

/// A 32-byte seed ring refuses as an Ed25519 key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a valid Ed25519 signing key seed")]
pub struct BadSigningKey;

impl SigningKey {
    /// The key with this seed (the 32 bytes `warren relay keygen` prints).
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self, BadSigningKey> {
        Ed25519KeyPair::from_seed_unchecked(seed)
            .map(SigningKey)
            .map_err(|_| BadSigningKey)
    }

    /// The matching public key, as relays are configured with it.
    pub fn control_key(&self) -> ControlKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.0.public_key().as_ref());
        ControlKey(key)
    }

    /// A ticket for `node_key` valid until `expires` (unix seconds).
    pub fn mint(&self, node_key: PublicKey, expires: u64) -> Ticket {
        let signature = self.0.sign(&Ticket::signed_message(&node_key, expires));
        let mut bytes = [0u8; 64];
        bytes.copy_from_slice(signature.as_ref());
        Ticket {
            node_key,
            expires,
            signature: bytes,
        }
    }
}

/// The relay's keys for one epoch.
#[derive(Clone)]
pub struct EpochKeys {
    /// The epoch number (epochs since the relay started).
    pub epoch: u64,
    /// The ephemeral X25519 private key.
    pub ephemeral: StaticSecret,
    /// Its public half, sent in challenges.
    pub ephemeral_public: [u8; 32],
    /// Keys the cookies of this epoch.
    pub cookie_key: [u8; 32],
}

impl EpochKeys {
    /// Derives epoch `epoch`'s keys from the relay's secret seed.
    pub fn derive(seed: &[u8; 32], epoch: u64) -> Self {
        let ephemeral = StaticSecret::from(keyed_hash(
            seed,
            &[b"warren-relay-ephemeral-v1", &epoch.to_be_bytes()],
        ));
        let ephemeral_public = X25519PublicKey::from(&ephemeral).to_bytes();
        EpochKeys {
            epoch,
            ephemeral,
            ephemeral_public,
            cookie_key: keyed_hash(seed, &[b"warren-relay-cookie-v1", &epoch.to_be_bytes()]),
        }
    }

    /// The cookie for a request from `observed` for `node_key`.
    pub fn cookie(&self, observed: &SocketAddr, node_key: &PublicKey) -> [u8; COOKIE_LEN] {
        cookie_mac(&self.cookie_key, observed, node_key)
            .finalize()
            .into_bytes()
            .into()
    }

    /// Whether `cookie` is this epoch's cookie for `observed` and `node_key`
    /// (constant time).
    pub fn cookie_is_valid(
        &self,
        cookie: &[u8; COOKIE_LEN],
        observed: &SocketAddr,
        node_key: &PublicKey,
    ) -> bool {
        cookie_mac(&self.cookie_key, observed, node_key)
            .verify_slice(cookie)
            .is_ok()
    }
}

fn cookie_mac(key: &[u8; 32], observed: &SocketAddr, node_key: &PublicKey) -> Blake2sMac128 {
    let mut addr = Vec::with_capacity(19);
    write_addr(observed, &mut addr);
    let mut mac = new_mac128(key);
    mac.update(b"warren-relay-cookie-v1");
    mac.update(&addr);
    mac.update(node_key.as_bytes());
    mac
}

/// What a registration proof's MAC covers, besides the shared secret.
#[derive(Debug, Clone, Copy)]
pub struct Transcript<'a> {
    /// The key being registered.
    pub node_key: &'a PublicKey,
    /// Its ticket.
    pub ticket: &'a Ticket,
    /// The relay's ephemeral public key from the challenge.
    pub ephemeral: &'a [u8; 32],
    /// The challenge's cookie.
    pub cookie: &'a [u8; COOKIE_LEN],
    /// The node's address as the relay saw it in the challenge.
    pub observed: &'a SocketAddr,
}

/// A Diffie-Hellman result that is all zeros: the other side sent a
/// low-order point, so the MAC key would be public.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("non-contributory Diffie-Hellman (low-order public key)")]
pub struct WeakKey;

impl Transcript<'_> {
    /// The node's side: the MAC under `X25519(node private, ephemeral)`.
    pub fn node_mac(&self, node_private: &StaticSecret) -> Result<[u8; MAC_LEN], WeakKey> {
        let shared = node_private.diffie_hellman(&X25519PublicKey::from(*self.ephemeral));
        if !shared.was_contributory() {
            return Err(WeakKey);
        }
        Ok(self.mac(shared.as_bytes()).finalize().into_bytes().into())
    }

    /// The relay's side: whether `mac` is the MAC under
    /// `X25519(ephemeral private, node key)` (constant time).
    pub fn relay_verifies(&self, ephemeral_private: &StaticSecret, mac: &[u8; MAC_LEN]) -> bool {
        let shared = ephemeral_private.diffie_hellman(&X25519PublicKey::from(*self.node_key));
        shared.was_contributory() && self.mac(shared.as_bytes()).verify_slice(mac).is_ok()
    }

    fn mac(&self, shared: &[u8; 32]) -> Blake2sMac128 {
        let key = keyed_hash(shared, &[b"warren-relay-proof-key-v1"]);
        let mut ticket = Vec::with_capacity(warren_wire::ticket::TICKET_LEN);
        self.ticket.encode(&mut ticket);
        let mut addr = Vec::with_capacity(19);
        write_addr(self.observed, &mut addr);
        let mut mac = new_mac128(&key);
        mac.update(b"warren-relay-proof-v1");
        mac.update(&[VERSION, FrameType::RegisterProof.byte()]);
        mac.update(self.node_key.as_bytes());
        mac.update(&ticket);
        mac.update(self.ephemeral);
        mac.update(self.cookie);
        mac.update(&addr);
        mac
    }
}

fn new_mac128(key: &[u8; 32]) -> Blake2sMac128 {
    // A 32-byte key is always within BLAKE2s's key length.
    <Blake2sMac128 as KeyInit>::new(key.into())
}

/// `BLAKE2s-MAC-256(key, parts...)`.
fn keyed_hash(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Blake2sMac256 as KeyInit>::new(key.into());
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_wire::PrivateKey;

    fn node() -> (StaticSecret, PublicKey) {
        let private = PrivateKey::from_bytes([5u8; 32]);
        let public = private.public_key();
        (StaticSecret::from(&private), public)
    }

    #[test]
    fn tickets_verify_only_with_their_control_key_and_unchanged() {
        let signer = SigningKey::from_seed(&[1; 32]).unwrap();
        let other = SigningKey::from_seed(&[2; 32]).unwrap();
        let ticket = signer.mint(PublicKey::from_bytes([9; 32]), 1_000);
        assert_eq!(signer.control_key().verify(&ticket), Ok(()));
        assert_eq!(other.control_key().verify(&ticket), Err(BadSignature));
        let mut later = ticket;
        later.expires += 1;
        assert_eq!(signer.control_key().verify(&later), Err(BadSignature));
        let mut stolen = ticket;
        stolen.node_key = PublicKey::from_bytes([8; 32]);
        assert_eq!(signer.control_key().verify(&stolen), Err(BadSignature));
    }

    #[test]
    fn epoch_keys_are_deterministic_and_differ_by_epoch_and_seed() {
        let a = EpochKeys::derive(&[1; 32], 7);
        assert_eq!(
            a.ephemeral_public,
            EpochKeys::derive(&[1; 32], 7).ephemeral_public
        );
        assert_ne!(
            a.ephemeral_public,
            EpochKeys::derive(&[1; 32], 8).ephemeral_public
        );
        assert_ne!(
            a.ephemeral_public,
            EpochKeys::derive(&[2; 32], 7).ephemeral_public
        );
        assert_ne!(a.cookie_key, EpochKeys::derive(&[1; 32], 8).cookie_key);
    }

    #[test]
    fn cookies_bind_address_key_and_epoch() {
        let keys = EpochKeys::derive(&[1; 32], 0);
        let addr: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let key = PublicKey::from_bytes([3; 32]);
        let cookie = keys.cookie(&addr, &key);
        assert!(keys.cookie_is_valid(&cookie, &addr, &key));
        assert!(!keys.cookie_is_valid(&cookie, &"203.0.113.9:4001".parse().unwrap(), &key));
        assert!(!keys.cookie_is_valid(&cookie, &addr, &PublicKey::from_bytes([4; 32])));
        assert!(!EpochKeys::derive(&[1; 32], 1).cookie_is_valid(&cookie, &addr, &key));
    }

    #[test]
    fn the_relay_verifies_the_nodes_mac_and_nothing_else() {
        let keys = EpochKeys::derive(&[1; 32], 0);
        let (private, node_key) = node();
        let ticket = SigningKey::from_seed(&[1; 32]).unwrap().mint(node_key, 10);
        let observed: SocketAddr = "198.51.100.2:51820".parse().unwrap();
        let cookie = keys.cookie(&observed, &node_key);
        let transcript = Transcript {
            node_key: &node_key,
            ticket: &ticket,
            ephemeral: &keys.ephemeral_public,
            cookie: &cookie,
            observed: &observed,
        };
        let mac = transcript.node_mac(&private).unwrap();
        assert!(transcript.relay_verifies(&keys.ephemeral, &mac));
        // Another source address, or another private key, gives another MAC.
        let elsewhere: SocketAddr = "198.51.100.3:51820".parse().unwrap();
        let moved = Transcript {
            observed: &elsewhere,
            ..transcript
        };
        assert!(!moved.relay_verifies(&keys.ephemeral, &mac));
        let impostor = transcript.node_mac(&StaticSecret::from([6u8; 32])).unwrap();
        assert!(!transcript.relay_verifies(&keys.ephemeral, &impostor));
        // A low-order "ephemeral key" is refused on the node side.
        let zero = [0u8; 32];
        let weak = Transcript {
            ephemeral: &zero,
            ..transcript
        };
        assert_eq!(weak.node_mac(&private), Err(WeakKey));
    }
}
