//! The QUIC endpoint agents connect to, and what the control plane answers
//! a [`Hello`]: admission with a join token or a credential, the node's
//! mesh address, its relay ticket and the peer map.
//!
//! [`Admissions::answer`] holds the rules and touches only the store and
//! the registry; the QUIC code around it only moves frames.

use crate::nodes::{JoinRefused, JoinRequest, Mode, NodeRecord, Registry, CONTROL_NAME};
use crate::store::{RedeemError, Store};
use crate::tokens::secret_sha256;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ip_network::Ipv4Network;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use warren_proto::{Auth, ControlMessage, Hello, Peer, Report, Welcome, ALPN, PROTOCOL_VERSION};
use warren_relay_proto::SigningKey;
use warren_wire::NodeKey;

/// How long a relay ticket handed to an agent lasts by default
/// (`warren serve --ticket-lifetime`). Connected agents get a fresh one
/// every third of it; a removed node's last ticket dies within it
/// (standalone relays cannot be told of removals).
pub const DEFAULT_TICKET_LIFETIME: Duration = Duration::from_secs(3600);

/// How long an agent may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The control plane as its agents see it.
#[derive(Debug, Clone)]
pub struct ControlPeer {
    /// Its WireGuard public key.
    pub public_key: [u8; 32],
    /// Its mesh address.
    pub mesh_ip: std::net::Ipv4Addr,
    /// Where its WireGuard socket is reachable.
    pub endpoints: Vec<SocketAddr>,
}

/// Everything admission needs, shared by all connections.
pub struct Admissions {
    /// The state store.
    pub store: Arc<Mutex<Store>>,
    /// The nodes.
    pub registry: Arc<Mutex<Registry>>,
    /// Signs relay tickets.
    pub signing_key: SigningKey,
    /// The relays agents register with.
    pub relays: Vec<SocketAddr>,
    /// The mesh CIDR.
    pub mesh: Ipv4Network,
    /// The control plane's own mesh peer.
    pub control: ControlPeer,
    /// Peer-map changes, for connections and the control plane's device.
    pub events: tokio::sync::broadcast::Sender<PeerEvent>,
    /// Nodes with an open connection, and where it comes from.
    pub online: Mutex<std::collections::HashMap<String, SocketAddr>>,
    /// Each node's latest path report (the control plane's own under
    /// [`CONTROL_NAME`]), and when it came.
    pub reports: Mutex<std::collections::HashMap<String, (SystemTime, Report)>>,
    /// The embedded relay, told at once when a node is removed.
    pub revoker: Option<warren_relay::Revoker>,
    /// How long the relay tickets it hands out last.
    pub ticket_lifetime: Duration,
}

/// Why a node could not be removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    /// No node has that name.
    #[error("no node is called {0:?} (see `warren nodes`)")]
    Unknown(String),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A lock was poisoned by a panic.
    #[error("internal error: the node registry is unusable")]
    Poisoned,
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn refused(reason: String) -> ControlMessage {
    ControlMessage::Refused { reason }
}

impl Admissions {
    /// The answer to `hello` at `now`: a welcome (the node is stored
    /// first) with the node admitted, or a refusal that changed nothing.
    pub fn answer(&self, hello: &Hello, now: u64) -> (ControlMessage, Option<NodeRecord>) {
        match self.admit(hello, now) {
            Ok((node, credential)) => {
                let welcome = self.welcome(&node, credential, now);
                (ControlMessage::Welcome(welcome), Some(node))
            }
            Err(reason) => (refused(reason), None),
        }
    }

    fn admit(&self, hello: &Hello, now: u64) -> Result<(NodeRecord, Option<String>), String> {
        if hello.version != PROTOCOL_VERSION {
            return Err(format!(
                "this agent speaks protocol version {}, the control plane version {PROTOCOL_VERSION}: run the same warren release on both",
                hello.version
            ));
        }
        let public_key = STANDARD
            .decode(&hello.public_key)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .ok_or("the agent's WireGuard public key is not 32 bytes of base64")?;
        let mode = hello
            .mode
            .parse::<Mode>()
            .map_err(|()| format!("unknown join mode {:?}: direct or relay", hello.mode))?;
        match &hello.auth {
            Auth::Token { id, secret } => self.join(hello, public_key, mode, id, secret, now),
            Auth::Credential { secret } => self.rejoin(hello, public_key, mode, secret),
        }
    }

