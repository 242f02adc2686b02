//! Relay tickets: the control plane's permission for one node key to
//! register with a relay until a deadline.
//!
//! ```text
//! offset size field
//!      0   32 node key (X25519 public key)
//!     32    8 expiry, unix seconds, big-endian
//!     40   64 Ed25519 signature by the control key over
//!             b"warren-relay-ticket-v1" || node key || expiry
//! ```
//!
//! This module is only the layout; signing and verifying live with the
//! relay (`warren_relay_proto::crypto`).

use crate::error::DecodeError;
use crate::key::PublicKey;
use crate::reader::Reader;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The domain-separation prefix of the signed message.
pub const TICKET_CONTEXT: &[u8; 22] = b"warren-relay-ticket-v1";

/// Length of an encoded ticket.
pub const TICKET_LEN: usize = 32 + 8 + 64;

/// Length of the message a ticket's signature covers.
pub const TICKET_SIGNED_LEN: usize = TICKET_CONTEXT.len() + 32 + 8;

/// A signed ticket, as carried in registration frames.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ticket {
    /// The node key the ticket is for.
    pub node_key: PublicKey,
    /// When it stops being valid, in seconds since the unix epoch.
    pub expires: u64,
    /// The control key's Ed25519 signature over [`Ticket::signed_message`].
    pub signature: [u8; 64],
}

/// Text that is not a base64 ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed ticket: expected {TICKET_LEN} bytes as base64")]
pub struct TicketParseError;

impl Ticket {
    /// The bytes the signature covers for `node_key` and `expires`.
    pub fn signed_message(node_key: &PublicKey, expires: u64) -> [u8; TICKET_SIGNED_LEN] {
        let mut message = [0u8; TICKET_SIGNED_LEN];
        let (context, rest) = message.split_at_mut(TICKET_CONTEXT.len());
        context.copy_from_slice(TICKET_CONTEXT);
        let (key, expiry) = rest.split_at_mut(32);
        key.copy_from_slice(node_key.as_bytes());
        expiry.copy_from_slice(&expires.to_be_bytes());
        message
    }

    /// The expiry as a wall-clock time.
    pub fn expiry_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.expires)
    }

    /// Appends the encoded ticket to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.node_key.as_bytes());
        out.extend_from_slice(&self.expires.to_be_bytes());
        out.extend_from_slice(&self.signature);
    }

    /// Reads a ticket.
    pub fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Ticket {
            node_key: PublicKey::from_bytes(reader.array()?),
            expires: reader.u64()?,
            signature: reader.array()?,
        })
    }

    /// Decodes exactly one ticket.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let ticket = Ticket::read(&mut reader)?;
        reader.finish()?;
        Ok(ticket)
    }

    /// The ticket as base64 (for files, flags and environment variables).
    pub fn to_base64(&self) -> String {
        let mut bytes = Vec::with_capacity(TICKET_LEN);
        self.encode(&mut bytes);
        STANDARD.encode(bytes)
    }

    /// Parses the base64 form (surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, TicketParseError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| TicketParseError)?;
        Ticket::decode(&bytes).map_err(|_| TicketParseError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Ticket {
        Ticket {
            node_key: PublicKey::from_bytes([3; 32]),
            expires: 0x0102_0304_0506_0708,
            signature: [9; 64],
        }
    }

    #[test]
    fn layout_is_key_expiry_signature() {
        let mut bytes = Vec::new();
        ticket().encode(&mut bytes);
        assert_eq!(bytes.len(), TICKET_LEN);
        assert_eq!(bytes.get(..32), Some(&[3u8; 32][..]));
        assert_eq!(bytes.get(32..40), Some(&[1u8, 2, 3, 4, 5, 6, 7, 8][..]));
        assert_eq!(bytes.get(40..), Some(&[9u8; 64][..]));
        assert_eq!(Ticket::decode(&bytes), Ok(ticket()));
    }

    #[test]
    fn base64_round_trips_and_refuses_other_lengths() {
        assert_eq!(Ticket::from_base64(&ticket().to_base64()), Ok(ticket()));
        assert_eq!(Ticket::from_base64("AAAA"), Err(TicketParseError));
        let mut long = Vec::new();
        ticket().encode(&mut long);
        long.push(0);
        assert_eq!(Ticket::decode(&long), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn signed_message_is_context_key_expiry() {
        let message = Ticket::signed_message(&PublicKey::from_bytes([3; 32]), 5);
        assert_eq!(message.get(..22), Some(&b"warren-relay-ticket-v1"[..]));
        assert_eq!(message.get(22..54), Some(&[3u8; 32][..]));
        assert_eq!(message.get(54..), Some(&5u64.to_be_bytes()[..]));
    }
}
