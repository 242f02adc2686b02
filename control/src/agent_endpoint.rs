//! The QUIC endpoint agents connect to: it reads a hello, has the cluster
//! admit it ([`crate::cluster::ClusterState::admit`], which holds the
//! rules), writes the answer, and then moves frames: peer-map changes,
//! tickets and candidates out, reports in. It decides nothing itself.
//!
//! Before admission a connection may open one stream and send one small
//! hello within [`HELLO_TIMEOUT`]; once admitted, it may open more streams.
//! An admitted connection is in the [`AgentLinks`] until it ends: the admin
//! API opens replica streams (`warren logs`, `warren exec`) on it.

use crate::admission::{check_version, Refusal};
use crate::agent_links::AgentLinks;
use crate::cluster::{Cluster, ClusterState, ConnectionId, PeerEvent};
use crate::nodes::NodeRecord;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;
use warren_proto::{
    read_frame, stream, write_frame, AgentMessage, ControlMessage, Hello, HelloVersion, Report,
    StreamError, ALPN, ASSIGNMENTS_KIND, MAX_FRAME, MAX_HELLO, STREAMS_KIND, V1_CONTROL_KINDS,
};

/// How long a relay ticket handed to an agent lasts by default
/// (`warren serve --ticket-lifetime`). Connected agents get a fresh one
/// every third of it; a removed node's last ticket dies within it
/// (standalone relays cannot be told of removals).
pub const DEFAULT_TICKET_LIFETIME: Duration = Duration::from_secs(3600);

/// How long an agent may take to open its stream and send its hello, and
/// how long a refused agent is given to read the refusal.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Streams an admitted agent may have open at once, each way.
const ADMITTED_STREAMS: u32 = 16;

/// The QUIC endpoint on `listen`. Its stateless-reset key and the key its
/// connection IDs are checked with are derived from the control plane's
/// TLS key, so they are the same after a restart: the agents' connections
/// to the previous process get a reset they can verify, and they reconnect
/// at once instead of after the idle timeout.
pub fn endpoint(
    listen: std::net::SocketAddr,
    server_config: quinn::ServerConfig,
    tls_key: &[u8],
) -> std::io::Result<quinn::Endpoint> {
    let derive = |label: &[u8]| {
        let mut secret = ring::digest::Context::new(&ring::digest::SHA256);
        secret.update(label);
        secret.update(tls_key);
        secret.finish()
    };
    let reset = derive(b"warren quic stateless reset v1");
    let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset.as_ref());
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&derive(b"warren quic connection ids v1").as_ref()[..8]);
    let cid_key = u64::from_be_bytes(cid_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(reset_key));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
            as Box<dyn quinn::ConnectionIdGenerator>
    });
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for the QUIC endpoint"))?;
    quinn::Endpoint::new(
        config,
        Some(server_config),
        std::net::UdpSocket::bind(listen)?,
        runtime,
    )
}

/// Why an agent connection ended early.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("the QUIC connection: {0}")]
    Quic(#[from] quinn::ConnectionError),
    #[error("no hello within {HELLO_TIMEOUT:?}")]
    HelloTimeout,
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterStopped),
    #[error("{missed} peer-map updates missed; the agent reconnects")]
    Lagged { missed: u64 },
}

/// The QUIC server configuration: the data directory's certificate, ALPN
/// [`ALPN`], TLS 1.3 with ring, and the limits of a connection that has
/// not been admitted yet: one bidirectional stream, no unidirectional one,
/// small flow-control windows.
///
/// It is also how a silent node is noticed: the control plane pings every
/// connection each `heartbeat` (the agent's acknowledgements, like
/// anything it sends, keep the connection alive), and a connection that
/// carries nothing for `node_timeout` is closed, which makes its node
/// offline. The agent's own idle timeout is longer; QUIC takes the shorter
/// of the two on both ends, so the agent also notices a silent control
/// plane within `node_timeout` and reconnects.
pub fn server_config(
    cert: &[u8],
    key: &[u8],
    heartbeat: Duration,
    node_timeout: Duration,
) -> Result<quinn::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(cert.to_vec())],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.to_vec().into()),
        )?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|error| rustls::Error::General(error.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    let window = quinn::VarInt::from_u32(MAX_FRAME as u32 + 4);
    transport
        .max_concurrent_bidi_streams(1u8.into())
        .max_concurrent_uni_streams(0u8.into())
        .stream_receive_window(window)
        .receive_window(window)
        .datagram_receive_buffer_size(None)
        .keep_alive_interval(Some(heartbeat))
        .max_idle_timeout(quinn::IdleTimeout::try_from(node_timeout).ok());
    config.transport_config(Arc::new(transport));
    Ok(config)
}

