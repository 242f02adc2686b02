//! The body of a response the proxy sends: a replica's, streamed frame by
//! frame as it arrives, or a page of the proxy's own.

use super::upstream::Lease;
use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// A response body to a client.
#[derive(Debug)]
pub enum ProxyBody {
    /// A replica's response; its lease ends with it, and its connection
    /// goes back to the pool when it was read to the end.
    Upstream {
        /// The replica's body.
        body: Incoming,
        /// The hold on the replica.
        lease: Lease,
    },
    /// The proxy's own bytes (an error page, a redirect); `None` once sent.
    Own(Option<Bytes>),
}

impl ProxyBody {
    /// A body of `bytes`.
    pub fn own(bytes: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Own(Some(bytes.into()))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Upstream { body, lease } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                // The server stops polling once the body says it has ended
                // (a Content-Length body, after its last byte), so the end
                // is seen here too, not only as `None`.
                if matches!(polled, Poll::Ready(None)) || body.is_end_stream() {
                    lease.finish();
                }
                polled
            }
            ProxyBody::Own(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Own(bytes) => bytes.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Own(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            ProxyBody::Own(None) => SizeHint::with_exact(0),
        }
    }
}
