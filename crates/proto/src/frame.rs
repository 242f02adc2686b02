//! Framing: each message is a 4-byte big-endian length, then that many
//! bytes of JSON.

use serde::{Deserialize, Serialize};

/// The largest frame either side accepts after the hello.
pub const MAX_FRAME: usize = 1 << 20;

/// The largest hello the control plane reads: a hello is a few hundred
/// bytes, and nothing is allocated for an unauthenticated peer beyond it.
pub const MAX_HELLO: usize = 16 * 1024;

/// A frame that cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Longer than the limit.
    #[error("a {len}-byte message is over the {limit}-byte limit")]
    TooLong {
        /// The announced or encoded length.
        len: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// Not the JSON of the expected message.
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

/// `message` as a frame: length, then JSON.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let json = serde_json::to_vec(message)?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|_| json.len() <= MAX_FRAME)
        .ok_or(FrameError::TooLong {
            len: json.len(),
            limit: MAX_FRAME,
        })?;
    let mut frame = Vec::with_capacity(4 + json.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&json);
    Ok(frame)
}

/// The length a frame header announces, refused over `limit`.
pub fn frame_len(header: [u8; 4], limit: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > limit {
        return Err(FrameError::TooLong { len, limit });
    }
    Ok(len)
}

/// Decodes a frame's body.
pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    Ok(serde_json::from_slice(body)?)
}
