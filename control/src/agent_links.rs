//! The admitted agents' live QUIC connections, by node name, and the
//! replica streams the admin API opens on them (`warren logs`, `warren
//! exec`; [`warren_proto::replica_stream`]).
//!
//! The agent endpoint adds a connection once its agent is welcomed and
//! takes it out when it ends; a node whose agent reconnected keeps only its
//! newest connection (an older one ending does not remove it). The API
//! looks a node up with [`AgentLinks::get`]: no entry means the node is
//! down, which is what `warren logs` says for its replicas.

use crate::cluster::ConnectionId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use warren_proto::{read_frame, write_frame, StreamError, StreamFrame, StreamRequest, MAX_FRAME};

/// How long opening a stream may wait for the agent to allow one more (it
/// allows 16 at once).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The live connections (see the module doc). Cheap to clone: every clone
/// is the same registry.
#[derive(Debug, Clone, Default)]
pub struct AgentLinks {
    links: Arc<Mutex<HashMap<String, AgentLink>>>,
}

/// One admitted agent's connection.
#[derive(Debug, Clone)]
pub struct AgentLink {
    connection: quinn::Connection,
    id: ConnectionId,
    /// Whether the agent serves replica streams (it listed
    /// [`warren_proto::STREAMS_KIND`]).
    serves_streams: bool,
}

/// Why a replica stream could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The node's agent does not serve replica streams.
    #[error("the agent on {0} does not serve logs or exec (it runs no replicas, or is older than the control plane: upgrade it)")]
    Unsupported(String),
    /// The agent allowed no new stream in time.
    #[error("the agent on {0} allows no more streams now; try again")]
    Busy(String),
    /// The connection failed.
    #[error("the connection to {node}: {source}")]
    Connection {
        /// The node.
        node: String,
        /// What QUIC said.
        #[source]
        source: quinn::ConnectionError,
    },
    /// The request could not be sent.
    #[error("sending the request to {node}: {source}")]
    Send {
        /// The node.
        node: String,
        /// What went wrong.
        #[source]
        source: StreamError,
    },
}

impl AgentLinks {
    /// A registry without connections.
    pub fn new() -> AgentLinks {
        AgentLinks::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AgentLink>> {
        // The map stays consistent whatever panicked while holding it.
        self.links.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `name`'s agent is connected on `connection` (`id` as the cluster
    /// counts it).
    pub fn insert(
        &self,
        name: &str,
        id: ConnectionId,
        connection: quinn::Connection,
        serves_streams: bool,
    ) {
        self.lock().insert(
            name.to_owned(),
            AgentLink {
                connection,
                id,
                serves_streams,
            },
        );
    }

    /// `name`'s connection `id` ended (a newer one stays).
    pub fn remove(&self, name: &str, id: ConnectionId) {
        let mut links = self.lock();
        if links.get(name).is_some_and(|link| link.id == id) {
            links.remove(name);
        }
    }

    /// `name`'s live connection, if its agent is connected.
    pub fn get(&self, name: &str) -> Option<AgentLink> {
        self.lock()
            .get(name)
            .filter(|link| link.connection.close_reason().is_none())
            .cloned()
    }
}

/// A replica stream open to a node: the request is sent; read the
/// answer's frames with [`ReplicaStream::next`]. Dropping it stops the
/// stream, which stops the agent following a log.
#[derive(Debug)]
pub struct ReplicaStream {
    recv: quinn::RecvStream,
}

impl AgentLink {
    /// Opens a stream to `node` (this link's) and sends `request`.
    pub async fn open(
        &self,
        node: &str,
        request: &StreamRequest,
    ) -> Result<ReplicaStream, OpenError> {
        if !self.serves_streams {
            return Err(OpenError::Unsupported(node.to_owned()));
        }
        let (mut send, recv) = tokio::time::timeout(OPEN_TIMEOUT, self.connection.open_bi())
            .await
            .map_err(|_| OpenError::Busy(node.to_owned()))?
            .map_err(|source| OpenError::Connection {
                node: node.to_owned(),
                source,
            })?;
        write_frame(&mut send, request)
            .await
            .map_err(|source| OpenError::Send {
                node: node.to_owned(),
                source,
            })?;
        let _ = send.finish();
        Ok(ReplicaStream { recv })
    }
}

impl ReplicaStream {
    /// The next frame; `None` when the agent finished the stream.
    pub async fn next(&mut self) -> Result<Option<StreamFrame>, StreamError> {
        match read_frame(&mut self.recv, MAX_FRAME).await {
            Ok(frame) => Ok(Some(frame)),
            Err(StreamError::Ended) => Ok(None),
            Err(error) => Err(error),
        }
    }
}
