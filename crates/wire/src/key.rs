//! The node identity: one public-key type and its private half, used by
//! every layer (mesh peers, relay sessions, tickets, the agent–control
//! protocol, the CLI).
//!
//! A [`PublicKey`] is a node's static X25519 key: the identity WireGuard
//! authenticates, the address a relay forwards by and the key the control
//! plane admits. It prints, parses and serialises as the 44-character
//! base64 text `wg(8)` uses, so logs, JSON and the standard tools agree.
//! A [`PrivateKey`] is its secret half; it never prints its bytes.
//!
//! UAPI's hex form lives in `warren-uapi` (`Key`), which converts both ways.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;
use std::str::FromStr;

/// A node's static X25519 public key (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

/// A node's static X25519 private key. `Debug` shows no part of it and
/// there is no `Display`: writing it out takes [`PrivateKey::to_base64`].
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey([u8; 32]);

/// A key string that is not 32 bytes of base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed key: expected 32 bytes as base64 (44 characters)")]
pub struct KeyParseError;

fn decode_32(text: &str) -> Result<[u8; 32], KeyParseError> {
    let text = text.trim();
    // 44 characters of padded base64 are exactly 32 bytes; checking the
    // length first keeps a huge input cheap.
    if text.len() != 44 {
        return Err(KeyParseError);
    }
    let bytes = STANDARD.decode(text).map_err(|_| KeyParseError)?;
    bytes.try_into().map_err(|_| KeyParseError)
}

impl PublicKey {
    /// The key with these bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes)
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The base64 form `wg(8)` prints.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses the base64 form (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<PublicKey, KeyParseError> {
        decode_32(text).map(PublicKey)
    }

    /// Whether the key is a point of small order (the all-zero key among
    /// them): its X25519 shared secret with any private key is all zeros,
    /// which anyone can compute, so it authenticates nothing.
    pub fn is_low_order(&self) -> bool {
        // Clamping makes every scalar a multiple of the cofactor 8, so the
        // product is the identity (all zeros) exactly for small-order points.
        let probe = x25519_dalek::StaticSecret::from([0x55; 32]);
        !probe
            .diffie_hellman(&x25519_dalek::PublicKey::from(self.0))
            .was_contributory()
    }
}

impl PrivateKey {
    /// The key with these bytes (clamping happens where it is used).
    pub const fn from_bytes(bytes: [u8; 32]) -> PrivateKey {
        PrivateKey(bytes)
    }

    /// The secret bytes, for a configuration file, UAPI `get` or the
    /// WireGuard session.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::from(x25519_dalek::PublicKey::from(
            &x25519_dalek::StaticSecret::from(self),
        ))
    }

    /// The base64 form `wg genkey` prints.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses the base64 form (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<PrivateKey, KeyParseError> {
        decode_32(text).map(PrivateKey)
    }
}

impl From<[u8; 32]> for PublicKey {
    fn from(bytes: [u8; 32]) -> PublicKey {
        PublicKey(bytes)
    }
}

impl From<x25519_dalek::PublicKey> for PublicKey {
    fn from(key: x25519_dalek::PublicKey) -> PublicKey {
        PublicKey(key.to_bytes())
    }
}

impl From<PublicKey> for x25519_dalek::PublicKey {
    fn from(key: PublicKey) -> x25519_dalek::PublicKey {
        x25519_dalek::PublicKey::from(key.0)
    }
}

impl From<&PrivateKey> for x25519_dalek::StaticSecret {
    fn from(key: &PrivateKey) -> x25519_dalek::StaticSecret {
        x25519_dalek::StaticSecret::from(key.0)
    }
}

impl FromStr for PublicKey {
    type Err = KeyParseError;

    fn from_str(text: &str) -> Result<PublicKey, KeyParseError> {
        PublicKey::from_base64(text)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    /// Short form, enough to tell nodes apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = self.to_base64();
        write!(f, "PublicKey({}…)", full.get(..8).unwrap_or(&full))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(…)")
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        PublicKey::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_rejects_wrong_lengths() {
        let key = PublicKey([7u8; 32]);
        assert_eq!(PublicKey::from_base64(&key.to_base64()), Ok(key));
        assert_eq!(key.to_string().parse::<PublicKey>(), Ok(key));
        assert_eq!(PublicKey::from_base64("AAAA"), Err(KeyParseError));
        assert_eq!(PublicKey::from_base64("not base64!"), Err(KeyParseError));
        let private = PrivateKey([9u8; 32]);
        assert_eq!(PrivateKey::from_base64(&private.to_base64()), Ok(private));
    }

    #[test]
    fn the_public_key_is_the_one_wg_derives() {
        // `echo AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE= | wg pubkey`
        let private =
            PrivateKey::from_base64("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
        assert_eq!(
            private.public_key().to_base64(),
            "pOCSkrZRwni5dyxWn1+puxPZBrRqtoyd+dwrRAn4ogk="
        );
    }

    #[test]
    fn debug_shows_a_prefix_of_the_public_key_and_nothing_of_the_private_one() {
        let private = PrivateKey([1u8; 32]);
        assert_eq!(format!("{private:?}"), "PrivateKey(…)");
        let public = private.public_key();
        assert_eq!(
            format!("{public:?}"),
            format!("PublicKey({}…)", &public.to_base64()[..8])
        );
    }

    #[test]
    fn low_order_keys_are_recognised() {
        assert!(PublicKey([0; 32]).is_low_order());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(PublicKey(one).is_low_order());
        assert!(!PrivateKey([1; 32]).public_key().is_low_order());
    }

    #[test]
    fn serde_uses_the_base64_text() {
        let key = PublicKey([7u8; 32]);
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(json, format!("\"{}\"", key.to_base64()));
        assert_eq!(serde_json::from_str::<PublicKey>(&json).unwrap(), key);
        assert!(serde_json::from_str::<PublicKey>("\"AAAA\"").is_err());
    }
}
