//! Frames between nodes and a relay.
//!
//! The relay shares each node's WireGuard UDP socket, so a warren frame must
//! never look like WireGuard: WireGuard datagrams start with a little-endian
//! `u32` message type 1–4 (`[1..=4, 0, 0, 0]`); every warren frame starts with
//! the magic byte `0xFE`. [`is_warren_frame`] tells the two apart.
//!
//! ```text
//! header (4 bytes, every frame)
//!   0  magic 0xFE
//!   1  version (1)
//!   2  frame type
//!   3  reserved, 0
//!
//! type  frame            direction     body after the header (sizes in bytes)
//! 0x01  RegisterRequest  node → relay  node key 32 | ticket 104                       = 140 total
//! 0x02  Challenge        relay → node  ephemeral 32 | cookie 16 | observed addr 7/19  = 59/71
//! 0x03  RegisterProof    node → relay  node key 32 | ticket 104 | ephemeral 32 |
//!                                      cookie 16 | mac 16                             = 204
//! 0x04  Registered       relay → node  observed addr 7/19 | session expiry u64        = 19/31
//! 0x05  Send             node → relay  destination key 32 | payload (≥ 1)             = 36 + payload
//! 0x06  Recv             relay → node  source key 32 | payload (≥ 1)                  = 36 + payload
//! 0x07  Ping             node → relay  txid u64 | 20 zero bytes                       = 32
//! 0x08  Pong             relay → node  txid u64 | observed addr 7/19                  = 19/31
//! 0x09  Error            relay → node  code u8                                        = 5
//!
//! observed addr: family u8 (4 or 6) | address 4 or 16 | port u16
//! ```
//! All integers are big-endian. A fixed-layout frame with bytes after its last
//! field is refused ([`DecodeError::TrailingBytes`]); `Send` and `Recv` carry
//! the rest of the datagram as their payload. `docs/protocol.md` has the same
//! tables with the registration flow and the crypto.

use crate::error::DecodeError;
use crate::key::PublicKey;
use crate::reader::Reader;
use crate::ticket::{Ticket, TICKET_LEN};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// First byte of every warren frame. WireGuard's first byte is 1–4.
pub const MAGIC: u8 = 0xFE;
/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
/// Length of the common header.
pub const HEADER_LEN: usize = 4;
/// Length of a `Send` or `Recv` frame without its payload.
pub const SEND_HEADER_LEN: usize = HEADER_LEN + 32;
/// Length of a cookie.
pub const COOKIE_LEN: usize = 16;
/// Length of a registration proof's MAC.
pub const MAC_LEN: usize = 16;
/// Zero bytes that pad a `Ping`, so that no `Pong` is larger than its `Ping`.
pub const PING_PADDING: usize = 20;
/// Length of a `Ping`.
pub const PING_LEN: usize = HEADER_LEN + 8 + PING_PADDING;
/// Length of a `RegisterRequest`.
pub const REGISTER_REQUEST_LEN: usize = HEADER_LEN + 32 + TICKET_LEN;
/// Length of a `RegisterProof`.
pub const REGISTER_PROOF_LEN: usize = REGISTER_REQUEST_LEN + 32 + COOKIE_LEN + MAC_LEN;
/// Length of an `Error`.
pub const ERROR_LEN: usize = HEADER_LEN + 1;

const FAMILY_V4: u8 = 4;
const FAMILY_V6: u8 = 6;

/// Whether `datagram` claims to be a warren frame (rather than WireGuard).
pub fn is_warren_frame(datagram: &[u8]) -> bool {
    datagram.first() == Some(&MAGIC)
}

/// The frame types of version 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameType {
    /// Node asks to register a key.
    RegisterRequest = 0x01,
    /// Relay answers with a stateless challenge.
    Challenge = 0x02,
    /// Node proves the key and the source address.
    RegisterProof = 0x03,
    /// Relay confirms the session.
    Registered = 0x04,
    /// Node sends a datagram to another node.
    Send = 0x05,
    /// Relay delivers a datagram from another node.
    Recv = 0x06,
    /// Node keepalive.
    Ping = 0x07,
    /// Relay keepalive answer.
    Pong = 0x08,
    /// Relay refuses something.
    Error = 0x09,
}