    /// Removes the node `name`: from the store first, then the registry
    /// (its address is free again), and tells everyone (its own connection
    /// closes, the others and the control plane's device drop it).
    pub fn remove(&self, name: &str) -> Result<NodeRecord, RemoveError> {
        let mut registry = self.registry.lock().map_err(|_| RemoveError::Poisoned)?;
        if registry.get(name).is_none() {
            return Err(RemoveError::Unknown(name.to_owned()));
        }
        let store = self.store.lock().map_err(|_| RemoveError::Poisoned)?;
        store.remove_node(name)?;
        let node = registry
            .remove(name)
            .ok_or_else(|| RemoveError::Unknown(name.to_owned()))?;
        let _ = self.events.send(PeerEvent::Left(node.clone()));
        if let Some(revoker) = &self.revoker {
            // Longer than any ticket the node may still hold.
            revoker.revoke(NodeKey(node.public_key), self.ticket_lifetime * 2);
        }
        if let Ok(mut reports) = self.reports.lock() {
            reports.remove(name);
        }
        tracing::info!(%name, mesh_ip = %node.mesh_ip, "node removed");
        Ok(node)
    }

    fn join(
        &self,
        hello: &Hello,
        public_key: [u8; 32],
        mode: Mode,
        id: &str,
        secret: &str,
        now: u64,
    ) -> Result<(NodeRecord, Option<String>), String> {
        let invalid = || "the join token is not valid for this control plane".to_owned();
        let id = crate::tokens::parse_id(id).ok_or_else(invalid)?;
        let secret: [u8; 32] = URL_SAFE_NO_PAD
            .decode(secret)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(invalid)?;
        let mut random = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
            .map_err(|_| "the control plane has no randomness".to_owned())?;
        let request = JoinRequest {
            name: hello.name.clone(),
            public_key,
            mode,
            private_address: hello.private_address,
            wg_port: hello.wg_port,
        };
        let mut registry = self
            .registry
            .lock()
            .map_err(|_| "internal error".to_owned())?;
        let node = registry
            .plan_join(&request, secret_sha256(&random), now)
            .map_err(|error| error.to_string())?;
        let mut store = self.store.lock().map_err(|_| "internal error".to_owned())?;
        store
            .join(&id, &secret, &node, now)
            .map_err(|error| match error {
                RedeemError::Refused(refused) => refused.to_string(),
                RedeemError::Store(error) => {
                    tracing::error!(%error, "storing a join");
                    "the control plane could not store the join; try again".to_owned()
                }
            })?;
        registry
            .insert(node.clone())
            .map_err(|error| error.to_string())?;
        tracing::info!(name = %node.name, mesh_ip = %node.mesh_ip, mode = mode.as_str(), "node joined");
        Ok((node, Some(URL_SAFE_NO_PAD.encode(random))))
    }

