//! `warren serve`: the control plane's process. It loads (or creates) its
//! identities and state, checks the mesh CIDR, serves the admin API and,
//! unless told not to, an embedded relay that trusts its ticket-signing key.

use crate::agent_endpoint::{self, Admissions, ControlPeer, PeerEvent};
use crate::api::{self, ApiState};
use crate::identity::{Identity, IdentityError};
use crate::ipam::{AllocError, Allocator};
use crate::nodes::CONTROL_NAME;
use crate::nodes::{NodeRecord, Registry};
use crate::store::{Store, StoreError};
use base64::Engine as _;
use ip_network::Ipv4Network;
use std::collections::HashMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use warren_device::local_addresses;
use warren_device::netlink::IfAddress;
use warren_device::paths;
use warren_device::{Device, DeviceHandle, DeviceOptions};
use warren_proto::{PathReport, PeerStatus, Report, Status};
use warren_relay::{Server, ServerError, ServerOptions};
use warren_relay_proto::Config;
use warren_uapi::{IpNetwork, Key, PeerChange, SetRequest};
use warren_wire::NodeKey;

/// Everything `warren serve` is told.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where identities and state live.
    pub data_dir: PathBuf,
    /// The QUIC endpoint for agents.
    pub listen: SocketAddr,
    /// The admin API.
    pub api_listen: SocketAddr,
    /// The address agents reach the control plane at, when `listen` is a
    /// wildcard and the host's own addresses are not it (behind a NAT).
    pub advertise_address: Option<IpAddr>,
    /// The embedded relay's address; `None` runs none (`--no-relay`).
    pub relay_listen: Option<SocketAddr>,
    /// The mesh's address range.
    pub mesh_cidr: Ipv4Network,
    /// Standalone relays to use besides (or instead of) the embedded one.
    pub relays: Vec<SocketAddr>,
    /// The control plane's WireGuard port.
    pub wg_port: u16,
    /// Its mesh interface's name.
    pub iface: String,
    /// How long the relay tickets nodes get last (renewed every third).
    pub ticket_lifetime: std::time::Duration,
}