impl FrameType {
    /// The type for a type byte.
    pub fn from_byte(byte: u8) -> Result<Self, DecodeError> {
        Ok(match byte {
            0x01 => FrameType::RegisterRequest,
            0x02 => FrameType::Challenge,
            0x03 => FrameType::RegisterProof,
            0x04 => FrameType::Registered,
            0x05 => FrameType::Send,
            0x06 => FrameType::Recv,
            0x07 => FrameType::Ping,
            0x08 => FrameType::Pong,
            0x09 => FrameType::Error,
            other => return Err(DecodeError::UnknownType(other)),
        })
    }

    /// The type byte.
    pub fn byte(self) -> u8 {
        self as u8
    }
}

/// Why the relay refused a frame (the body of an `Error` frame). Codes this
/// build does not know decode as themselves, so a newer relay's codes pass.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u8);

impl ErrorCode {
    /// A `Send` or `Ping` from an address with no session: register (again).
    pub const NOT_REGISTERED: ErrorCode = ErrorCode(1);
    /// A `Send` to a key with no session on this relay.
    pub const UNKNOWN_DESTINATION: ErrorCode = ErrorCode(2);
    /// The ticket has expired: get a new one from the control plane.
    pub const TICKET_EXPIRED: ErrorCode = ErrorCode(3);
    /// The ticket's signature or key, or the proof's MAC, is wrong.
    pub const UNAUTHORIZED: ErrorCode = ErrorCode(4);
    /// The challenge is stale or not for this source address: start over.
    pub const STALE_CHALLENGE: ErrorCode = ErrorCode(5);
    /// The relay is at its registration cap.
    pub const CAPACITY: ErrorCode = ErrorCode(6);
    /// The frame's protocol version is not spoken by the relay.
    pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(7);
    /// The frame could not be parsed.
    pub const MALFORMED: ErrorCode = ErrorCode(8);

    /// A stable snake_case name (`unknown` for codes this build does not know).
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::NOT_REGISTERED => "not_registered",
            ErrorCode::UNKNOWN_DESTINATION => "unknown_destination",
            ErrorCode::TICKET_EXPIRED => "ticket_expired",
            ErrorCode::UNAUTHORIZED => "unauthorized",
            ErrorCode::STALE_CHALLENGE => "stale_challenge",
            ErrorCode::CAPACITY => "capacity",
            ErrorCode::UNSUPPORTED_VERSION => "unsupported_version",
            ErrorCode::MALFORMED => "malformed",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorCode({}: {})", self.0, self.name())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// `RegisterRequest`: a node asks to register `node_key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterRequest {
    /// The key to register.
    pub node_key: PublicKey,
    /// The control plane's ticket for that key.
    pub ticket: Ticket,
}

/// `Challenge`: the relay's stateless answer to a `RegisterRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// The relay's X25519 public key for the current epoch.
    pub ephemeral: [u8; 32],
    /// Binds the challenge to the epoch, the source address and the node key.
    pub cookie: [u8; COOKIE_LEN],
    /// The request's source address as the relay saw it.
    pub observed: SocketAddr,
}

/// `RegisterProof`: the node proves it holds the key's private half and
/// receives at the source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterProof {
    /// The key to register.
    pub node_key: PublicKey,
    /// The control plane's ticket for that key.
    pub ticket: Ticket,
    /// The challenge's ephemeral key, echoed.
    pub ephemeral: [u8; 32],
    /// The challenge's cookie, echoed.
    pub cookie: [u8; COOKIE_LEN],
    /// MAC over the transcript (see `warren_relay_proto::crypto`).
    pub mac: [u8; MAC_LEN],
}

/// `Registered`: the session exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// The node's reflexive address: where the relay sees it send from.
    pub observed: SocketAddr,
    /// When the session ends (the ticket's expiry), unix seconds.
    pub expires: u64,
}

