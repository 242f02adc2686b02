//! The connection to the node's Docker daemon: [`Runtime::connect`] reads
//! the daemon's `/version` without a version prefix, negotiates the Engine
//! API version ([`super::version`]) and pins every later request to it.
//!
//! bollard 0.21.1 builds each request path without the `/vX.Y` prefix
//! whatever client version it is given (bollard#736: `Url::join` with an
//! absolute path drops it), so a daemon would answer in its own newest
//! version. A request modifier puts the negotiated prefix back (or, on the
//! probe, takes any prefix off), so what goes on the wire does not depend
//! on which bollard is linked: docs/workloads.md has the evidence.

use std::path::{Path, PathBuf};

use bollard::{BollardRequest, ClientVersion, Docker};

use super::error::RuntimeError;
use super::version::{self, ApiVersion};

/// How long one request may wait for the daemon's response headers
/// (bollard's own default): a stop waits for its grace period within it.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// The node runtime: a client of the node's own Docker daemon, pinned to
/// the negotiated Engine API version. Cheap to clone (one connection pool).
///
/// The methods live beside what they do: containers in
/// [`super::containers`], node facts and usage in [`super::stats`], logs in
/// [`super::logs`], exec in [`super::exec`].
#[derive(Debug, Clone)]
pub struct Runtime {
    pub(crate) docker: Docker,
    pub(crate) socket: PathBuf,
    pub(crate) api: ApiVersion,
    pub(crate) daemon: DaemonVersion,
}

/// What the daemon's `/version` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonVersion {
    /// The Docker Engine version (`20.10.24+dfsg1`).
    pub version: String,
    /// Its newest Engine API (`ApiVersion`).
    pub api_version: ApiVersion,
    /// Its oldest Engine API (`MinAPIVersion`), when it says.
    pub min_api_version: Option<ApiVersion>,
    /// The platform's architecture as Go names it (`amd64`, `arm64`), which
    /// is how images name theirs.
    pub arch: String,
    /// The platform's OS (`linux`).
    pub os: String,
}

/// The socket path of `docker_host`: a path, or a `unix://` URL.
pub fn socket_path(docker_host: &str) -> Result<PathBuf, RuntimeError> {
    let path = match docker_host.split_once("://") {
        Some(("unix", path)) => path,
        Some(_) => return Err(RuntimeError::UnsupportedHost(docker_host.to_owned())),
        None => docker_host,
    };
    if path.is_empty() || !path.starts_with('/') {
        return Err(RuntimeError::UnsupportedHost(docker_host.to_owned()));
    }
    Ok(PathBuf::from(path))
}

/// A bollard client on `socket` whose requests carry exactly the prefix
/// `/v{pin}` (or none, for `None`), whatever bollard itself put there.
fn client(socket: &Path, pin: Option<ApiVersion>) -> Result<Docker, RuntimeError> {
    let advisory = pin.unwrap_or(version::MAX_SUPPORTED);
    let client_version = ClientVersion {
        major_version: usize::from(advisory.major),
        minor_version: usize::from(advisory.minor),
    };
    let docker = Docker::connect_with_unix(
        &socket.to_string_lossy(),
        REQUEST_TIMEOUT_SECS,
        &client_version,
    )
    .map_err(|source| RuntimeError::Unreachable {
        socket: socket.to_owned(),
        source,
    })?;
    Ok(docker.with_request_modifier(move |request| pin_request(request, pin)))
}

/// `request` with its path's version prefix set to `pin` (see
/// [`version::versioned_path`]).
fn pin_request(request: BollardRequest, pin: Option<ApiVersion>) -> BollardRequest {
    let (mut parts, body) = request.into_parts();
    let Some(path_and_query) = parts.uri.path_and_query() else {
        return BollardRequest::from_parts(parts, body);
    };
    let wanted = version::versioned_path(path_and_query.as_str(), pin);
    let mut uri = parts.uri.clone().into_parts();
    match wanted.parse() {
        Ok(pq) => {
            uri.path_and_query = Some(pq);
            match http::Uri::from_parts(uri) {
                Ok(new) => parts.uri = new,
                Err(e) => tracing::warn!(%e, "cannot pin the Docker request path"),
            }
        }
        Err(e) => tracing::warn!(%e, path = %wanted, "cannot pin the Docker request path"),
    }
    BollardRequest::from_parts(parts, body)
}

impl Runtime {
    /// Connects to the daemon at `docker_host` (a socket path or a
    /// `unix:///path` URL): asks its `/version` without a version prefix,
    /// negotiates the Engine API version and pins the client to it.
    /// Refuses a daemon whose API range does not meet warren's
    /// ([`version::MIN_SUPPORTED`]..=[`version::MAX_SUPPORTED`]).
    pub async fn connect(docker_host: &str) -> Result<Runtime, RuntimeError> {
        let socket = socket_path(docker_host)?;
        let probe = client(&socket, None)?;
        let reported = probe.version().await.map_err(|source| match source {
            bollard::errors::Error::DockerResponseServerError { .. } => {
                RuntimeError::from_docker("version", source)
            }
            source => RuntimeError::Unreachable {
                socket: socket.clone(),
                source,
            },
        })?;
        let negotiated = version::negotiate(
            reported.api_version.as_deref(),
            reported.min_api_version.as_deref(),
        )?;
        let api = negotiated.speak;
        let daemon = DaemonVersion {
            version: reported.version.unwrap_or_default(),
            api_version: negotiated.daemon_max,
            min_api_version: negotiated.daemon_min,
            arch: reported.arch.unwrap_or_default(),
            os: reported.os.unwrap_or_default(),
        };
        tracing::info!(
            socket = %socket.display(),
            docker = %daemon.version,
            daemon_api = %daemon.api_version,
            api = %api,
            "connected to the node's Docker daemon"
        );
        let docker = client(&socket, Some(api))?;
        Ok(Runtime {
            docker,
            socket,
            api,
            daemon,
        })
    }

    /// The Engine API version every request is pinned to.
    pub fn api_version(&self) -> ApiVersion {
        self.api
    }

    /// What the daemon's `/version` said at connect.
    pub fn daemon(&self) -> &DaemonVersion {
        &self.daemon
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hosts() {
        assert_eq!(
            socket_path("/run/docker.sock").ok(),
            Some(PathBuf::from("/run/docker.sock"))
        );
        assert_eq!(
            socket_path("unix:///tmp/w/docker.sock").ok(),
            Some(PathBuf::from("/tmp/w/docker.sock"))
        );
        for bad in [
            "tcp://127.0.0.1:2375",
            "ssh://host",
            "unix://",
            "docker.sock",
            "",
        ] {
            assert!(
                matches!(socket_path(bad), Err(RuntimeError::UnsupportedHost(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn pins_the_request_uri_and_keeps_the_rest() {
        let request = http::Request::builder()
            .uri("unix://2f746d70/containers/json?all=true")
            .header("content-type", "application/json")
            .body(bollard::body_full(Default::default()));
        let Ok(request) = request else {
            panic!("cannot build a request");
        };
        let pinned = pin_request(request, Some(ApiVersion::new(1, 41)));
        assert_eq!(
            pinned.uri().to_string(),
            "unix://2f746d70/v1.41/containers/json?all=true"
        );
        assert_eq!(pinned.headers().len(), 1);
        let unpinned = pin_request(pinned, None);
        assert_eq!(
            unpinned.uri().to_string(),
            "unix://2f746d70/containers/json?all=true"
        );
    }
}