    fn rejoin(
        &self,
        hello: &Hello,
        public_key: [u8; 32],
        mode: Mode,
        secret: &str,
    ) -> Result<(NodeRecord, Option<String>), String> {
        let unknown = "this node's credential is not known here (was it removed with `warren node rm`?): join again with a new token".to_owned();
        let secret: [u8; 32] = URL_SAFE_NO_PAD
            .decode(secret)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| unknown.clone())?;
        let hash = secret_sha256(&secret);
        let mut registry = self
            .registry
            .lock()
            .map_err(|_| "internal error".to_owned())?;
        let stored = registry
            .nodes()
            .find(|n| n.credential_sha256 == hash)
            .cloned()
            .ok_or(unknown)?;
        if stored.public_key != public_key {
            return Err(format!(
                "node {:?} joined with another WireGuard key: a node cannot change or claim keys",
                stored.name
            ));
        }
        // A node may come back with a new mode, private address or port:
        // stored first, then every peer hears of it (the welcome's event).
        let node = NodeRecord {
            mode,
            private_address: hello.private_address,
            wg_port: hello.wg_port,
            ..stored.clone()
        };
        if node != stored {
            if node.mode == Mode::Direct && node.private_address.is_none() {
                return Err(JoinRefused::NoPrivateAddress.to_string());
            }
            let store = self.store.lock().map_err(|_| "internal error".to_owned())?;
            store.update_node(&node).map_err(|error| {
                tracing::error!(%error, "storing a rejoin");
                "the control plane could not store the rejoin; try again".to_owned()
            })?;
            registry.replace(node.clone());
            tracing::info!(name = %node.name, mode = node.mode.as_str(), "node rejoined with new details");
        }
        tracing::info!(name = %node.name, mesh_ip = %node.mesh_ip, "node rejoined");
        Ok((node, None))
    }

    fn welcome(&self, node: &NodeRecord, credential: Option<String>, now: u64) -> Welcome {
        let ticket = self.signing_key.mint(
            NodeKey(node.public_key),
            now + self.ticket_lifetime.as_secs(),
        );
        let mut peers = vec![Peer {
            name: CONTROL_NAME.to_owned(),
            public_key: STANDARD.encode(self.control.public_key),
            mesh_ip: self.control.mesh_ip,
            mode: "control".to_owned(),
            endpoints: self.control.endpoints.clone(),
        }];
        if let Ok(registry) = self.registry.lock() {
            peers.extend(
                registry
                    .nodes()
                    .filter(|n| n.name != node.name)
                    .map(peer_of),
            );
        }
        Welcome {
            name: node.name.clone(),
            mesh_ip: node.mesh_ip,
            mesh_prefix: self.mesh.netmask(),
            credential,
            relays: self.relays.clone(),
            ticket: ticket.to_base64(),
            peers,
        }
    }
}

/// A node as a peer of the others: direct nodes at their private address.
pub fn peer_of(node: &NodeRecord) -> Peer {
    Peer {
        name: node.name.clone(),
        public_key: STANDARD.encode(node.public_key),
        mesh_ip: node.mesh_ip,
        mode: node.mode.as_str().to_owned(),
        endpoints: node
            .private_address
            .map(|ip: IpAddr| SocketAddr::new(ip, node.wg_port))
            .into_iter()
            .collect(),
    }
}

/// The QUIC server configuration: the data directory's certificate, ALPN
/// [`ALPN`], TLS 1.3 with ring.
pub fn server_config(cert: &[u8], key: &[u8]) -> Result<quinn::ServerConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| error.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(cert.to_vec())],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.to_vec().into()),
        )
        .map_err(|error| error.to_string())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|error| error.to_string())?;
    Ok(quinn::ServerConfig::with_crypto(Arc::new(crypto)))
}

/// Accepts agents until the endpoint closes.
pub async fn serve(endpoint: quinn::Endpoint, admissions: Arc<Admissions>) {
    while let Some(incoming) = endpoint.accept().await {
        let admissions = Arc::clone(&admissions);
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            if let Err(error) = connection(incoming, admissions).await {
                tracing::debug!(%remote, %error, "agent connection ended");
            }
        });
    }
}

/// A change to the peer map, for every connected agent and the control
/// plane's own device.
#[derive(Debug, Clone)]
pub enum PeerEvent {
    /// A node joined or rejoined.
    Joined(NodeRecord),
    /// A node was removed.
    Left(NodeRecord),
    /// A node reported new NAT traversal candidates.
    Candidates {
        /// The node.
        node: NodeRecord,
        /// Its candidates, likeliest first.
        candidates: Vec<SocketAddr>,
    },
}

