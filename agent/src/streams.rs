//! The control plane's replica streams on the agent's connection (`warren
//! logs`, `warren exec`, image checks): each bidirectional stream it opens
//! beside the control stream is answered by the node's
//! [`warren_runner::streams::Streams`] on a task of its own.

use warren_runner::streams::Streams;

/// Accepts the control plane's streams on `connection` until it closes.
pub async fn serve(connection: quinn::Connection, streams: Streams) {
    loop {
        match connection.accept_bi().await {
            Ok((send, recv)) => {
                // Completes when the control plane stops the stream (a
                // followed log it no longer reads).
                let stopped = send.stopped();
                let stopped = async move {
                    let _ = stopped.await;
                };
                tokio::spawn(streams.clone().handle(send, recv, stopped));
            }
            Err(error) => {
                tracing::debug!(%error, "no more replica streams on this connection");
                return;
            }
        }
    }
}
