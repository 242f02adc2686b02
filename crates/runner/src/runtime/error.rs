//! What can go wrong between the node runtime and its Docker daemon.

use std::path::PathBuf;

use super::version::VersionError;

/// An error of the node runtime. The daemon's own message is kept
/// wherever the daemon gave one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The Docker host is not a unix socket (a path or `unix:///path`).
    #[error(
        "unsupported Docker host {0:?}: warren talks to the node's own daemon over its unix socket \
         (a path or unix:///path)"
    )]
    UnsupportedHost(String),
    /// The daemon's socket does not answer.
    #[error("cannot reach the Docker daemon at {socket}: {source}")]
    Unreachable {
        /// The socket path.
        socket: PathBuf,
        /// What the client said.
        #[source]
        source: bollard::errors::Error,
    },
    /// The daemon's API range and warren's do not meet.
    #[error(transparent)]
    Version(#[from] VersionError),
    /// A replica spec that cannot become a container.
    #[error("invalid replica spec: {0}")]
    InvalidSpec(String),
    /// The image is not on this node (run_replica never pulls).
    #[error("image {image} is not on this node: {message}")]
    ImageNotFound {
        /// The image reference.
        image: String,
        /// The daemon's message.
        message: String,
    },
    /// The daemon could not pull the image.
    #[error("cannot pull image {image}: {message}")]
    ImagePull {
        /// The image reference.
        image: String,
        /// The daemon's message.
        message: String,
    },
    /// No container has this id or name.
    #[error("no such container {0}")]
    NoSuchContainer(String),
    /// The container was not made by warren: the runtime leaves it alone.
    #[error("container {0} has no warren labels: warren leaves containers it did not make alone")]
    NotOurs(String),
    /// The daemon refused a request.
    #[error("the Docker daemon refused {what} (HTTP {status}): {message}")]
    Daemon {
        /// The operation (`create container`).
        what: &'static str,
        /// The HTTP status.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// The daemon's answer lacks something the runtime needs.
    #[error("the Docker daemon's answer to {what} has no {field}")]
    Malformed {
        /// The operation.
        what: &'static str,
        /// The missing or unreadable field.
        field: &'static str,
    },
    /// The connection to the daemon failed mid-request.
    #[error("talking to the Docker daemon ({what}): {source}")]
    Transport {
        /// The operation.
        what: &'static str,
        /// What the client said.
        #[source]
        source: bollard::errors::Error,
    },
}

impl RuntimeError {
    /// Classifies a client error of operation `what`: the daemon's refusals
    /// keep their status and message, the rest is transport.
    pub(crate) fn from_docker(what: &'static str, e: bollard::errors::Error) -> RuntimeError {
        use bollard::errors::Error as E;
        match e {
            E::DockerResponseServerError {
                status_code,
                message,
            } => RuntimeError::Daemon {
                what,
                status: status_code,
                message,
            },
            E::DockerStreamError { error } => RuntimeError::Daemon {
                what,
                status: 200,
                message: error,
            },
            other => RuntimeError::Transport {
                what,
                source: other,
            },
        }
    }

    /// Like [`RuntimeError::from_docker`], with a 404 read as "no such
    /// container `id`".
    pub(crate) fn from_docker_for(
        what: &'static str,
        id: &str,
        e: bollard::errors::Error,
    ) -> RuntimeError {
        match RuntimeError::from_docker(what, e) {
            RuntimeError::Daemon { status: 404, .. } => {
                RuntimeError::NoSuchContainer(id.to_owned())
            }
            other => other,
        }
    }
}
