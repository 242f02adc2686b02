//! `warren join`: connect to the control plane (its certificate pinned),
//! join with a token or rejoin with the stored credential, bring up the
//! mesh device with the peer map and relay ticket it hands out, say
//! `joined …` once the mesh is usable, then follow peer-map updates until
//! told to stop.

use crate::pinned;
use crate::state::{AgentDir, Joined, StateError};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ip_network::Ipv4Network;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warren_device::netlink::IfAddress;
use warren_device::paths;
use warren_device::{Device, DeviceHandle, DeviceOptions};
use warren_mesh::PeerKey;
use warren_proto::{
    Auth, ControlMessage, Hello, PathReport, Peer, PeerStatus, Report, Status, Welcome,
    PROTOCOL_VERSION,
};
use warren_uapi::{IpNetwork, Key, PeerChange, SetRequest};
use warren_wire::join_token::hex_of;
use warren_wire::{JoinToken, Ticket};

/// How long the agent tries to reach the control plane.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the mesh may take to become usable after the welcome.
const USABLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The first wait before reconnecting to the control plane.
const RECONNECT_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between reconnection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// How often the agent reports its paths to the control plane.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Keepalive for every peer: keeps NAT mappings open and paths probed.
const PERSISTENT_KEEPALIVE: u16 = 25;

/// How the node joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinMode {
    /// On a private network, reachable at this address.
    Direct(IpAddr),
    /// Behind NAT, through relays.
    Relay,
}

/// Everything `warren join` is told.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// Where the key and the joined state live.
    pub data_dir: PathBuf,
    /// The join token (needed for a first join only).
    pub token: Option<JoinToken>,
    /// How it joins.
    pub mode: JoinMode,
    /// The node name asked for.
    pub name: String,
    /// The WireGuard UDP port.
    pub wg_port: u16,
    /// The mesh interface's name.
    pub iface: String,
}

/// Why the agent could not join or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The data directory.
    #[error(transparent)]
    State(#[from] StateError),
    /// Neither a stored credential nor a token.
    #[error("this node has not joined yet: pass --token (from `warren token create` on the control plane)")]
    NoToken,
    /// The control plane could not be reached.
    #[error("cannot reach the control plane at {addrs}: {reason}")]
    Unreachable {
        /// Where it was tried.
        addrs: String,
        /// The last error.
        reason: String,
    },
    /// The control plane said no.
    #[error("{0}")]
    Refused(String),
    /// The control plane broke the protocol.
    #[error("the control plane's answer: {0}")]
    Protocol(String),
    /// The mesh device.
    #[error(transparent)]
    Device(#[from] warren_device::DeviceError),
    /// `warren node rm` removed this node.
    #[error(
        "this node was removed from the cluster (`warren node rm`); join again with a new token"
    )]
    Removed,
    /// The mesh did not become usable.
    #[error("the mesh did not come up within {0:?}: {1}")]
    NotUsable(Duration, String),
}

/// What `warren join` reports once the mesh is usable.
#[derive(Debug, Clone)]
pub struct Usable {
    /// The node's name.
    pub name: String,
    /// Its mesh address.
    pub mesh_ip: Ipv4Addr,
    /// `direct` or `relay`.
    pub mode: String,
}