/// One agent: its hello, the answer, then the peer-map changes until the
/// agent goes.
async fn connection(incoming: quinn::Incoming, admissions: Arc<Admissions>) -> Result<(), String> {
    let connection = incoming.await.map_err(|error| error.to_string())?;
    let (mut send, mut recv) = tokio::time::timeout(HELLO_TIMEOUT, connection.accept_bi())
        .await
        .map_err(|_| "no hello in time".to_owned())?
        .map_err(|error| error.to_string())?;
    let hello: Hello = tokio::time::timeout(HELLO_TIMEOUT, read_frame(&mut recv))
        .await
        .map_err(|_| "no hello in time".to_owned())??;
    // Subscribed before answering, so no change between the welcome's peer
    // map and the first update is missed.
    let mut events = admissions.events.subscribe();
    let (answer, admitted) = admissions.answer(&hello, now_unix());
    write_frame(&mut send, &answer).await?;
    let Some(node) = admitted else {
        send.finish().map_err(|error| error.to_string())?;
        // Let the refusal reach the agent before the connection goes.
        let _ = send.stopped().await;
        return Ok(());
    };
    let _ = admissions.events.send(PeerEvent::Joined(node.clone()));
    if let Ok(mut online) = admissions.online.lock() {
        online.insert(node.name.clone(), connection.remote_address());
    }
    let reader = tokio::spawn(read_reports(
        recv,
        Arc::clone(&admissions),
        node.name.clone(),
    ));
    let ended = follow(&connection, &mut send, &mut events, &node, &admissions).await;
    reader.abort();
    if let Ok(mut online) = admissions.online.lock() {
        online.remove(&node.name);
    }
    ended
}

/// Keeps the latest path report of `name` until its stream ends.
async fn read_reports(mut recv: quinn::RecvStream, admissions: Arc<Admissions>, name: String) {
    loop {
        match read_frame::<Report>(&mut recv).await {
            Ok(report) => {
                let candidates = report.candidates.clone();
                let previous = admissions.reports.lock().ok().and_then(|mut reports| {
                    reports
                        .insert(name.clone(), (SystemTime::now(), report))
                        .map(|(_, old)| old.candidates)
                });
                if !candidates.is_empty() && previous.as_ref() != Some(&candidates) {
                    let node = admissions
                        .registry
                        .lock()
                        .ok()
                        .and_then(|registry| registry.get(&name).cloned());
                    if let Some(node) = node {
                        let _ = admissions
                            .events
                            .send(PeerEvent::Candidates { node, candidates });
                    }
                }
            }
            Err(error) => {
                tracing::debug!(%name, %error, "path reports ended");
                return;
            }
        }
    }
}

/// The candidates every other node last reported, for an agent that just
/// connected.
fn known_candidates(admissions: &Admissions, name: &str) -> Vec<ControlMessage> {
    let Ok(reports) = admissions.reports.lock() else {
        return Vec::new();
    };
    let Ok(registry) = admissions.registry.lock() else {
        return Vec::new();
    };
    reports
        .iter()
        .filter(|(other, (_, report))| other.as_str() != name && !report.candidates.is_empty())
        .filter_map(|(other, (_, report))| {
            let node = registry.get(other)?;
            Some(ControlMessage::Candidates {
                public_key: STANDARD.encode(node.public_key),
                candidates: report.candidates.clone(),
            })
        })
        .collect()
}

