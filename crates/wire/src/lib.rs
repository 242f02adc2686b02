//! warren's wire formats and the node identity: codecs, no I/O; the only
//! crypto is deriving a public key from a private one.
//!
//! - [`frame`]: the frames between nodes and a relay (registration,
//!   forwarding, keepalive, refusals), with their byte layouts;
//! - [`disco`]: the messages peers exchange through a relay to find a
//!   direct path (sealed and opened by `warren_mesh::disco`);
//! - [`ticket`]: the control plane's signed permission to register a key;
//! - [`join_token`]: what `warren join --token` takes (control addresses,
//!   the pinned certificate, the secret);
//! - [`key`]: [`PublicKey`], the one node identity, and [`PrivateKey`];
//! - [`Reader`]: the bounds-checked cursor every decoder reads through, so
//!   no input can make a decoder panic.
//!
//! Every decoder refuses what it cannot parse with a [`DecodeError`];
//! `docs/protocol.md` describes the protocol these frames carry.

#![forbid(unsafe_code)]

pub mod disco;
pub mod error;
pub mod frame;
pub mod join_token;
pub mod key;
pub mod reader;
pub mod ticket;

pub use error::DecodeError;
pub use frame::{
    is_warren_frame, send_header, send_to_recv_in_place, write_send_header, Challenge, ErrorCode,
    Frame, FrameType, RegisterProof, RegisterRequest, Registered,
};
pub use join_token::{JoinToken, JoinTokenError, JOIN_TOKEN_PREFIX};
pub use key::{KeyParseError, PrivateKey, PublicKey};
pub use reader::Reader;
pub use ticket::{Ticket, TicketParseError};