/// Joins and runs until `shutdown`; `usable` hears once the mesh works.
pub async fn run(
    options: JoinOptions,
    usable: impl FnOnce(&Usable),
    shutdown: impl Future<Output = ()>,
) -> Result<(), JoinError> {
    let dir = AgentDir::open(&options.data_dir)?;
    let private_key = dir.wireguard_key()?;
    let public_key = PeerKey::of_private(private_key);
    let stored = dir.joined()?;
    let (auth, control, pin) = match (&stored, &options.token) {
        (Some(joined), _) => (
            Auth::Credential {
                secret: joined.credential.clone(),
            },
            joined.control.clone(),
            parse_pin(&joined.cert_sha256).ok_or_else(|| {
                JoinError::Protocol("the stored certificate pin is malformed".to_owned())
            })?,
        ),
        (None, Some(token)) => (
            Auth::Token {
                id: token.id_hex(),
                secret: URL_SAFE_NO_PAD.encode(token.secret),
            },
            token.control.clone(),
            token.cert_sha256,
        ),
        (None, None) => return Err(JoinError::NoToken),
    };
    let (mode, private_address) = match options.mode {
        JoinMode::Direct(ip) => ("direct", Some(ip)),
        JoinMode::Relay => ("relay", None),
    };
    let hello = Hello {
        version: PROTOCOL_VERSION,
        auth,
        name: options.name.clone(),
        public_key: public_key.to_base64(),
        mode: mode.to_owned(),
        private_address,
        wg_port: options.wg_port,
    };
    let (mut link, welcome) = hello_welcome(&control, pin, &hello).await?;
    let joined = Joined {
        name: welcome.name.clone(),
        mesh_ip: welcome.mesh_ip,
        mode: mode.to_owned(),
        credential: match (&welcome.credential, &stored) {
            (Some(credential), _) => credential.clone(),
            (None, Some(stored)) => stored.credential.clone(),
            (None, None) => {
                return Err(JoinError::Protocol(
                    "a first join without a credential".to_owned(),
                ))
            }
        },
        control: control.clone(),
        cert_sha256: hex_of(&pin),
    };
    dir.save_joined(&joined)?;

    let device = bring_up(&options, private_key, &welcome).await?;
    let handle = device.handle();
    let (stop_device, device_stopped) = tokio::sync::oneshot::channel::<()>();
    let device_task = tokio::spawn(device.run(async {
        let _ = device_stopped.await;
    }));
    let control_key = welcome
        .peers
        .first()
        .map(|peer| peer.public_key.clone())
        .ok_or_else(|| JoinError::Protocol("no control plane in the peer map".to_owned()))?;
    wait_usable(&handle, &control_key).await?;
    usable(&Usable {
        name: welcome.name.clone(),
        mesh_ip: welcome.mesh_ip,
        mode: mode.to_owned(),
    });

    let echo = paths::echo_responder(welcome.mesh_ip)
        .await
        .map_err(|e| JoinError::NotUsable(USABLE_TIMEOUT, format!("the mesh echo: {e}")))?;
    let mut peers = HashMap::new();
    track(&mut peers, &welcome.peers, &[]);
    let relays = welcome.relays.clone();
    let mut reports = tokio::time::interval(REPORT_INTERVAL);
    let mut last_report: Option<Report> = None;
    // From now on the agent rejoins with its credential.
    let hello = Hello {
        auth: Auth::Credential {
            secret: joined.credential.clone(),
        },
        ..hello
    };
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            _ = reports.tick() => {
                if let Some(report) = report(&handle, &relays, &peers).await {
                    let view = status(&welcome, mode, &options.iface, &peers, &report, true);
                    if let Err(error) = dir.save_status(&view) {
                        tracing::warn!(%error, "writing the status file");
                    }
                    last_report = Some(report.clone());
                    match warren_proto::encode(&report) {
                        Ok(frame) => {
                            if let Err(error) = link.send.write_all(&frame).await {
                                tracing::debug!(%error, "sending a path report");
                            }
                        }
                        Err(error) => tracing::warn!(%error, "encoding a path report"),
                    }
                }
            },
            update = next_update(&mut link.updates) => match update {
                Ok(ControlMessage::Peers { added, removed }) => {
                    track(&mut peers, &added, &removed);
                    if let Err(error) = handle.set(peer_changes(&added, &removed)).await {
                        tracing::warn!(%error, "applying a peer-map update");
                    }
                    tracing::info!(added = added.len(), removed = removed.len(), "peer map updated");
                }
                Ok(ControlMessage::Candidates { public_key, candidates }) => {
                    if let Some(key) = decode_key(&public_key) {
                        tracing::debug!(peer = %public_key, ?candidates, "peer candidates from the control plane");
                        if let Err(error) = handle.set_peer_candidates(PeerKey(key), candidates).await {
                            tracing::debug!(%error, "a peer's candidates");
                        }
                    }
                }
                Ok(ControlMessage::Ticket { ticket }) => match Ticket::from_base64(&ticket) {
                    Ok(ticket) => match handle.renew_relay_ticket(ticket).await {
                        Ok(()) => tracing::debug!("relay ticket renewed"),
                        Err(error) => tracing::warn!(%error, "renewing the relay ticket"),
                    },
                    Err(_) => tracing::warn!("the control plane sent a malformed relay ticket"),
                },
                Ok(other) => tracing::debug!(?other, "unexpected message"),
                Err(error) => {
                    if was_removed(&link.connection) {
                        break Err(JoinError::Removed);
                    }
                    tracing::warn!(%error, "lost the control plane; the mesh keeps running, reconnecting");
                    if let Some(report) = &last_report {
                        let view = status(&welcome, mode, &options.iface, &peers, report, false);
                        if let Err(error) = dir.save_status(&view) {
                            tracing::warn!(%error, "writing the status file");
                        }
                    }
                    tokio::select! {
                        () = &mut shutdown => break Ok(()),
                        relinked = reconnect(&control, pin, &hello) => match relinked {
                            Ok((new_link, welcome)) => {
                                link = new_link;
                                track(&mut peers, &welcome.peers, &[]);
                                if let Err(error) = handle.set(peer_changes(&welcome.peers, &[])).await {
                                    tracing::warn!(%error, "applying the peer map after reconnecting");
                                }
                                tracing::info!("reconnected to the control plane");
                            }
                            Err(error) => break Err(error),
                        },
                    }
                }
            },
        }
    };
    link.connection.close(0u32.into(), b"bye");
    echo.abort();
    let _ = stop_device.send(());
    let _ = device_task.await;
    outcome
}

