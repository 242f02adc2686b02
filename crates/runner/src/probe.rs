//! Health probes: one check of one replica, as its [`Probe`] says. HTTP and
//! TCP probes go to the replica's first published port on the node's mesh
//! address (where the proxy will reach it); a command runs in the
//! container.

use crate::runtime::Runtime;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warren_proto::Probe;

/// Whether one check of `probe` passes within `timeout`.
pub async fn check(
    probe: &Probe,
    target: Option<SocketAddr>,
    runtime: &Runtime,
    container: &str,
    timeout: Duration,
) -> bool {
    let attempt = async {
        match probe {
            Probe::Tcp => match target {
                Some(target) => TcpStream::connect(target).await.is_ok(),
                None => false,
            },
            Probe::Http { path } => match target {
                Some(target) => http_ok(target, path).await.unwrap_or(false),
                None => false,
            },
            Probe::Command { argv } => match runtime.exec(container, argv).await {
                Ok(session) => session.exit_code().await.is_ok_and(|code| code == 0),
                Err(_) => false,
            },
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or(false)
}

/// Whether `GET path` on `target` answers 2xx or 3xx.
async fn http_ok(target: SocketAddr, path: &str) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect(target).await?;
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: {target}\r\nUser-Agent: warren-health\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    // The status line is all that matters: `HTTP/1.x NNN ...`.
    let mut head = [0u8; 32];
    let mut filled = 0;
    while filled < 12 {
        let read = stream.read(&mut head[filled..]).await?;
        if read == 0 {
            break;
        }
        filled += read;
    }
    Ok(status_is_ok(head.get(..filled).unwrap_or_default()))
}

/// Whether an HTTP status line starts with a 2xx or 3xx code.
fn status_is_ok(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut parts = text.split_whitespace();
    let version_ok = parts.next().is_some_and(|v| v.starts_with("HTTP/1."));
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    version_ok && code.is_some_and(|code| (200..400).contains(&code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_2xx_and_3xx_status_lines_pass() {
        assert!(status_is_ok(b"HTTP/1.0 200 OK\r\n"));
        assert!(status_is_ok(b"HTTP/1.1 302 Found"));
        assert!(!status_is_ok(b"HTTP/1.1 404 Not Found"));
        assert!(!status_is_ok(b"HTTP/1.1 500"));
        assert!(!status_is_ok(b"SSH-2.0-OpenSSH"));
        assert!(!status_is_ok(b""));
    }
}
