//! The two bearer values of the protocol: a join token's id, and the
//! 32-byte secrets (a token's secret, a node's credential).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A join token's id: 8 bytes, written as 16 hex digits (`warren token
/// list` shows it; it is not secret).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub [u8; 8]);

/// A 32-byte bearer secret, written as base64url without padding.
/// `Debug` shows none of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub [u8; 32]);

/// Text that is not a token id or a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BearerParseError {
    /// Not 16 hex digits.
    #[error("malformed token id: expected 16 hex digits")]
    TokenId,
    /// Not 32 bytes of base64url.
    #[error("malformed secret: expected 32 bytes of base64url")]
    Secret,
}

impl FromStr for TokenId {
    type Err = BearerParseError;

    fn from_str(text: &str) -> Result<TokenId, BearerParseError> {
        let mut id = [0u8; 8];
        hex::decode_to_slice(text, &mut id).map_err(|_| BearerParseError::TokenId)?;
        Ok(TokenId(id))
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenId({self})")
    }
}

impl Secret {
    /// The base64url text, for the one place it is written out.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl FromStr for Secret {
    type Err = BearerParseError;

    fn from_str(text: &str) -> Result<Secret, BearerParseError> {
        // 43 characters of unpadded base64url are exactly 32 bytes.
        if text.len() != 43 {
            return Err(BearerParseError::Secret);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| BearerParseError::Secret)?;
        bytes
            .try_into()
            .map(Secret)
            .map_err(|_| BearerParseError::Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

macro_rules! serde_as_text {
    ($type:ty, $to_text:expr) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&$to_text(self))
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<$type, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

serde_as_text!(TokenId, |id: &TokenId| id.to_string());
serde_as_text!(Secret, Secret::to_text);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_are_exactly_sixteen_hex_digits() {
        assert_eq!(
            "0102030405060708".parse(),
            Ok(TokenId([1, 2, 3, 4, 5, 6, 7, 8]))
        );
        for bad in [
            "01020304050607",
            "010203040506070g",
            "01020304050607080",
            "é102030405060708",
        ] {
            assert_eq!(
                bad.parse::<TokenId>(),
                Err(BearerParseError::TokenId),
                "{bad}"
            );
        }
    }

    #[test]
    fn secrets_round_trip_and_never_print() {
        let secret = Secret([7; 32]);
        assert_eq!(secret.to_text().parse(), Ok(secret.clone()));
        assert_eq!(format!("{secret:?}"), "Secret(…)");
        let json = serde_json::to_string(&secret).unwrap();
        assert_eq!(serde_json::from_str::<Secret>(&json).unwrap(), secret);
        assert!("AAAA".parse::<Secret>().is_err());
        assert!(serde_json::from_str::<Secret>("\"AAAA\"").is_err());
    }
}