/// An open connection to the control plane and its stream.
struct Link {
    connection: quinn::Connection,
    send: quinn::SendStream,
    /// What the control plane sends after the welcome, read by a task of
    /// its own (a frame read cut short by `select!` would lose bytes).
    updates: tokio::sync::mpsc::Receiver<Result<ControlMessage, JoinError>>,
}

/// The next message from the control plane; an error once it is gone.
async fn next_update(
    updates: &mut tokio::sync::mpsc::Receiver<Result<ControlMessage, JoinError>>,
) -> Result<ControlMessage, JoinError> {
    updates
        .recv()
        .await
        .unwrap_or_else(|| Err(JoinError::Protocol("the connection ended".to_owned())))
}

/// Connects, says hello and reads the answer.
async fn hello_welcome(
    control: &[SocketAddr],
    pin: [u8; 32],
    hello: &Hello,
) -> Result<(Link, Welcome), JoinError> {
    let (connection, mut send, mut recv) = connect(control, pin).await?;
    let frame = warren_proto::encode(hello).map_err(|e| JoinError::Protocol(e.to_string()))?;
    send.write_all(&frame)
        .await
        .map_err(|e| JoinError::Protocol(e.to_string()))?;
    match read_frame(&mut recv).await? {
        ControlMessage::Welcome(welcome) => {
            let (forward, updates) = tokio::sync::mpsc::channel(16);
            tokio::spawn(async move {
                loop {
                    let message = read_frame(&mut recv).await;
                    let ended = message.is_err();
                    if forward.send(message).await.is_err() || ended {
                        return;
                    }
                }
            });
            Ok((
                Link {
                    connection,
                    send,
                    updates,
                },
                welcome,
            ))
        }
        ControlMessage::Refused { reason } => Err(JoinError::Refused(reason)),
        ControlMessage::Peers { .. }
        | ControlMessage::Ticket { .. }
        | ControlMessage::Candidates { .. } => Err(JoinError::Protocol(
            "an update before the welcome".to_owned(),
        )),
    }
}

