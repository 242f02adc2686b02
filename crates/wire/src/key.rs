//! The node identity carried in frames and tickets.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;

/// A node's static X25519 public key: its WireGuard identity, and the
/// address the relay forwards by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey(pub [u8; 32]);

/// A key string that is not 32 bytes of base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed key: expected 32 bytes as base64 (44 characters)")]
pub struct KeyParseError;

impl NodeKey {
    /// The raw key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The base64 form `wg(8)` prints.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses the base64 form (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, KeyParseError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyParseError)?;
        bytes.try_into().map(NodeKey).map_err(|_| KeyParseError)
    }
}

impl fmt::Display for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for NodeKey {
    /// Short form, enough to tell nodes apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = self.to_base64();
        write!(f, "NodeKey({}…)", full.get(..8).unwrap_or(&full))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_rejects_wrong_lengths() {
        let key = NodeKey([7u8; 32]);
        assert_eq!(NodeKey::from_base64(&key.to_base64()), Ok(key));
        assert_eq!(NodeKey::from_base64("AAAA"), Err(KeyParseError));
        assert_eq!(NodeKey::from_base64("not base64!"), Err(KeyParseError));
    }
}
