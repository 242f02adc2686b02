//! Why bytes could not be decoded.

/// A received frame that cannot be parsed. Every variant means the input is
/// malformed (or of a version this build does not speak); none is ever the
/// receiver's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The first byte is not warren's magic (`0xFE`): not a warren frame at
    /// all (a WireGuard datagram, or noise).
    #[error("not a warren frame (first byte is not 0xFE)")]
    NotWarren,
    /// A warren frame of a protocol version this build does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// A frame type this version does not define.
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    /// The frame ends before a field it must have.
    #[error("truncated frame")]
    Truncated,
    /// Bytes after the last field of a fixed-layout frame.
    #[error("{0} trailing bytes after the frame")]
    TrailingBytes(usize),
    /// A field holds a value the protocol does not allow.
    #[error("invalid {0}")]
    InvalidField(&'static str),
}
