//! The `warren` subcommands, one module each.

pub mod api;
pub mod device;
pub mod keys;
pub mod relay;
pub mod serve;
pub mod token;

use anyhow::{Context, Result};

/// Completes on the first SIGINT or SIGTERM: how a foreground command
/// (`warren device up`, `warren relay`) learns to stop and clean up.
pub fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
