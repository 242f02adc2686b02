//! Frames on a byte stream (a QUIC stream, later a TLS stream): the one
//! reader and writer both ends use.

use crate::frame::{self, FrameError};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// A frame that could not be read from or written to a stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The stream failed or ended.
    #[error("the connection: {0}")]
    Io(#[from] std::io::Error),
    /// The stream ended cleanly before a frame began.
    #[error("the connection ended")]
    Ended,
    /// The frame is too long or malformed.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads one frame of at most `limit` bytes and decodes it. Memory grows
/// with the bytes that actually arrive, not with the length announced.
pub async fn read_frame<T, R>(recv: &mut R, limit: usize) -> Result<T, StreamError>
where
    T: for<'de> Deserialize<'de>,
    R: AsyncRead + Unpin,
{
    let body = read_body(recv, limit).await?;
    Ok(frame::decode(&body)?)
}

/// Reads one frame's body (at most `limit` bytes) without decoding it.
pub async fn read_body<R: AsyncRead + Unpin>(
    recv: &mut R,
    limit: usize,
) -> Result<Vec<u8>, StreamError> {
    let mut header = [0u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        let read = recv.read(&mut header[filled..]).await?;
        if read == 0 {
            return Err(if filled == 0 {
                StreamError::Ended
            } else {
                std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()
            });
        }
        filled += read;
    }
    let len = frame::frame_len(header, limit)?;
    let mut body = Vec::new();
    recv.take(len as u64).read_to_end(&mut body).await?;
    if body.len() != len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    Ok(body)
}

/// Encodes `message` and writes it as one frame.
pub async fn write_frame<T, W>(send: &mut W, message: &T) -> Result<(), StreamError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let frame = frame::encode(message)?;
    send.write_all(&frame).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_cross_a_stream_and_truncations_are_errors() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_frame(&mut a, &vec![1u32, 2, 3]).await.unwrap();
        let read: Vec<u32> = read_frame(&mut b, 64).await.unwrap();
        assert_eq!(read, vec![1, 2, 3]);

        let frame = frame::encode(&"hello").unwrap();
        for cut in 1..frame.len() {
            let (mut a, mut b) = tokio::io::duplex(1 << 16);
            a.write_all(&frame[..cut]).await.unwrap();
            drop(a);
            let result = read_frame::<String, _>(&mut b, 64).await;
            assert!(
                matches!(result, Err(StreamError::Io(_))),
                "cut at {cut}: {result:?}"
            );
        }
        let (a, mut b) = tokio::io::duplex(64);
        drop(a);
        assert!(matches!(
            read_frame::<String, _>(&mut b, 64).await,
            Err(StreamError::Ended)
        ));
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_before_its_body_is_read() {
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&(1u32 << 30).to_be_bytes()).await.unwrap();
        assert!(matches!(
            read_frame::<String, _>(&mut b, 1024).await,
            Err(StreamError::Frame(FrameError::TooLong { len, limit: 1024 })) if len == 1 << 30
        ));
    }
}
