//! Public-key newtype that identifies a peer everywhere in warren.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;

/// A peer's static X25519 public key: the identity WireGuard authenticates.
///
/// Displayed in the base64 form `wg(8)` prints, so logs and CLI output can be
/// compared with the standard tools.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub [u8; 32]);

/// A key string that is not 32 bytes of base64 or hex.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed key: expected 32 bytes as base64 (44 characters) or hex (64 characters)")]
pub struct KeyParseError;

impl PeerKey {
    /// The public key of the X25519 private key `private`.
    pub fn of_private(private: [u8; 32]) -> PeerKey {
        PeerKey::from(boringtun::x25519::PublicKey::from(
            &boringtun::x25519::StaticSecret::from(private),
        ))
    }

    /// The key as raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key in the base64 form used by `wg(8)` and configuration files.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses a key from base64 (as `wg genkey`/`wg pubkey` print it).
    pub fn from_base64(text: &str) -> Result<Self, KeyParseError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyParseError)?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| KeyParseError)?;
        Ok(PeerKey(array))
    }
}

impl From<boringtun::x25519::PublicKey> for PeerKey {
    fn from(key: boringtun::x25519::PublicKey) -> Self {
        PeerKey(key.to_bytes())
    }
}

impl From<PeerKey> for boringtun::x25519::PublicKey {
    fn from(key: PeerKey) -> Self {
        boringtun::x25519::PublicKey::from(key.0)
    }
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PeerKey {
    /// Short form, enough to tell peers apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = self.to_base64();
        write!(f, "PeerKey({}…)", &full[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_rejects_wrong_lengths() {
        let key = PeerKey([7u8; 32]);
        assert_eq!(PeerKey::from_base64(&key.to_base64()), Ok(key));
        assert_eq!(PeerKey::from_base64("AAAA"), Err(KeyParseError));
        assert_eq!(PeerKey::from_base64("not base64!"), Err(KeyParseError));
    }
}
