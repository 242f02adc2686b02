//! TCP traffic helpers: move known data both ways between two namespaces and
//! check every byte (e.g. through a WireGuard tunnel); ask a replica for its
//! page from a namespace.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::netns::Netns;

/// `len` bytes of a pattern that differs per `seed` and per position, so a
/// reordered, truncated or mixed-up stream is noticed.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

/// Where two byte strings first differ, for messages.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => format!("first difference at byte {i}"),
        None => format!("lengths {} and {}", a.len(), b.len()),
    }
}

/// Listens on `listen` inside `server_ns`, connects from `client_ns`, sends
/// `up` from client to server and then `down` back, and checks both arrive
/// intact. Every step is bounded by `timeout`.
pub fn exchange(
    server_ns: &Netns,
    listen: SocketAddr,
    client_ns: &Netns,
    up: &[u8],
    down: &[u8],
    timeout: Duration,
) -> Result<()> {
    let listener = server_ns
        .run_in(|| TcpListener::bind(listen))?
        .with_context(|| format!("listen on {listen} in {server_ns}"))?;
    std::thread::scope(|s| {
        let server = s.spawn(|| -> Result<()> {
            listener.set_nonblocking(false)?;
            let (mut conn, _) = accept_within(&listener, timeout)?;
            conn.set_read_timeout(Some(timeout))?;
            conn.set_write_timeout(Some(timeout))?;
            let mut got = vec![0u8; up.len()];
            conn.read_exact(&mut got)
                .with_context(|| format!("server on {listen}: read {} bytes", up.len()))?;
            if got != up {
                bail!(
                    "server on {listen} received corrupt data: {}",
                    first_difference(&got, up)
                );
            }
            conn.write_all(down).context("server: write")?;
            conn.shutdown(Shutdown::Write).context("server: shutdown")?;
            Ok(())
        });
        let client = (|| -> Result<()> {
            let mut conn = client_ns
                .run_in(|| TcpStream::connect_timeout(&listen, timeout))?
                .with_context(|| format!("connect to {listen} from {client_ns}"))?;
            conn.set_read_timeout(Some(timeout))?;
            conn.set_write_timeout(Some(timeout))?;
            conn.write_all(up).context("client: write")?;
            let mut got = Vec::with_capacity(down.len());
            conn.read_to_end(&mut got).context("client: read")?;
            if got != down {
                bail!(
                    "client received corrupt data from {listen}: {}",
                    first_difference(&got, down)
                );
            }
            Ok(())
        })();
        let server = server
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        client.and(server)
    })
}

/// `accept` that gives up after `timeout`.
fn accept_within(listener: &TcpListener, timeout: Duration) -> Result<(TcpStream, SocketAddr)> {
    listener.set_nonblocking(true)?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((c, a)) => {
                c.set_nonblocking(false)?;
                return Ok((c, a));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() >= deadline {
                    bail!("no connection within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e).context("accept"),
        }
    }
}

/// `GET /` on `addr` from inside `ns`: the body, or the error.
pub fn http_get(ns: &Netns, addr: SocketAddr) -> std::io::Result<String> {
    http_get_host(ns, addr, &addr.to_string(), "/")
}

/// `GET path` with `Host: host` from `ns` to `addr` (HTTP/1.0, so the
/// server closes): the whole answer, head and body.
pub fn http_get_host(
    ns: &Netns,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> std::io::Result<String> {
    http_get_host_within(ns, addr, host, path, Duration::from_secs(5))
}

/// [`http_get_host`], waiting up to `timeout` for the answer.
pub fn http_get_host_within(
    ns: &Netns,
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<String> {
    ns.run_in(|| -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(timeout))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    })
    .map_err(std::io::Error::other)?
}

/// A GET of `path` with `Host: host` from `ns` to `addr` (see
/// [`http_get_host_within`]) that must be answered 2xx: `Ok` with the whole
/// answer, else `Err` with the status line or the error (a request the
/// load loops of the tests and the benchmark count as failed).
pub fn http_get_ok(
    ns: &Netns,
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<String, String> {
    match http_get_host_within(ns, addr, host, path, timeout) {
        Ok(answer) if is_2xx(&answer) => Ok(answer),
        Ok(answer) => Err(answer
            .lines()
            .next()
            .filter(|line| !line.is_empty())
            .unwrap_or("an empty answer")
            .to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

/// Whether an HTTP/1.x answer's status line says 2xx.
fn is_2xx(answer: &str) -> bool {
    let mut words = answer.split_whitespace();
    words.next().is_some_and(|v| v.starts_with("HTTP/1."))
        && words
            .next()
            .is_some_and(|code| code.len() == 3 && code.starts_with('2'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_2xx_status_line_is_ok() {
        for ok in [
            "HTTP/1.1 200 OK\r\n\r\nv1",
            "HTTP/1.0 204 No Content\r\n\r\n",
        ] {
            assert!(is_2xx(ok), "{ok:?}");
        }
        for failed in [
            "HTTP/1.1 502 Bad Gateway\r\n\r\n",
            "HTTP/1.1 2000 Odd\r\n",
            "SSH-2.0 200\r\n",
            "",
        ] {
            assert!(!is_2xx(failed), "{failed:?}");
        }
    }
}
