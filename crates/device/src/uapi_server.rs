//! The UAPI socket: `/var/run/wireguard/<iface>.sock`, the same place and
//! protocol as wireguard-go and boringtun-cli, so `wg show` and `wg set` work.
//!
//! Each connection gets a task that frames requests and forwards them to the
//! device loop, which owns all state; the task writes back the answer.
//! Besides `get=1` and `set=1`, warren answers `stats=1` (drop counters by
//! reason, see [`crate::stats`]); `wg` never sends it.

use crate::stats::STATS_REQUEST;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use warren_uapi::{errno, Request};

/// Where UAPI sockets live, shared with wireguard-go and boringtun-cli.
pub const DEFAULT_UAPI_DIR: &str = "/var/run/wireguard";

/// What a connection asks of the device loop.
#[derive(Debug)]
pub enum UapiRequest {
    /// A standard UAPI request.
    Uapi(Request),
    /// warren's `stats=1`: drop counters.
    Stats,
}

/// A request plus the channel its textual answer goes back on.
#[derive(Debug)]
pub struct UapiCommand {
    /// The parsed request.
    pub request: UapiRequest,
    /// Where the answer (ending in `errno=N\n\n`) is sent.
    pub reply: oneshot::Sender<String>,
}

/// Errors setting up the UAPI socket.
#[derive(Debug, thiserror::Error)]
pub enum UapiSocketError {
    /// Another live process answers on the socket path.
    #[error("{0} is in use by another running WireGuard implementation")]
    InUse(PathBuf),
    /// The socket could not be created.
    #[error("creating UAPI socket {path}: {source}")]
    Create {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// The listening UAPI socket; the file is removed when this is dropped.
pub struct UapiListener {
    listener: UnixListener,
    path: PathBuf,
}

impl UapiListener {
    /// Listens on `<dir>/<iface>.sock`, replacing a stale socket left by a
    /// process that died, but refusing to steal one that is still answered.
    pub fn bind(dir: &Path, iface: &str) -> Result<UapiListener, UapiSocketError> {
        let path = dir.join(format!("{iface}.sock"));
        let create = |source| UapiSocketError::Create {
            path: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(create)?;
        if let Ok(metadata) = std::fs::symlink_metadata(&path) {
            if metadata.file_type().is_socket()
                && std::os::unix::net::UnixStream::connect(&path).is_ok()
            {
                return Err(UapiSocketError::InUse(path));
            }
            std::fs::remove_file(&path).map_err(create)?;
        }
        // The socket is made in a directory only this process can enter,
        // given its final mode there, and only then moved into place: no
        // moment when another user could connect to it (and, through it,
        // read the private key).
        let private = dir.join(format!(".{iface}.sock.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&private);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&private)
            .map_err(create)?;
        let staged = private.join("sock");
        let bound = UnixListener::bind(&staged)
            .and_then(|listener| {
                std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
                std::fs::rename(&staged, &path)?;
                Ok(listener)
            })
            .map_err(create);
        let _ = std::fs::remove_dir_all(&private);
        Ok(UapiListener {
            listener: bound?,
            path,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next client.
    pub async fn accept(&self) -> io::Result<UnixStream> {
        Ok(self.listener.accept().await?.0)
    }
}

impl Drop for UapiListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How long a client may stay silent before its connection is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one client connection until it closes or idles out: frames each
/// request, forwards it to the device loop and writes the answer back. The
/// permit (one of the device's client slots) is released on return.
pub async fn serve_connection(
    mut stream: UnixStream,
    commands: mpsc::Sender<UapiCommand>,
    _slot: OwnedSemaphorePermit,
) {
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(len) = next_request_len(&buffer) {
            let answer = answer(&buffer[..len], &commands).await;
            buffer.drain(..len);
            if stream.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
        }
        if buffer.len() > warren_uapi::MAX_REQUEST_LEN {
            let _ = stream
                .write_all(warren_uapi::format_errno(errno::MESSAGE_TOO_LONG).as_bytes())
                .await;
            return;
        }
        match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return,
            Ok(Ok(read)) => buffer.extend_from_slice(&chunk[..read]),
        }
    }
}

fn next_request_len(buffer: &[u8]) -> Option<usize> {
    if buffer.starts_with(STATS_REQUEST) {
        return Some(STATS_REQUEST.len());
    }
    warren_uapi::request_len(buffer)
}

async fn answer(raw: &[u8], commands: &mpsc::Sender<UapiCommand>) -> String {
    let request = if raw == STATS_REQUEST {
        UapiRequest::Stats
    } else {
        match warren_uapi::parse_request(raw) {
            Ok(request) => UapiRequest::Uapi(request),
            Err(error) => {
                tracing::debug!(%error, "malformed UAPI request");
                return warren_uapi::format_errno(error.errno());
            }
        }
    };
    let (reply, answer) = oneshot::channel();
    if commands.send(UapiCommand { request, reply }).await.is_err() {
        return warren_uapi::format_errno(errno::IO_ERROR);
    }
    answer
        .await
        .unwrap_or_else(|_| warren_uapi::format_errno(errno::IO_ERROR))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[tokio::test]
    async fn the_socket_appears_private_and_connectable_and_nothing_is_left_beside_it() {
        let base = std::env::temp_dir().join(format!("warren-uapi-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("wireguard");
        let listener = UapiListener::bind(&dir, "wt0").unwrap();
        let mode = |path: &Path| std::fs::metadata(path).unwrap().mode() & 0o777;
        assert_eq!(
            mode(&dir) & 0o022,
            0,
            "only the owner writes in the directory"
        );
        assert_eq!(mode(listener.path()), 0o600);
        let entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries, ["wt0.sock"]);
        let client = UnixStream::connect(listener.path());
        let (accepted, connected) = tokio::join!(listener.accept(), client);
        assert!(accepted.is_ok() && connected.is_ok());
        drop(listener);
        let _ = std::fs::remove_dir_all(&base);
    }
}