/// Tries again and again (1 s, doubling to 30 s) until the control plane
/// welcomes the node back; a refusal (the node was removed meanwhile) ends it.
async fn reconnect(
    control: &[SocketAddr],
    pin: [u8; 32],
    hello: &Hello,
) -> Result<(Link, Welcome), JoinError> {
    let mut wait = RECONNECT_FIRST;
    loop {
        tokio::time::sleep(wait).await;
        match hello_welcome(control, pin, hello).await {
            Ok(linked) => return Ok(linked),
            Err(JoinError::Refused(reason)) => return Err(JoinError::Refused(reason)),
            Err(error) => tracing::debug!(%error, "reconnecting"),
        }
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

/// Whether the control plane closed the connection because the node was removed.
fn was_removed(connection: &quinn::Connection) -> bool {
    matches!(
        connection.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(close))
            if close.error_code == quinn::VarInt::from_u32(warren_proto::REMOVED_CODE)
    )
}

fn parse_pin(hex: &str) -> Option<[u8; 32]> {
    let mut pin = [0u8; 32];
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    for (i, byte) in pin.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(pin)
}

/// Connects to the first control address that answers.
async fn connect(
    control: &[SocketAddr],
    pin: [u8; 32],
) -> Result<(quinn::Connection, quinn::SendStream, quinn::RecvStream), JoinError> {
    let addrs = control
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let unreachable = |reason: String| JoinError::Unreachable {
        addrs: addrs.clone(),
        reason,
    };
    let config = pinned::client_config(pin).map_err(unreachable)?;
    let mut last = "no address to try".to_owned();
    for addr in control {
        let bind: SocketAddr = if addr.is_ipv6() {
            "[::]:0"
                .parse()
                .map_err(|_| unreachable("bad bind".to_owned()))?
        } else {
            "0.0.0.0:0"
                .parse()
                .map_err(|_| unreachable("bad bind".to_owned()))?
        };
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| unreachable(e.to_string()))?;
        endpoint.set_default_client_config(config.clone());
        let attempt = async {
            let connection = endpoint
                .connect(*addr, "warren-control")
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let (send, recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((connection, send, recv))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(connected)) => return Ok(connected),
            Ok(Err(error)) => last = error,
            Err(_) => last = format!("no answer within {CONNECT_TIMEOUT:?}"),
        }
    }
    Err(unreachable(last))
}

async fn read_frame(recv: &mut quinn::RecvStream) -> Result<ControlMessage, JoinError> {
    let protocol = |e: String| JoinError::Protocol(e);
    let mut header = [0u8; 4];
    recv.read_exact(&mut header)
        .await
        .map_err(|e| protocol(e.to_string()))?;
    let len = warren_proto::frame_len(header).map_err(|e| protocol(e.to_string()))?;
    let mut body = vec![0u8; len];
    recv.read_exact(&mut body)
        .await
        .map_err(|e| protocol(e.to_string()))?;
    warren_proto::decode(&body).map_err(|e| protocol(e.to_string()))
}

/// The mesh device with the welcome's address, peers, relays and ticket.
async fn bring_up(
    options: &JoinOptions,
    private_key: [u8; 32],
    welcome: &Welcome,
) -> Result<Device, JoinError> {
    let ticket = Ticket::from_base64(&welcome.ticket)
        .map_err(|_| JoinError::Protocol("the relay ticket is malformed".to_owned()))?;
    let mut config = peer_changes(&welcome.peers, &[]);
    config.private_key = Some(Some(Key(private_key)));
    config.listen_port = Some(options.wg_port);
    config.replace_peers = true;
    let mut device_options = DeviceOptions::new(options.iface.clone());
    device_options.addresses = vec![IfAddress {
        address: IpAddr::V4(welcome.mesh_ip),
        prefix_len: welcome.mesh_prefix,
    }];
    device_options.listen_port = options.wg_port;
    device_options.config = Some(config);
    device_options.relays = welcome.relays.clone();
    device_options.ticket = (!welcome.relays.is_empty()).then_some(ticket);
    Ok(Device::create(device_options).await?)
}

