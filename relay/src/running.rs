//! A relay on a thread of its own ([`warren_os::thread`]): how the control
//! plane runs its embedded relay, so that its own work (QUIC handshakes,
//! the admin API) never delays forwarding.

use crate::server::{Revoker, Server, ServerError, ServerOptions};
use std::net::SocketAddr;
use tokio::sync::oneshot;
use warren_os::thread::Dedicated;

/// A relay serving on its own thread.
#[derive(Debug)]
pub struct RunningRelay {
    addr: SocketAddr,
    revoker: Revoker,
    stop: oneshot::Sender<()>,
    done: Dedicated<()>,
}

impl RunningRelay {
    /// Binds the relay described by `options` on a new thread and starts
    /// serving; returns once it listens (or why it could not).
    pub async fn start(options: ServerOptions) -> Result<RunningRelay, ServerError> {
        let (bound, listening) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let done = warren_os::thread::spawn("warren-relay", move || async move {
            let server = match Server::bind(options).await {
                Ok(server) => server,
                Err(error) => {
                    let _ = bound.send(Err(error));
                    return;
                }
            };
            let addr = match server.local_addr() {
                Ok(addr) => addr,
                Err(source) => {
                    let _ = bound.send(Err(ServerError::Thread(source)));
                    return;
                }
            };
            let _ = bound.send(Ok((addr, server.revoker())));
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        })
        .map_err(ServerError::Thread)?;
        let (addr, revoker) = listening
            .await
            .map_err(|_| ServerError::Thread(std::io::Error::other("the relay's thread died")))??;
        Ok(RunningRelay {
            addr,
            revoker,
            stop,
            done,
        })
    }

    /// The UDP address nodes reach the relay at.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle that revokes keys while the relay runs.
    pub fn revoker(&self) -> Revoker {
        self.revoker.clone()
    }

    /// Stops the relay and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.done.join().await;
    }
}
