//! Join tokens: everything a new worker needs to reach the control plane
//! and be admitted, in one string to paste into `warren join --token`.
//!
//! ```text
//! warren-join-1:<base64url, no padding, of:>
//! offset size field
//!      0    1 version (1)
//!      1    8 token id (names the token in `warren token list|revoke`)
//!      9   32 secret (the control plane stores only its SHA-256)
//!     41   32 SHA-256 of the control plane's TLS certificate (pinned)
//!     73    1 number of control addresses, 1..=8
//!     74    … addresses: family (4 or 6), address (4 or 16 bytes), port (u16 BE)
//! ```
//!
//! Holding a token is the permission to join: treat it as a password until
//! it expires or is used up. This module is only the layout; issuing and
//! checking tokens is the control plane's business.

use crate::error::DecodeError;
use crate::frame::{read_addr, write_addr};
use crate::reader::Reader;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// What every join token starts with (the version is part of it).
pub const JOIN_TOKEN_PREFIX: &str = "warren-join-1:";

/// The layout version inside the token.
const VERSION: u8 = 1;

/// Most control-plane addresses one token carries.
pub const MAX_CONTROL_ADDRS: usize = 8;

/// A decoded join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// The token's public identifier.
    pub id: [u8; 8],
    /// The secret proving the holder was given the token.
    pub secret: [u8; 32],
    /// SHA-256 of the control plane's certificate (DER), which the agent pins.
    pub cert_sha256: [u8; 32],
    /// Where the control plane's QUIC endpoint listens, tried in order.
    pub control: Vec<SocketAddr>,
}

/// Text that is not a join token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinTokenError {
    /// It does not start with [`JOIN_TOKEN_PREFIX`]: not a token, or one
    /// from a newer warren.
    #[error("not a warren join token (it should start with {JOIN_TOKEN_PREFIX})")]
    Prefix,
    /// The part after the prefix is not base64url.
    #[error("malformed join token: not base64url after the prefix")]
    Base64,
    /// The bytes do not decode.
    #[error("malformed join token: {0}")]
    Layout(DecodeError),
}

impl JoinToken {
    /// The token id as text (16 hex digits), as `warren token list` shows it.
    pub fn id_hex(&self) -> String {
        hex::encode(self.id)
    }

    /// The bytes inside the token.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(74 + 19 * self.control.len());
        out.push(VERSION);
        out.extend_from_slice(&self.id);
        out.extend_from_slice(&self.secret);
        out.extend_from_slice(&self.cert_sha256);
        let control = &self.control[..self.control.len().min(MAX_CONTROL_ADDRS)];
        out.push(control.len() as u8);
        for addr in control {
            write_addr(addr, &mut out);
        }
        out
    }

    /// Decodes the bytes inside a token.
    pub fn from_bytes(bytes: &[u8]) -> Result<JoinToken, DecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8()?;
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
        let id = reader.array::<8>()?;
        let secret = reader.array::<32>()?;
        let cert_sha256 = reader.array::<32>()?;
        let count = usize::from(reader.u8()?);
        if count == 0 || count > MAX_CONTROL_ADDRS {
            return Err(DecodeError::InvalidField("control address count"));
        }
        let control = (0..count)
            .map(|_| read_addr(&mut reader))
            .collect::<Result<Vec<_>, _>>()?;
        reader.finish()?;
        Ok(JoinToken {
            id,
            secret,
            cert_sha256,
            control,
        })
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{JOIN_TOKEN_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.to_bytes())
        )
    }
}

/// Shows the id and addresses, never the secret.
impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("id", &self.id_hex())
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl FromStr for JoinToken {
    type Err = JoinTokenError;

    fn from_str(text: &str) -> Result<JoinToken, JoinTokenError> {
        let body = text
            .trim()
            .strip_prefix(JOIN_TOKEN_PREFIX)
            .ok_or(JoinTokenError::Prefix)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| JoinTokenError::Base64)?;
        JoinToken::from_bytes(&bytes).map_err(JoinTokenError::Layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        ]
    }

    proptest! {
        #[test]
        fn tokens_round_trip_through_text(
            id in any::<[u8; 8]>(),
            secret in any::<[u8; 32]>(),
            cert_sha256 in any::<[u8; 32]>(),
            control in proptest::collection::vec(addr(), 1..=MAX_CONTROL_ADDRS),
        ) {
            let token = JoinToken { id, secret, cert_sha256, control };
            let text = token.to_string();
            prop_assert!(text.starts_with(JOIN_TOKEN_PREFIX));
            prop_assert_eq!(text.parse::<JoinToken>(), Ok(token));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = JoinToken::from_bytes(&bytes);
        }
    }

    #[test]
    fn malformed_tokens_are_refused_with_what_is_wrong() {
        let token = JoinToken {
            id: [1; 8],
            secret: [2; 32],
            cert_sha256: [3; 32],
            control: vec!["203.0.113.1:7443".parse().unwrap()],
        };
        let text = token.to_string();
        assert_eq!("hello".parse::<JoinToken>(), Err(JoinTokenError::Prefix));
        assert_eq!(
            format!("{JOIN_TOKEN_PREFIX}!!").parse::<JoinToken>(),
            Err(JoinTokenError::Base64)
        );
        let truncated = &text[..text.len() - 4];
        assert!(matches!(
            truncated.parse::<JoinToken>(),
            Err(JoinTokenError::Layout(_))
        ));
        let mut bytes = token.to_bytes();
        bytes[0] = 2;
        assert_eq!(
            JoinToken::from_bytes(&bytes),
            Err(DecodeError::UnsupportedVersion(2))
        );
        let mut none = token.to_bytes();
        none.truncate(73);
        none.push(0);
        assert_eq!(
            JoinToken::from_bytes(&none),
            Err(DecodeError::InvalidField("control address count"))
        );
        assert!(
            !format!("{token:?}").contains("0202"),
            "Debug hides the secret"
        );
        assert_eq!(format!(" {text}\n").parse::<JoinToken>(), Ok(token));
    }
}
