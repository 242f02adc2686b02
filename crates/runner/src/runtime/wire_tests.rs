//! What goes on the wire, against a fake daemon on a unix socket that
//! answers as Docker's version middleware does: an unversioned request at
//! its newest version, a versioned one only within `MinAPIVersion..=ApiVersion`.
//! This is how the runtime is checked against a modern daemon (Docker 29:
//! 1.52, minimum 1.44), which the lab cannot run.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;

use super::version::{versioned_path, ApiVersion};
use super::{Runtime, RuntimeError, VersionError};

/// A daemon offering `min..=max` that records each request line.
struct FakeDaemon {
    socket: PathBuf,
    requests: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!(
        "warren-wire-{tag}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    TempDir(dir)
}

/// The answer to `path` (`/v1.52/containers/json?…`) of a daemon offering
/// `min..=max`: status and JSON body.
fn answer(path: &str, min: &str, max: &str) -> (u16, String) {
    let rest = versioned_path(path, None);
    let asked = path
        .strip_prefix("/v")
        .and_then(|p| p.split_once('/'))
        .and_then(|(v, _)| v.parse::<ApiVersion>().ok());
    let (Ok(min_v), Ok(max_v)) = (min.parse::<ApiVersion>(), max.parse::<ApiVersion>()) else {
        return (500, r#"{"message":"bad fake"}"#.to_owned());
    };
    if let Some(v) = asked {
        if v < min_v {
            let message = format!(
                "client version {v} is too old. Minimum supported API version is {min}, please \
                 upgrade your client to a newer version"
            );
            return (400, serde_json::json!({ "message": message }).to_string());
        }
        if v > max_v {
            let message =
                format!("client version {v} is too new. Maximum supported API version is {max}");
            return (400, serde_json::json!({ "message": message }).to_string());
        }
    }
    let route = rest.split('?').next().unwrap_or_default();
    match route {
        "/version" => (
            200,
            serde_json::json!({
                "Version": "29.0.4", "ApiVersion": max, "MinAPIVersion": min,
                "Os": "linux", "Arch": "arm64",
            })
            .to_string(),
        ),
        "/containers/json" => (200, "[]".to_owned()),
        _ => (404, r#"{"message":"page not found"}"#.to_owned()),
    }
}

impl FakeDaemon {
    async fn start(tag: &str, min: &'static str, max: &'static str) -> FakeDaemon {
        let dir = temp_dir(tag);
        let socket = dir.0.join("docker.sock");
        let listener = match UnixListener::bind(&socket) {
            Ok(l) => l,
            Err(e) => panic!("bind {}: {e}", socket.display()),
        };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let line = head.lines().next().unwrap_or_default().to_owned();
                    let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
                    if let Ok(mut seen) = seen.lock() {
                        seen.push(line);
                    }
                    let (status, body) = answer(&path, min, max);
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        FakeDaemon {
            socket,
            requests,
            _dir: dir,
        }
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

fn path_of(line: &str) -> &str {
    line.split(' ').nth(1).unwrap_or_default()
}

#[tokio::test]
async fn a_modern_daemon_is_asked_unversioned_then_spoken_to_at_its_version() {
    let daemon = FakeDaemon::start("modern", "1.44", "1.52").await;
    let runtime = Runtime::connect(&daemon.host()).await;
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => panic!("connect: {e}"),
    };
    assert_eq!(runtime.api_version(), ApiVersion::new(1, 52));
    assert_eq!(
        runtime.daemon().min_api_version,
        Some(ApiVersion::new(1, 44))
    );
    assert_eq!(runtime.daemon().arch, "arm64");
    match runtime.list_ours().await {
        Ok(ours) => assert!(ours.is_empty()),
        Err(e) => panic!("list_ours: {e}"),
    }
    let requests = daemon.requests();
    let paths: Vec<&str> = requests.iter().map(|l| path_of(l)).collect();
    assert_eq!(paths.len(), 2, "{requests:?}");
    assert_eq!(paths.first().copied(), Some("/version"));
    assert!(
        paths
            .get(1)
            .is_some_and(|p| p.starts_with("/v1.52/containers/json?")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn a_daemon_that_refuses_every_version_warren_speaks_is_refused_clearly() {
    let daemon = FakeDaemon::start("future", "1.60", "1.70").await;
    match Runtime::connect(&daemon.host()).await {
        Err(RuntimeError::Version(VersionError::DaemonTooNew { daemon_min, newest })) => {
            assert_eq!(daemon_min, ApiVersion::new(1, 60));
            assert_eq!(newest, super::version::MAX_SUPPORTED);
        }
        other => panic!("expected DaemonTooNew, got {other:?}"),
    }
    // Only the probe went out.
    assert_eq!(daemon.requests().len(), 1);
}

#[tokio::test]
async fn a_missing_socket_is_unreachable() {
    let dir = temp_dir("missing");
    let host = dir.0.join("none.sock");
    match Runtime::connect(&host.to_string_lossy()).await {
        Err(RuntimeError::Unreachable { socket, .. }) => assert_eq!(socket, host),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

/// Pins what the linked bollard itself sends, so that a bollard upgrade
/// which sends the prefix again (bollard#737) shows up here: the runtime
/// stays right either way, docs/workloads.md needs its note updated.
#[tokio::test]
async fn bollard_0_21_1_itself_sends_no_version_prefix() {
    let daemon = FakeDaemon::start("raw", "1.44", "1.52").await;
    let pinned = bollard::ClientVersion {
        major_version: 1,
        minor_version: 44,
    };
    let raw = bollard::Docker::connect_with_unix(&daemon.host(), 5, &pinned);
    let raw = match raw {
        Ok(r) => r,
        Err(e) => panic!("bollard: {e}"),
    };
    if let Err(e) = raw.list_containers(None).await {
        panic!("list: {e}");
    }
    assert_eq!(daemon.requests(), ["GET /containers/json HTTP/1.1"]);
}

#[test]
fn the_fake_answers_as_dockers_middleware_does() {
    let check = |path: &str| answer(path, "1.44", "1.52").0;
    assert_eq!(check("/version"), 200);
    assert_eq!(check("/v1.41/version"), 400);
    assert_eq!(check("/v1.53/version"), 400);
    assert_eq!(check("/v1.44/containers/json"), 200);
}
