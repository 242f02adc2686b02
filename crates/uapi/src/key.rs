//! The 32-byte key type shared by private, public and preshared keys.
//!
//! The UAPI protocol writes keys as 64 hex digits; wg(8) configuration files
//! write them as 44 characters of padded base64. [`Key`] converts both ways,
//! and to and from warren's own [`PublicKey`] and [`PrivateKey`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;
use warren_wire::{PrivateKey, PublicKey};

/// A WireGuard key: a Curve25519 private or public key, or a preshared key.
///
/// The same type carries secret and public material, so [`fmt::Debug`] prints
/// only the first five base64 characters (enough to tell public keys apart
/// in logs, far too little to recover a private key) and there is no
/// `Display`: printing a key in full takes an explicit [`Key::to_base64`] or
/// [`Key::to_hex`].
///
/// The all-zero key has a meaning in the protocol: "no key" (remove the
/// private key, or use no preshared key). See [`Key::ZERO`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Key(pub [u8; 32]);

/// A key string that is not 32 bytes in the expected encoding.
///
/// Carries no part of the rejected text, which may have been a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not exactly 64 hex digits.
    #[error("malformed key: expected 64 hex digits")]
    Hex,
    /// Not 44 characters of padded standard base64 encoding 32 bytes.
    #[error("malformed key: expected 44 characters of base64")]
    Base64,
}

impl Key {
    /// Length of a key in bytes.
    pub const LEN: usize = 32;

    /// The all-zero key, which UAPI and wg(8) use to mean "no key".
    pub const ZERO: Key = Key([0; 32]);

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether this is the all-zero "no key" value.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// The key as 64 lowercase hex digits, as UAPI writes it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (either case, as wireguard-go accepts).
    pub fn from_hex(text: &str) -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| KeyError::Hex)?;
        Ok(Key(bytes))
    }

    /// The key as padded standard base64, as `wg genkey` prints it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses 44 characters of padded standard base64.
    ///
    /// Non-canonical encodings (stray low bits in the last character) are
    /// rejected, so each key has exactly one text form.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        // 44 characters decode to at most 33 bytes; a bigger buffer is never
        // needed, and checking the length first keeps a huge input cheap.
        if text.len() != 44 {
            return Err(KeyError::Base64);
        }
        let mut bytes = [0u8; 33];
        let len = STANDARD
            .decode_slice(text, &mut bytes)
            .map_err(|_| KeyError::Base64)?;
        let key = bytes
            .get(..len)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or(KeyError::Base64)?;
        Ok(Key(key))
    }
}

impl From<[u8; 32]> for Key {
    fn from(bytes: [u8; 32]) -> Self {
        Key(bytes)
    }
}

impl From<PublicKey> for Key {
    fn from(key: PublicKey) -> Self {
        Key(*key.as_bytes())
    }
}

impl From<Key> for PublicKey {
    fn from(key: Key) -> Self {
        PublicKey::from_bytes(key.0)
    }
}

impl From<&PrivateKey> for Key {
    fn from(key: &PrivateKey) -> Self {
        Key(key.to_bytes())
    }
}

impl From<Key> for PrivateKey {
    fn from(key: Key) -> Self {
        PrivateKey::from_bytes(key.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_base64();
        let prefix = text.get(..5).unwrap_or_default();
        write!(f, "Key({prefix}…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A key pair made with `wg genkey | tee k | wg pubkey` for these tests.
    const B64: &str = "cOGO2eS9NHMRIvHvCOl0P8nbAlS8l0RyfQ1WZILmBXg=";
    const HEX: &str = "70e18ed9e4bd34731122f1ef08e9743fc9db0254bc9744727d0d566482e60578";

    #[test]
    fn hex_and_base64_agree() {
        let from_hex = Key::from_hex(HEX).expect("hex");
        let from_b64 = Key::from_base64(B64).expect("base64");
        assert_eq!(from_hex, from_b64);
        assert_eq!(from_hex.to_hex(), HEX);
        assert_eq!(from_hex.to_base64(), B64);
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let key = Key::from_hex(&HEX.to_uppercase()).expect("hex");
        assert_eq!(key.to_hex(), HEX);
    }

    #[test]
    fn malformed_keys_are_rejected() {
        for bad in [
            "",
            "00",
            &HEX[..63],
            &format!("{HEX}0"),
            &HEX.replace('7', "g"),
        ] {
            assert_eq!(Key::from_hex(bad), Err(KeyError::Hex), "{bad:?}");
        }
        let short = "cOGO2eS9NHMRIvHvCOl0P8nbAlS8l0RyfQ1WZILmBX=";
        let unpadded = "cOGO2eS9NHMRIvHvCOl0P8nbAlS8l0RyfQ1WZILmBXg";
        let non_canonical = "cOGO2eS9NHMRIvHvCOl0P8nbAlS8l0RyfQ1WZILmBXh=";
        let too_long = "cOGO2eS9NHMRIvHvCOl0P8nbAlS8l0RyfQ1WZILmBXgA";
        for bad in ["", short, unpadded, non_canonical, too_long, HEX] {
            assert_eq!(Key::from_base64(bad), Err(KeyError::Base64), "{bad:?}");
        }
    }

    #[test]
    fn debug_does_not_print_the_whole_key() {
        let key = Key::from_base64(B64).expect("base64");
        let debug = format!("{key:?}");
        assert_eq!(debug, "Key(cOGO2…)");
        assert!(!debug.contains(&B64[..10]));
    }

    #[test]
    fn zero_key() {
        assert!(Key::ZERO.is_zero());
        assert!(!Key::from_hex(HEX).expect("hex").is_zero());
        assert_eq!(Key::default(), Key::ZERO);
    }
}