/// The UAPI changes that add `added` (replacing what the device had of
/// them) and remove `removed`.
fn peer_changes(added: &[Peer], removed: &[String]) -> SetRequest {
    let mut set = SetRequest::default();
    for peer in added {
        let Some(key) = decode_key(&peer.public_key) else {
            tracing::warn!(peer = %peer.name, "skipping a peer with a malformed key");
            continue;
        };
        set.peers.push(PeerChange {
            endpoint: peer.endpoints.first().copied(),
            persistent_keepalive_interval: Some(PERSISTENT_KEEPALIVE),
            replace_allowed_ips: true,
            allowed_ips: vec![IpNetwork::V4(Ipv4Network::from(peer.mesh_ip))],
            ..PeerChange::new(Key(key))
        });
    }
    for key in removed.iter().filter_map(|k| decode_key(k)) {
        set.peers.push(PeerChange {
            remove: true,
            ..PeerChange::new(Key(key))
        });
    }
    set
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    STANDARD
        .decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
}

/// Waits until the mesh is usable: the device is registered with every
/// relay, and has a session with the control plane (the persistent
/// keepalive starts the handshake at once).
async fn wait_usable(handle: &DeviceHandle, control_key: &str) -> Result<(), JoinError> {
    let Some(key) = decode_key(control_key) else {
        return Err(JoinError::Protocol(
            "the control plane's key is malformed".to_owned(),
        ));
    };
    let deadline = Instant::now() + USABLE_TIMEOUT;
    loop {
        let state = handle
            .state()
            .await
            .map_err(|e| JoinError::NotUsable(USABLE_TIMEOUT, e.to_string()))?;
        let handshake = state
            .peers
            .iter()
            .any(|peer| peer.public_key.0 == key && peer.last_handshake.is_some());
        let done = handshake
            && handle
                .relays_registered()
                .await
                .map_err(|e| JoinError::NotUsable(USABLE_TIMEOUT, e.to_string()))?;
        if done {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(JoinError::NotUsable(
                USABLE_TIMEOUT,
                "no WireGuard handshake with the control plane's mesh device, or a relay did not acknowledge the registration".to_owned(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The report of this node's paths, for the control plane.
async fn report(
    handle: &DeviceHandle,
    relays: &[SocketAddr],
    peers: &HashMap<[u8; 32], Peer>,
) -> Option<Report> {
    let mesh_ips = peers
        .iter()
        .map(|(key, peer)| (*key, peer.mesh_ip))
        .collect();
    let paths = paths::measure(handle, relays, &mesh_ips).await.ok()?;
    let candidates = handle.own_candidates().await.unwrap_or_default();
    Some(Report {
        candidates,
        paths: paths
            .into_iter()
            .map(|path| PathReport {
                public_key: STANDARD.encode(path.public_key),
                kind: path.kind.as_str().to_owned(),
                endpoint: path.endpoint,
                rtt_ms: path.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
                last_handshake_secs: path.since_handshake.map(|since| since.as_secs()),
                tx_bytes: path.tx_bytes,
                rx_bytes: path.rx_bytes,
            })
            .collect(),
    })
}

/// Keeps `peers` (by key) in step with the peer map.
fn track(peers: &mut HashMap<[u8; 32], Peer>, added: &[Peer], removed: &[String]) {
    for peer in added {
        if let Some(key) = decode_key(&peer.public_key) {
            peers.insert(key, peer.clone());
        }
    }
    for key in removed.iter().filter_map(|k| decode_key(k)) {
        peers.remove(&key);
    }
}

/// This node's view for `warren status`.
fn status(
    welcome: &Welcome,
    mode: &str,
    iface: &str,
    peers: &HashMap<[u8; 32], Peer>,
    report: &Report,
    connected: bool,
) -> Status {
    let mut listed: Vec<PeerStatus> = report
        .paths
        .iter()
        .filter_map(|path| {
            let peer = peers.get(&decode_key(&path.public_key)?)?;
            Some(PeerStatus {
                name: peer.name.clone(),
                mesh_ip: peer.mesh_ip,
                path: path.clone(),
            })
        })
        .collect();
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    Status {
        name: welcome.name.clone(),
        mesh_ip: welcome.mesh_ip,
        mode: mode.to_owned(),
        iface: iface.to_owned(),
        control_connected: connected,
        updated: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs()),
        peers: listed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_from_64_hex_digits() {
        assert_eq!(parse_pin(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(parse_pin("ab"), None);
        assert_eq!(parse_pin(&"zz".repeat(32)), None);
    }
}