/// Accepts agents until the endpoint closes; each admitted one is in
/// `links` while connected.
pub async fn serve(endpoint: quinn::Endpoint, cluster: Cluster, links: AgentLinks) {
    while let Some(incoming) = endpoint.accept().await {
        let cluster = cluster.clone();
        let links = links.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            if let Err(error) = connection(incoming, cluster, links).await {
                tracing::debug!(%remote, %error, "agent connection ended");
            }
        });
    }
}

/// One agent: its hello, the answer, then frames both ways until the agent
/// goes or is removed.
async fn connection(
    incoming: quinn::Incoming,
    cluster: Cluster,
    links: AgentLinks,
) -> Result<(), ConnectionError> {
    let connection = incoming.await?;
    let remote = connection.remote_address();
    let hello = tokio::time::timeout(HELLO_TIMEOUT, async {
        let (send, mut recv) = connection.accept_bi().await?;
        let body = stream::read_body(&mut recv, MAX_HELLO).await?;
        Ok::<_, ConnectionError>((send, recv, parse_hello(&body)))
    })
    .await
    .map_err(|_| ConnectionError::HelloTimeout)??;
    let (mut send, recv, hello) = hello;
    let answer = match hello {
        Ok(hello) => {
            let random = warren_os::random::<32>();
            let now = warren_os::unix_now();
            cluster
                .with(move |state| {
                    // Subscribed in the same step as the admission, so no
                    // change between the welcome's peer map and the first
                    // update is missed.
                    let events = state.subscribe();
                    let admitted = match random {
                        Ok(random) => state.admit(&hello, remote, now, random),
                        Err(error) => Err(Refusal::new(
                            warren_proto::RefusalCode::Internal,
                            error.to_string(),
                        )),
                    };
                    admitted.map(|admitted| (admitted, hello, events))
                })
                .await?
        }
        Err(refusal) => Err(refusal),
    };
    let (admitted, hello, events) = match answer {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let refused = ControlMessage::Refused {
                code: refusal.code,
                reason: refusal.reason,
            };
            write_frame(&mut send, &refused).await?;
            let _ = send.finish();
            // Let the refusal reach the agent before the connection goes,
            // but not for longer than a hello may take.
            let _ = tokio::time::timeout(HELLO_TIMEOUT, send.stopped()).await;
            return Ok(());
        }
    };
    write_frame(&mut send, &ControlMessage::Welcome(admitted.welcome)).await?;
    connection.set_max_concurrent_bi_streams(ADMITTED_STREAMS.into());
    connection.set_max_concurrent_uni_streams(ADMITTED_STREAMS.into());
    let agent = Agent {
        node: admitted.node,
        version: hello.version,
        kinds: if hello.version == 1 {
            V1_CONTROL_KINDS
                .iter()
                .map(|kind| (*kind).to_owned())
                .collect()
        } else {
            hello.capabilities
        },
    };
    let id: ConnectionId = admitted.connection;
    let serves_streams = agent.kinds.iter().any(|kind| kind == STREAMS_KIND);
    links.insert(&agent.node.name, id, connection.clone(), serves_streams);
    let reader = tokio::spawn(read_reports(recv, cluster.clone(), agent.clone()));
    let ended = follow(&connection, &mut send, events, &agent, &cluster).await;
    reader.abort();
    links.remove(&agent.node.name, id);
    let name = agent.node.name.clone();
    let _ = cluster
        .with(move |state: &mut ClusterState| {
            state.disconnected(&name, id, std::time::Instant::now())
        })
        .await;
    ended
}

/// An admitted agent, as its connection serves it.
#[derive(Debug, Clone)]
struct Agent {
    node: NodeRecord,
    version: u32,
    /// The control-message kinds it handles.
    kinds: Vec<String>,
}

impl Agent {
    fn handles(&self, message: &ControlMessage) -> bool {
        self.kinds.iter().any(|kind| kind == message.kind())
    }
}

/// The hello in `body`, or the refusal for it: its version is read first,
/// so an agent of another version is told so rather than that its hello
/// is malformed.
fn parse_hello(body: &[u8]) -> Result<Hello, Refusal> {
    let version: HelloVersion = warren_proto::frame::decode(body).map_err(Refusal::malformed)?;
    check_version(version.version)?;
    warren_proto::frame::decode(body).map_err(Refusal::malformed)
}

