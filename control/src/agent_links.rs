//! The nodes the admin API can open replica streams to (`warren logs`,
//! `warren exec`, image checks; [`warren_proto::replica_stream`]), by
//! name: the admitted agents' live QUIC connections, and the control
//! plane's own host when it runs replicas (`warren serve --docker-host`),
//! whose streams are in-process pipes to its [`Streams`].
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
use tokio::io::AsyncRead;
use tokio::sync::oneshot;
use warren_proto::{read_frame, write_frame, StreamError, StreamFrame, StreamRequest, MAX_FRAME};
use warren_runner::streams::Streams;

/// How many bytes of an in-process replica stream are buffered before its
/// node waits for the reader.
const LOCAL_BUFFER: usize = 64 * 1024;

/// How long opening a stream may wait for the agent to allow one more (it
/// allows 16 at once).
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The live connections (see the module doc). Cheap to clone: every clone
/// is the same registry.
#[derive(Debug, Clone, Default)]
pub struct AgentLinks {
    links: Arc<Mutex<HashMap<String, AgentLink>>>,
}

/// How to reach one node's replica streams.
#[derive(Debug, Clone)]
pub enum AgentLink {
    /// An admitted agent's connection.
    Quic {
        /// The connection.
        connection: quinn::Connection,
        /// Which of the node's connections it is.
        id: ConnectionId,
        /// Whether the agent serves replica streams (it listed
        /// [`warren_proto::STREAMS_KIND`]).
        serves_streams: bool,
    },
    /// The control plane's own host, answered in this process.
    Local(Streams),
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
            AgentLink::Quic {
                connection,
                id,
                serves_streams,
            },
        );
    }

    /// The control plane's own host, `name`, answers with `streams`.
    pub fn insert_local(&self, name: &str, streams: Streams) {
        self.lock()
            .insert(name.to_owned(), AgentLink::Local(streams));
    }

    /// `name`'s connection `id` ended (a newer one stays).
    pub fn remove(&self, name: &str, id: ConnectionId) {
        let mut links = self.lock();
        if links
            .get(name)
            .is_some_and(|link| matches!(link, AgentLink::Quic { id: live, .. } if *live == id))
        {
            links.remove(name);
        }
    }

    /// `name`'s live link, if its agent is connected (or it is the control
    /// plane's host).
    pub fn get(&self, name: &str) -> Option<AgentLink> {
        self.lock()
            .get(name)
            .filter(|link| match link {
                AgentLink::Quic { connection, .. } => connection.close_reason().is_none(),
                AgentLink::Local(_) => true,
            })
            .cloned()
    }
}

/// A replica stream open to a node: the request is sent; read the
/// answer's frames with [`ReplicaStream::next`]. Dropping it stops the
/// stream, which stops the node following a log.
pub struct ReplicaStream {
    recv: Box<dyn AsyncRead + Send + Unpin>,
    /// An in-process stream's stop signal: dropped with the stream.
    _stop: Option<oneshot::Sender<()>>,
}

impl std::fmt::Debug for ReplicaStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaStream").finish_non_exhaustive()
    }
}

impl AgentLink {
    /// Opens a stream to `node` (this link's) and sends `request`.
    pub async fn open(
        &self,
        node: &str,
        request: &StreamRequest,
    ) -> Result<ReplicaStream, OpenError> {
        let send_error = |source| OpenError::Send {
            node: node.to_owned(),
            source,
        };
        let (connection, serves_streams) = match self {
            AgentLink::Quic {
                connection,
                serves_streams,
                ..
            } => (connection, *serves_streams),
            AgentLink::Local(streams) => {
                return open_local(streams.clone(), request)
                    .await
                    .map_err(send_error)
            }
        };
        if !serves_streams {
            return Err(OpenError::Unsupported(node.to_owned()));
        }
        let (mut send, recv) = tokio::time::timeout(OPEN_TIMEOUT, connection.open_bi())
            .await
            .map_err(|_| OpenError::Busy(node.to_owned()))?
            .map_err(|source| OpenError::Connection {
                node: node.to_owned(),
                source,
            })?;
        write_frame(&mut send, request).await.map_err(send_error)?;
        let _ = send.finish();
        Ok(ReplicaStream {
            recv: Box::new(recv),
            _stop: None,
        })
    }
}

/// A replica stream to `streams` in this process: a pipe, answered on a
/// task of its own as an agent answers a QUIC stream.
async fn open_local(
    streams: Streams,
    request: &StreamRequest,
) -> Result<ReplicaStream, StreamError> {
    let (mut ours, theirs) = tokio::io::duplex(LOCAL_BUFFER);
    let (stop, stopped) = oneshot::channel::<()>();
    let (their_recv, their_send) = tokio::io::split(theirs);
    tokio::spawn(streams.handle(their_send, their_recv, async move {
        let _ = stopped.await;
    }));
    write_frame(&mut ours, request).await?;
    Ok(ReplicaStream {
        recv: Box::new(ours),
        _stop: Some(stop),
    })
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
