//! The `warren` subcommands, one module each.

pub mod api;
pub mod cert;
pub mod device;
pub mod events;
mod fmt;
pub mod history;
pub mod join;
pub mod keys;
pub mod leave;
pub mod logs;
pub mod mesh;
pub mod nodes;
pub mod proxy;
pub mod relay;
pub mod routes;
pub mod serve;
pub mod services;
pub mod status;
mod table;
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

/// Runs a foreground command's `work` on a single-threaded tokio runtime
/// (one thread moves the bytes; the work is not CPU-parallel).
pub fn block_on<F: std::future::Future<Output = Result<()>>>(work: F) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(work)
}

/// Runs the foreground command `work` (given the shutdown signal) with
/// [`block_on`] until it returns.
pub fn until_signal<F, Fut, E>(work: F) -> Result<()>
where
    F: FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), E>>,
    E: Into<anyhow::Error>,
{
    block_on(async move {
        let shutdown = shutdown_signal()?;
        work(Box::pin(shutdown)).await.map_err(Into::into)
    })
}

/// A failure with an exit status of its own (`warren deploy --wait`: 5).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    /// The exit status.
    pub code: u8,
    /// The one line to print.
    pub message: String,
}

impl Exit {
    /// A failure that exits with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Exit {
        Exit {
            code,
            message: message.into(),
        }
    }

    /// An exit with `code` and nothing printed (`warren exec` passing on
    /// the remote command's status).
    pub fn silent(code: u8) -> Exit {
        Exit::new(code, String::new())
    }
}

/// Whether `error` is an exit with nothing to print ([`Exit::silent`]).
pub fn is_silent(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<Exit>()
        .is_some_and(|exit| exit.message.is_empty())
}

/// The exit status for `error`: its own, 4 for input the control plane or
/// the spec rules refused, 1 for anything else.
pub fn exit_status(error: &anyhow::Error) -> u8 {
    if let Some(exit) = error.downcast_ref::<Exit>() {
        return exit.code;
    }
    if error.downcast_ref::<warren_proto::SpecError>().is_some() {
        return 4;
    }
    match error.downcast_ref::<api::ApiRefused>() {
        Some(refused) if (400..500).contains(&refused.status) && refused.status != 401 => 4,
        _ => 1,
    }
}