/// Pushes peer-map changes to one joined agent until it goes, or until it
/// is removed (its connection is then closed with the reason).
async fn follow(
    connection: &quinn::Connection,
    send: &mut quinn::SendStream,
    events: &mut tokio::sync::broadcast::Receiver<PeerEvent>,
    node: &NodeRecord,
    admissions: &Admissions,
) -> Result<(), String> {
    for update in known_candidates(admissions, &node.name) {
        write_frame(send, &update).await?;
    }
    let renewal = admissions.ticket_lifetime / 3;
    let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + renewal, renewal);
    loop {
        tokio::select! {
            _ = renewals.tick() => {
                let expires = now_unix() + admissions.ticket_lifetime.as_secs();
                let ticket = admissions.signing_key.mint(NodeKey(node.public_key), expires);
                let renewal = ControlMessage::Ticket { ticket: ticket.to_base64() };
                write_frame(send, &renewal).await?;
            },
            event = events.recv() => {
                let update = match event {
                    Ok(PeerEvent::Joined(other)) if other.name != node.name => ControlMessage::Peers {
                        added: vec![peer_of(&other)],
                        removed: Vec::new(),
                    },
                    Ok(PeerEvent::Left(other)) if other.name == node.name => {
                        connection.close(warren_proto::REMOVED_CODE.into(), b"this node was removed from the cluster");
                        return Ok(());
                    }
                    Ok(PeerEvent::Left(other)) => ControlMessage::Peers {
                        added: Vec::new(),
                        removed: vec![STANDARD.encode(other.public_key)],
                    },
                    Ok(PeerEvent::Candidates { node: other, candidates }) if other.name != node.name => {
                        ControlMessage::Candidates {
                            public_key: STANDARD.encode(other.public_key),
                            candidates,
                        }
                    }
                    Ok(PeerEvent::Joined(_) | PeerEvent::Candidates { .. }) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        return Err(format!("{missed} peer-map updates missed; the agent reconnects"));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                };
                write_frame(send, &update).await?;
            },
            _ = connection.closed() => return Ok(()),
        }
    }
}

async fn write_frame(send: &mut quinn::SendStream, message: &ControlMessage) -> Result<(), String> {
    let frame = warren_proto::encode(message).map_err(|error| error.to_string())?;
    send.write_all(&frame)
        .await
        .map_err(|error| error.to_string())
}