/// Keeps the agent's latest report until its stream ends.
async fn read_reports(mut recv: quinn::RecvStream, cluster: Cluster, agent: Agent) {
    loop {
        let message = if agent.version == 1 {
            read_frame::<Report, _>(&mut recv, MAX_FRAME)
                .await
                .map(AgentMessage::Report)
        } else {
            read_frame::<AgentMessage, _>(&mut recv, MAX_FRAME).await
        };
        let name = agent.node.name.clone();
        let recorded = match message {
            Ok(AgentMessage::Report(report)) => {
                let at = SystemTime::now();
                cluster
                    .with(move |state| state.record_report(&name, report, at))
                    .await
            }
            Ok(AgentMessage::Node(report)) => {
                let now = warren_os::unix_now();
                cluster
                    .with(move |state| state.record_node(&name, report, now))
                    .await
            }
            Ok(AgentMessage::Replicas { replicas }) => {
                let now = warren_os::unix_now();
                cluster
                    .with(move |state| state.record_replicas(&name, replicas, now))
                    .await
            }
            Ok(AgentMessage::Leave) => {
                let now = warren_os::unix_now();
                cluster
                    .with(move |state| match state.remove_node(&name, false, now) {
                        Ok(removal) => tracing::info!(%name, ?removal, "the node asked to leave"),
                        Err(error) => tracing::warn!(%name, %error, "the node asked to leave"),
                    })
                    .await
            }
            Ok(_) => {
                tracing::debug!(%name, "ignoring an agent message of a kind this control plane does not know");
                Ok(())
            }
            Err(error) => {
                tracing::debug!(%name, %error, "agent messages ended");
                return;
            }
        };
        if recorded.is_err() {
            return;
        }
    }
}

/// Pushes peer-map changes and fresh tickets to one admitted agent until
/// it goes, or until it is removed (its connection is then closed with the
/// reason).
async fn follow(
    connection: &quinn::Connection,
    send: &mut quinn::SendStream,
    mut events: broadcast::Receiver<PeerEvent>,
    agent: &Agent,
    cluster: &Cluster,
) -> Result<(), ConnectionError> {
    let node = &agent.node;
    let name = node.name.clone();
    let (candidates, renewal) = cluster
        .with(move |state| {
            let renewal = state.ticket_lifetime() / 3;
            (state.known_candidates(&name), renewal)
        })
        .await?;
    for update in candidates {
        if agent.handles(&update) {
            write_frame(send, &update).await?;
        }
    }
    let mut sent_assignments = None;
    send_assignments(send, agent, cluster, &mut sent_assignments).await?;
    let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + renewal, renewal);
    loop {
        let update = tokio::select! {
            _ = renewals.tick() => {
                let name = node.name.clone();
                let now = warren_os::unix_now();
                match cluster.with(move |state| state.renew_ticket(&name, now)).await? {
                    Some(ticket) => ControlMessage::Ticket { ticket },
                    // Removed meanwhile: the `Left` event closes the connection.
                    None => continue,
                }
            },
            event = events.recv() => match event {
                Ok(PeerEvent::Left(other)) if other.name == node.name => {
                    connection.close(warren_proto::REMOVED_CODE.into(), b"this node was removed from the cluster");
                    return Ok(());
                }
                Ok(PeerEvent::Assignments) => {
                    send_assignments(send, agent, cluster, &mut sent_assignments).await?;
                    continue;
                }
                Ok(event) => match update_for(node, event) {
                    Some(update) => update,
                    None => continue,
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Err(ConnectionError::Lagged { missed });
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = connection.closed() => return Ok(()),
        };
        if agent.handles(&update) {
            write_frame(send, &update).await?;
        }
    }
}

/// Sends the agent its node's assignments if it runs replicas and they
/// differ from what it was sent last.
async fn send_assignments(
    send: &mut quinn::SendStream,
    agent: &Agent,
    cluster: &Cluster,
    last: &mut Option<Vec<warren_proto::assignment::Assignment>>,
) -> Result<(), ConnectionError> {
    if !agent.kinds.iter().any(|kind| kind == ASSIGNMENTS_KIND) {
        return Ok(());
    }
    let name = agent.node.name.clone();
    let (revision, replicas) = cluster
        .with(move |state| state.assignments_for(&name))
        .await?;
    if last.as_ref() == Some(&replicas) {
        return Ok(());
    }
    let message = ControlMessage::Assignments {
        revision,
        replicas: replicas.clone(),
    };
    write_frame(send, &message).await?;
    *last = Some(replicas);
    Ok(())
}

/// What `node`'s agent is told of `event`, if anything.
fn update_for(node: &NodeRecord, event: PeerEvent) -> Option<ControlMessage> {
    match event {
        PeerEvent::Joined(other) if other.name != node.name => Some(ControlMessage::Peers {
            added: vec![crate::cluster::peer_of(&other)],
            removed: Vec::new(),
        }),
        PeerEvent::Left(other) if other.name != node.name => Some(ControlMessage::Peers {
            added: Vec::new(),
            removed: vec![other.public_key],
        }),
        PeerEvent::Candidates {
            node: other,
            candidates,
        } if other.name != node.name => Some(ControlMessage::Candidates {
            public_key: other.public_key,
            candidates,
        }),
        PeerEvent::Joined(_)
        | PeerEvent::Left(_)
        | PeerEvent::Candidates { .. }
        | PeerEvent::Assignments => None,
    }
}