/// Why the control plane could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The data directory's identities.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The state database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The mesh CIDR.
    #[error(transparent)]
    MeshCidr(#[from] AllocError),
    /// The admin API's socket.
    #[error("cannot serve the admin API on {addr}: {source}")]
    Api {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The embedded relay.
    #[error("embedded relay: {0}")]
    Relay(#[from] ServerError),
    /// The mesh CIDR holds an address this host already has.
    #[error("the mesh CIDR {cidr} overlaps {address} on {interface}: pick a free range with --mesh-cidr")]
    MeshCidrInUse {
        /// The mesh CIDR.
        cidr: Ipv4Network,
        /// The host's address inside it.
        address: IpAddr,
        /// Its interface.
        interface: String,
    },
    /// The QUIC endpoint's TLS configuration.
    #[error("the QUIC endpoint's TLS configuration: {0}")]
    Tls(String),
    /// The QUIC endpoint's socket.
    #[error("cannot listen for agents on UDP {addr}: {source}")]
    Quic {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The control plane's own mesh device.
    #[error("the control plane's mesh device: {0}")]
    Device(#[from] warren_device::DeviceError),
    /// The mesh CIDR overlaps a route this host has.
    #[error("the mesh CIDR {cidr} overlaps the route to {route} on this host: pick a free range with --mesh-cidr")]
    MeshCidrRouted {
        /// The mesh CIDR.
        cidr: Ipv4Network,
        /// The route's destination.
        route: IpNetwork,
    },
    /// Nothing tells agents where the control plane is.
    #[error("cannot tell which address agents reach this host at: pass --advertise-address IP")]
    NoAdvertiseAddress,
}

/// What a running control plane says about itself once up.
#[derive(Debug, Clone)]
pub struct Started {
    /// The admin API's address.
    pub api: SocketAddr,
    /// The embedded relay's address, if any.
    pub relay: Option<SocketAddr>,
    /// Where join tokens send agents.
    pub control_addrs: Vec<SocketAddr>,
}

/// How often the control plane measures its own paths.
const OWN_REPORT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the control plane until `shutdown` completes; `started` hears once
/// everything listens.
pub async fn serve(
    options: ServeOptions,
    started: impl FnOnce(&Started),
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let identity = Identity::load_or_create(&options.data_dir)?;
    let store = Store::open(&identity.database())?;
    check_cidr_is_free(options.mesh_cidr).await?;
    let mut registry = Registry::new(Allocator::new(options.mesh_cidr)?);
    for node in store.nodes()? {
        registry.insert(node)?;
    }
    let control_addrs = advertised(&options)?;

    let api_listener = tokio::net::TcpListener::bind(options.api_listen)
        .await
        .map_err(|source| ServeError::Api {
            addr: options.api_listen,
            source,
        })?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| ServeError::Api {
            addr: options.api_listen,
            source,
        })?;
    let relay = match options.relay_listen {
        Some(listen) => Some(
            Server::bind(ServerOptions {
                listen,
                metrics: None,
                control_key: identity.control_key(),
                config: Config::default(),
            })
            .await?,
        ),
        None => None,
    };
    let relay_addr = relay.as_ref().and_then(|r| r.local_addr().ok());
    // Agents reach the embedded relay where they reach the control plane.
    let mut relays: Vec<SocketAddr> = relay_addr
        .zip(control_addrs.first())
        .map(|(relay, control)| SocketAddr::new(control.ip(), relay.port()))
        .into_iter()
        .collect();
    relays.extend(options.relays.iter().copied());

    let control_ip = registry.allocator().control_address();
    let device = control_device(&options, &identity, &registry, &relays).await?;
    let device_handle = device.handle();
    let endpoint = quinn::Endpoint::server(
        agent_endpoint::server_config(&identity.tls_cert, &identity.tls_key)
            .map_err(ServeError::Tls)?,
        options.listen,
    )
    .map_err(|source| ServeError::Quic {
        addr: options.listen,
        source,
    })?;

    let store = Arc::new(Mutex::new(store));
    let (events, _) = tokio::sync::broadcast::channel(256);
    let admissions = Arc::new(Admissions {
        store: Arc::clone(&store),
        registry: Arc::new(Mutex::new(registry)),
        signing_key: identity.signing_key(),
        relays: relays.clone(),
        mesh: options.mesh_cidr,
        control: ControlPeer {
            public_key: warren_mesh::PeerKey::of_private(identity.wireguard_key).0,
            mesh_ip: control_ip,
            endpoints: control_addrs
                .iter()
                .map(|addr| SocketAddr::new(addr.ip(), options.wg_port))
                .collect(),
        },
        events: events.clone(),
        online: Mutex::new(std::collections::HashMap::new()),
        reports: Mutex::new(std::collections::HashMap::new()),
        revoker: relay.as_ref().map(Server::revoker),
        ticket_lifetime: options.ticket_lifetime,
    });
    let state = Arc::new(ApiState {
        store,
        cluster: Arc::clone(&admissions),
        admin_token: identity.admin_token.clone(),
        cert_sha256: identity.cert_sha256(),
        control_addrs: control_addrs.clone(),
    });
    tracing::info!(
        data_dir = %options.data_dir.display(),
        mesh = %options.mesh_cidr,
        control_address = %control_ip,
        "control plane state loaded"
    );
    started(&Started {
        api: api_addr,
        relay: relay_addr,
        control_addrs,
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let relay_task = relay.map(|server| tokio::spawn(server.run(stopped(stop_rx.clone()))));
    let device_task = tokio::spawn(device.run(stopped(stop_rx.clone())));
    let echo = paths::echo_responder(control_ip)
        .await
        .map_err(|source| ServeError::Quic {
            addr: SocketAddr::new(IpAddr::V4(control_ip), paths::ECHO_PORT),
            source,
        })?;
    let me = Status {
        name: CONTROL_NAME.to_owned(),
        mesh_ip: control_ip,
        mode: CONTROL_NAME.to_owned(),
        iface: options.iface.clone(),
        control_connected: true,
        updated: 0,
        peers: Vec::new(),
    };
    let report_task = tokio::spawn(report_own_paths(
        Arc::clone(&admissions),
        device_handle.clone(),
        relays.clone(),
        me,
        options.data_dir.join(warren_proto::STATUS_FILE),
    ));
    let peers_task = tokio::spawn(follow_joins(events.subscribe(), device_handle));
    let agents_task = tokio::spawn(agent_endpoint::serve(endpoint.clone(), admissions));
    let api =
        axum::serve(api_listener, api::router(state)).with_graceful_shutdown(stopped(stop_rx));
    let api_task = tokio::spawn(async move { api.await });
    shutdown.await;
    endpoint.close(0u32.into(), b"control plane stopping");
    let _ = stop_tx.send(true);
    agents_task.abort();
    peers_task.abort();
    report_task.abort();
    echo.abort();
    if let Some(task) = relay_task {
        let _ = task.await;
    }
    if let Ok(Err(error)) = device_task.await {
        tracing::warn!(%error, "the mesh device stopped with an error");
    }
    if let Ok(Err(error)) = api_task.await {
        tracing::warn!(%error, "admin API stopped with an error");
    }
    tracing::info!("control plane stopped");
    Ok(())
}

/// The control plane's own mesh device: the CIDR's first address, every
/// stored node as a peer, registered with the relays.
async fn control_device(
    options: &ServeOptions,
    identity: &Identity,
    registry: &Registry,
    relays: &[SocketAddr],
) -> Result<Device, ServeError> {
    let mut config = SetRequest {
        private_key: Some(Some(Key(identity.wireguard_key))),
        listen_port: Some(options.wg_port),
        ..SetRequest::default()
    };
    config.peers = registry.nodes().map(node_peer).collect();
    let mut device = DeviceOptions::new(options.iface.clone());
    device.addresses = vec![IfAddress {
        address: IpAddr::V4(registry.allocator().control_address()),
        prefix_len: options.mesh_cidr.netmask(),
    }];
    device.listen_port = options.wg_port;
    device.config = Some(config);
    device.relays = relays.to_vec();
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
        + 10 * 365 * 24 * 3600;
    device.ticket = Some(identity.signing_key().mint(
        NodeKey(warren_mesh::PeerKey::of_private(identity.wireguard_key).0),
        expires,
    ));
    Ok(Device::create(device).await?)
}

/// A node as a peer of the control plane's device.
fn node_peer(node: &NodeRecord) -> PeerChange {
    PeerChange {
        endpoint: node
            .private_address
            .map(|ip| SocketAddr::new(ip, node.wg_port)),
        replace_allowed_ips: true,
        allowed_ips: vec![IpNetwork::V4(Ipv4Network::from(node.mesh_ip))],
        ..PeerChange::new(Key(node.public_key))
    }
}

/// Keeps the control plane's own device's peers in step with the nodes.
async fn follow_joins(
    mut events: tokio::sync::broadcast::Receiver<PeerEvent>,
    device: DeviceHandle,
) {
    loop {
        match events.recv().await {
            Ok(PeerEvent::Joined(node)) => {
                let set = SetRequest {
                    peers: vec![node_peer(&node)],
                    ..SetRequest::default()
                };
                if let Err(error) = device.set(set).await {
                    tracing::warn!(name = %node.name, %error, "adding a node to the control plane's device");
                }
            }
            Ok(PeerEvent::Left(node)) => {
                let set = SetRequest {
                    peers: vec![PeerChange {
                        remove: true,
                        ..PeerChange::new(Key(node.public_key))
                    }],
                    ..SetRequest::default()
                };
                if let Err(error) = device.set(set).await {
                    tracing::warn!(name = %node.name, %error, "removing a node from the control plane's device");
                }
            }
            Ok(PeerEvent::Candidates { node, candidates }) => {
                let key = warren_mesh::PeerKey(node.public_key);
                if let Err(error) = device.set_peer_candidates(key, candidates).await {
                    tracing::debug!(name = %node.name, %error, "a node's candidates");
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the control plane's device missed peer-map changes");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Measures the control plane's own paths every few seconds, as agents
/// do: for `warren mesh`, and in `DATA_DIR/status.json` for `warren status`.
async fn report_own_paths(
    admissions: Arc<Admissions>,
    device: DeviceHandle,
    relays: Vec<SocketAddr>,
    me: Status,
    status_path: PathBuf,
) {
    let mut tick = tokio::time::interval(OWN_REPORT_INTERVAL);
    loop {
        tick.tick().await;
        let nodes: HashMap<[u8; 32], (String, Ipv4Addr)> = match admissions.registry.lock() {
            Ok(registry) => registry
                .nodes()
                .map(|n| (n.public_key, (n.name.clone(), n.mesh_ip)))
                .collect(),
            Err(_) => return,
        };
        let mesh_ips = nodes.iter().map(|(key, (_, ip))| (*key, *ip)).collect();
        let Ok(measured) = paths::measure(&device, &relays, &mesh_ips).await else {
            continue;
        };
        let report = Report {
            paths: measured.iter().map(path_report).collect(),
            candidates: Vec::new(),
        };
        let peers = measured
            .iter()
            .zip(&report.paths)
            .filter_map(|(path, reported)| {
                let (name, mesh_ip) = nodes.get(&path.public_key)?;
                Some(PeerStatus {
                    name: name.clone(),
                    mesh_ip: *mesh_ip,
                    path: reported.clone(),
                })
            })
            .collect();
        let status = Status {
            updated: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
            peers,
            ..me.clone()
        };
        let written = serde_json::to_vec(&status)
            .map_err(std::io::Error::other)
            .and_then(|bytes| warren_proto::files::write_secret(&status_path, &bytes));
        if let Err(error) = written {
            tracing::warn!(%error, path = %status_path.display(), "writing the status file");
        }
        if let Ok(mut reports) = admissions.reports.lock() {
            reports.insert(CONTROL_NAME.to_owned(), (SystemTime::now(), report));
        }
    }
}

/// A measured path as the protocol reports it.
pub fn path_report(path: &paths::PeerPath) -> PathReport {
    PathReport {
        public_key: base64::engine::general_purpose::STANDARD.encode(path.public_key),
        kind: path.kind.as_str().to_owned(),
        endpoint: path.endpoint,
        rtt_ms: path.rtt.map(|rtt| rtt.as_secs_f64() * 1000.0),
        last_handshake_secs: path.since_handshake.map(|since| since.as_secs()),
        tx_bytes: path.tx_bytes,
        rx_bytes: path.rx_bytes,
    }
}

/// Refuses a mesh CIDR that holds one of this host's addresses or overlaps
/// one of its routes: mesh routes would hijack that network. (A listing
/// that fails is no reason to refuse.)
async fn check_cidr_is_free(cidr: Ipv4Network) -> Result<(), ServeError> {
    let all = local_addresses::interface_addresses().unwrap_or_default();
    let taken = all.into_iter().find(|a| match a.address {
        IpAddr::V4(v4) => cidr.contains(v4),
        IpAddr::V6(_) => false,
    });
    if let Some(taken) = taken {
        return Err(ServeError::MeshCidrInUse {
            cidr,
            address: taken.address,
            interface: taken.interface,
        });
    }
    let routes = match warren_device::netlink::Netlink::connect() {
        Ok(netlink) => netlink.main_table_routes().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let overlapping = routes.into_iter().find(|route| match route {
        IpNetwork::V4(route) => {
            route.contains(cidr.network_address()) || cidr.contains(route.network_address())
        }
        IpNetwork::V6(_) => false,
    });
    match overlapping {
        Some(route) => Err(ServeError::MeshCidrRouted { cidr, route }),
        None => Ok(()),
    }
}

/// Where join tokens send agents: the advertised address, else the listen
/// address, else (listening on a wildcard) the host's own addresses.
fn advertised(options: &ServeOptions) -> Result<Vec<SocketAddr>, ServeError> {
    let port = options.listen.port();
    if let Some(ip) = options.advertise_address {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if !options.listen.ip().is_unspecified() {
        return Ok(vec![options.listen]);
    }
    let all = local_addresses::interface_addresses().map_err(|_| ServeError::NoAdvertiseAddress)?;
    let own: Vec<SocketAddr> =
        local_addresses::candidate_addresses(&all, "", options.listen.is_ipv6())
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
    if own.is_empty() {
        return Err(ServeError::NoAdvertiseAddress);
    }
    Ok(own)
}