/// Reads one frame from `recv`.
pub async fn read_frame<T: for<'de> serde::Deserialize<'de>>(
    recv: &mut quinn::RecvStream,
) -> Result<T, String> {
    let mut header = [0u8; 4];
    recv.read_exact(&mut header)
        .await
        .map_err(|error| error.to_string())?;
    let len = warren_proto::frame_len(header).map_err(|error| error.to_string())?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|error| error.to_string())?;
    warren_proto::decode(&body).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::Allocator;
    use crate::tokens::TokenRecord;

    fn admissions(name: &str) -> (Admissions, String, String) {
        let dir = std::env::temp_dir().join(format!("warren-admit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("state.db")).unwrap();
        let (token, secret) =
            TokenRecord::issue(now_unix(), Duration::from_secs(600), 5, [3; 40]).unwrap();
        store.insert_token(&token).unwrap();
        let mesh: Ipv4Network = "100.96.0.0/24".parse().unwrap();
        let admissions = Admissions {
            store: Arc::new(Mutex::new(store)),
            registry: Arc::new(Mutex::new(Registry::new(Allocator::new(mesh).unwrap()))),
            signing_key: SigningKey::from_seed(&[1; 32]).unwrap(),
            relays: Vec::new(),
            mesh,
            control: ControlPeer {
                public_key: [9; 32],
                mesh_ip: "100.96.0.1".parse().unwrap(),
                endpoints: Vec::new(),
            },
            events: tokio::sync::broadcast::channel(4).0,
            online: Mutex::new(std::collections::HashMap::new()),
            reports: Mutex::new(std::collections::HashMap::new()),
            revoker: None,
            ticket_lifetime: DEFAULT_TICKET_LIFETIME,
        };
        (admissions, token.id_hex(), URL_SAFE_NO_PAD.encode(secret))
    }

    fn hello(id: &str, secret: &str, key: u8) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            auth: Auth::Token {
                id: id.to_owned(),
                secret: secret.to_owned(),
            },
            name: "pi".to_owned(),
            public_key: STANDARD.encode([key; 32]),
            mode: "relay".to_owned(),
            private_address: None,
            wg_port: 51820,
        }
    }

    fn refusal(answer: &ControlMessage) -> &str {
        match answer {
            ControlMessage::Refused { reason } => reason,
            other => panic!("admitted: {other:?}"),
        }
    }

    /// Every bad hello gets one clear line and leaves no trace: no node,
    /// no token use.
    #[test]
    fn bad_hellos_are_refused_and_change_nothing() {
        let (admissions, id, secret) = admissions("bad");
        let now = now_unix();
        let mut wrong_version = hello(&id, &secret, 1);
        wrong_version.version = 2;
        let mut bad_key = hello(&id, &secret, 1);
        bad_key.public_key = "short".to_owned();
        let mut bad_mode = hello(&id, &secret, 1);
        bad_mode.mode = "teleport".to_owned();
        let mut bad_name = hello(&id, &secret, 1);
        bad_name.name = "Pi!".to_owned();
        let cases = [
            (wrong_version, "protocol version 2"),
            (bad_key, "public key"),
            (bad_mode, "teleport"),
            (bad_name, "invalid node name"),
            (hello(&id, "AAAA", 1), "not valid for this control plane"),
            (hello("zz", &secret, 1), "not valid for this control plane"),
        ];
        for (hello, expected) in cases {
            let (answer, admitted) = admissions.answer(&hello, now);
            assert!(refusal(&answer).contains(expected), "{answer:?}");
            assert!(admitted.is_none());
        }
        let store = admissions.store.lock().unwrap();
        assert!(store.nodes().unwrap().is_empty());
        assert_eq!(store.tokens().unwrap()[0].used, 0);
    }

    /// A rejoin proves the credential and cannot bring another key.
    #[test]
    fn a_rejoin_needs_the_credential_and_the_same_key() {
        let (admissions, id, secret) = admissions("rejoin");
        let now = now_unix();
        let (answer, admitted) = admissions.answer(&hello(&id, &secret, 1), now);
        let ControlMessage::Welcome(welcome) = answer else {
            panic!("{answer:?}");
        };
        let first = admitted.unwrap();
        let credential = welcome.credential.unwrap();
        let rejoin = |key: u8, secret: &str| Hello {
            auth: Auth::Credential {
                secret: secret.to_owned(),
            },
            ..hello("", "", key)
        };
        let (again, _) = admissions.answer(&rejoin(1, &credential), now);
        let ControlMessage::Welcome(again) = again else {
            panic!("{again:?}");
        };
        assert_eq!((again.mesh_ip, again.credential), (first.mesh_ip, None));
        let (stolen, _) = admissions.answer(&rejoin(2, &credential), now);
        assert!(
            refusal(&stolen).contains("cannot change or claim keys"),
            "{stolen:?}"
        );
        let (forged, _) = admissions.answer(&rejoin(1, "AAAA"), now);
        assert!(refusal(&forged).contains("not known here"), "{forged:?}");
    }

    /// A node that comes back with other details (now `--direct` at a
    /// private address) is stored with them, keeping its name and address.
    #[test]
    fn a_rejoin_with_new_details_updates_the_node() {
        let (admissions, id, secret) = admissions("update");
        let now = now_unix();
        let (answer, first) = admissions.answer(&hello(&id, &secret, 1), now);
        let ControlMessage::Welcome(welcome) = answer else {
            panic!("{answer:?}");
        };
        let first = first.unwrap();
        let credential = welcome.credential.unwrap();
        let direct = |private_address: Option<std::net::IpAddr>| Hello {
            auth: Auth::Credential {
                secret: credential.clone(),
            },
            mode: "direct".to_owned(),
            private_address,
            ..hello("", "", 1)
        };
        let (refused_answer, _) = admissions.answer(&direct(None), now);
        assert!(refusal(&refused_answer).contains("--private-address"));
        let private = "10.0.0.9".parse().unwrap();
        let (_, updated) = admissions.answer(&direct(Some(private)), now);
        let updated = updated.unwrap();
        assert_eq!(
            (updated.mode, updated.private_address),
            (Mode::Direct, Some(private))
        );
        assert_eq!(
            (&updated.name, updated.mesh_ip),
            (&first.name, first.mesh_ip)
        );
        let stored = admissions.store.lock().unwrap().nodes().unwrap();
        assert_eq!(stored, vec![updated]);
    }
}