/// One decoded frame. `Send` and `Recv` borrow their payload from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame<'a> {
    /// See [`RegisterRequest`].
    RegisterRequest(RegisterRequest),
    /// See [`Challenge`].
    Challenge(Challenge),
    /// See [`RegisterProof`].
    RegisterProof(RegisterProof),
    /// See [`Registered`].
    Registered(Registered),
    /// A datagram for the node with key `dst`.
    Send {
        /// Destination node.
        dst: PublicKey,
        /// The datagram (a WireGuard message), opaque to the relay.
        payload: &'a [u8],
    },
    /// A datagram from the node with key `src` (as its session proved).
    Recv {
        /// Source node.
        src: PublicKey,
        /// The datagram, as the source sent it.
        payload: &'a [u8],
    },
    /// Keepalive; also asks for the reflexive address.
    Ping {
        /// Echoed in the `Pong`.
        txid: u64,
    },
    /// Keepalive answer with the reflexive address.
    Pong {
        /// The `Ping`'s txid.
        txid: u64,
        /// Where the relay saw the `Ping` come from.
        observed: SocketAddr,
    },
    /// A refusal.
    Error {
        /// Why.
        code: ErrorCode,
    },
}

impl<'a> Frame<'a> {
    /// Decodes one frame: checks the magic, the version, the type, the
    /// reserved byte and every length.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let frame_type = read_header(&mut reader)?;
        let frame = match frame_type {
            FrameType::RegisterRequest => Frame::RegisterRequest(RegisterRequest {
                node_key: PublicKey::from_bytes(reader.array()?),
                ticket: Ticket::read(&mut reader)?,
            }),
            FrameType::Challenge => Frame::Challenge(Challenge {
                ephemeral: reader.array()?,
                cookie: reader.array()?,
                observed: read_addr(&mut reader)?,
            }),
            FrameType::RegisterProof => Frame::RegisterProof(RegisterProof {
                node_key: PublicKey::from_bytes(reader.array()?),
                ticket: Ticket::read(&mut reader)?,
                ephemeral: reader.array()?,
                cookie: reader.array()?,
                mac: reader.array()?,
            }),
            FrameType::Registered => Frame::Registered(Registered {
                observed: read_addr(&mut reader)?,
                expires: reader.u64()?,
            }),
            FrameType::Send => Frame::Send {
                dst: PublicKey::from_bytes(reader.array()?),
                payload: read_payload(&mut reader)?,
            },
            FrameType::Recv => Frame::Recv {
                src: PublicKey::from_bytes(reader.array()?),
                payload: read_payload(&mut reader)?,
            },
            FrameType::Ping => {
                let txid = reader.u64()?;
                if reader.take(PING_PADDING)?.iter().any(|byte| *byte != 0) {
                    return Err(DecodeError::InvalidField("ping padding"));
                }
                Frame::Ping { txid }
            }
            FrameType::Pong => Frame::Pong {
                txid: reader.u64()?,
                observed: read_addr(&mut reader)?,
            },
            FrameType::Error => Frame::Error {
                code: ErrorCode(reader.u8()?),
            },
        };
        reader.finish()?;
        Ok(frame)
    }

    /// The frame's type.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::RegisterRequest(_) => FrameType::RegisterRequest,
            Frame::Challenge(_) => FrameType::Challenge,
            Frame::RegisterProof(_) => FrameType::RegisterProof,
            Frame::Registered(_) => FrameType::Registered,
            Frame::Send { .. } => FrameType::Send,
            Frame::Recv { .. } => FrameType::Recv,
            Frame::Ping { .. } => FrameType::Ping,
            Frame::Pong { .. } => FrameType::Pong,
            Frame::Error { .. } => FrameType::Error,
        }
    }

    /// How many bytes [`Frame::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Frame::RegisterRequest(_) => 32 + TICKET_LEN,
                Frame::Challenge(c) => 32 + COOKIE_LEN + addr_len(&c.observed),
                Frame::RegisterProof(_) => 32 + TICKET_LEN + 32 + COOKIE_LEN + MAC_LEN,
                Frame::Registered(r) => addr_len(&r.observed) + 8,
                Frame::Send { payload, .. } | Frame::Recv { payload, .. } => 32 + payload.len(),
                Frame::Ping { .. } => 8 + PING_PADDING,
                Frame::Pong { observed, .. } => 8 + addr_len(observed),
                Frame::Error { .. } => 1,
            }
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&[MAGIC, VERSION, self.frame_type().byte(), 0]);
        match self {
            Frame::RegisterRequest(r) => {
                out.extend_from_slice(r.node_key.as_bytes());
                r.ticket.encode(out);
            }
            Frame::Challenge(c) => {
                out.extend_from_slice(&c.ephemeral);
                out.extend_from_slice(&c.cookie);
                write_addr(&c.observed, out);
            }
            Frame::RegisterProof(p) => {
                out.extend_from_slice(p.node_key.as_bytes());
                p.ticket.encode(out);
                out.extend_from_slice(&p.ephemeral);
                out.extend_from_slice(&p.cookie);
                out.extend_from_slice(&p.mac);
            }
            Frame::Registered(r) => {
                write_addr(&r.observed, out);
                out.extend_from_slice(&r.expires.to_be_bytes());
            }
            Frame::Send { dst: key, payload } | Frame::Recv { src: key, payload } => {
                out.extend_from_slice(key.as_bytes());
                out.extend_from_slice(payload);
            }
            Frame::Ping { txid } => {
                out.extend_from_slice(&txid.to_be_bytes());
                out.extend_from_slice(&[0; PING_PADDING]);
            }
            Frame::Pong { txid, observed } => {
                out.extend_from_slice(&txid.to_be_bytes());
                write_addr(observed, out);
            }
            Frame::Error { code } => out.push(code.0),
        }
    }

    /// The encoded frame in a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out
    }
}

/// The `Send` header for `dst`: what a frame to `dst` starts with, so a
/// caller that keeps [`SEND_HEADER_LEN`] bytes of headroom in front of its
/// payload frames it without copying the payload.
pub fn send_header(dst: &PublicKey) -> [u8; SEND_HEADER_LEN] {
    key_header(FrameType::Send, dst)
}

/// Writes [`send_header`] into the first [`SEND_HEADER_LEN`] bytes of
/// `buf`. `None` (and nothing written) if `buf` is shorter than that.
pub fn write_send_header(buf: &mut [u8], dst: &PublicKey) -> Option<()> {
    *buf.first_chunk_mut()? = send_header(dst);
    Some(())
}

/// Rewrites a decoded `Send` frame in place into the `Recv` the destination
/// gets: same length, the type byte changed and the destination key replaced
/// by the source's. `None` if `frame` is shorter than a `Send` header.
pub fn send_to_recv_in_place(frame: &mut [u8], src: &PublicKey) -> Option<()> {
    *frame.first_chunk_mut()? = key_header(FrameType::Recv, src);
    Some(())
}

fn key_header(frame_type: FrameType, key: &PublicKey) -> [u8; SEND_HEADER_LEN] {
    let mut header = [0u8; SEND_HEADER_LEN];
    let (fixed, key_bytes) = header.split_at_mut(HEADER_LEN);
    fixed.copy_from_slice(&[MAGIC, VERSION, frame_type.byte(), 0]);
    key_bytes.copy_from_slice(key.as_bytes());
    header
}

fn read_header(reader: &mut Reader<'_>) -> Result<FrameType, DecodeError> {
    if reader.u8().map_err(|_| DecodeError::NotWarren)? != MAGIC {
        return Err(DecodeError::NotWarren);
    }
    let version = reader.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let frame_type = FrameType::from_byte(reader.u8()?)?;
    if reader.u8()? != 0 {
        return Err(DecodeError::InvalidField("reserved header byte"));
    }
    Ok(frame_type)
}

fn read_payload<'a>(reader: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    match reader.rest() {
        [] => Err(DecodeError::InvalidField("empty payload")),
        payload => Ok(payload),
    }
}

/// Length of the `observed addr` encoding of `addr`.
pub(crate) fn addr_len(addr: &SocketAddr) -> usize {
    match addr {
        SocketAddr::V4(_) => 1 + 4 + 2,
        SocketAddr::V6(_) => 1 + 16 + 2,
    }
}

/// Appends the `observed addr` encoding of `addr` (family, address, port):
/// the form cookies and proofs are computed over.
pub fn write_addr(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(FAMILY_V4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(FAMILY_V6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

pub(crate) fn read_addr(reader: &mut Reader<'_>) -> Result<SocketAddr, DecodeError> {
    let ip = match reader.u8()? {
        FAMILY_V4 => IpAddr::V4(Ipv4Addr::from(reader.array::<4>()?)),
        FAMILY_V6 => IpAddr::V6(Ipv6Addr::from(reader.array::<16>()?)),
        _ => return Err(DecodeError::InvalidField("address family")),
    };
    Ok(SocketAddr::new(ip, reader.u16()?))
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
