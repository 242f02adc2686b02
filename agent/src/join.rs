//! `warren join`: connect to the control plane (its certificate pinned),
//! join with a token or rejoin with the stored credential, bring up the
//! mesh device with the peer map and relay ticket it hands out, say
//! `joined …` once the mesh is usable, then run until told to stop.
//!
//! The driver is one `select!` loop over the shutdown signal, the report
//! tick and the [`Session`]; what to do with each message is the
//! [`AgentCore`]'s decision. The mesh keeps running, and the status file
//! keeps being refreshed, while the control plane is away.

use crate::core::{peer_changes, Action, AgentCore};
use crate::session::{self, Session, SessionEvent, Target};
use crate::state::{AgentDir, Joined, StateError};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warren_device::netlink::IfAddress;
use warren_device::paths;
use warren_device::{DeviceHandle, DeviceOptions, RunningDevice};
use warren_proto::assignment::{NodeReport, ReplicaStatus};
use warren_proto::{
    AgentMessage, Auth, ControlMessage, Hello, Mode, RefusalCode, Report, Secret, StatusOf,
    TokenId, Welcome, ASSIGNMENTS_KIND, CONTROL_KINDS, PROTOCOL_VERSION, STREAMS_KIND,
};
use warren_runner::streams::Streams;
use warren_runner::workloads::{self, Runner};
use warren_wire::{JoinToken, PrivateKey, PublicKey};

/// How long the mesh may take to become usable after the welcome.
const USABLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `warren join` waits for every relay before it settles for the
/// ones that answered.
const RELAY_GRACE: Duration = Duration::from_secs(5);

/// How often the agent reports its paths and refreshes its status file.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// How often the node's facts (CPU, memory, free disk, Docker version) are
/// read again, and sent when they changed.
const NODE_FACTS_INTERVAL: Duration = Duration::from_secs(60);

/// How long a removed node waits for its replicas' containers to stop
/// before it exits (each gets 10 s before it is killed).
const LEAVE_TIMEOUT: Duration = Duration::from_secs(20);

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
    /// The node's Docker daemon (`--docker-host`); without it the node runs
    /// no replicas.
    pub docker_host: Option<String>,
    /// CPU offered to replicas instead of all the node's, millicores.
    pub capacity_cpu: Option<u64>,
    /// Memory offered to replicas instead of all the node's, bytes.
    pub capacity_memory: Option<u64>,
}

/// Why the agent could not join or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The data directory.
    #[error(transparent)]
    State(#[from] StateError),
    /// The control plane's welcome cannot be used.
    #[error(transparent)]
    Welcome(#[from] crate::core::BadMeshPrefix),
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
    #[error("{reason}")]
    Refused {
        /// Why, for programs.
        code: RefusalCode,
        /// Why, in one line.
        reason: String,
    },
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
    /// The node's Docker daemon.
    #[error(transparent)]
    Runtime(#[from] warren_runner::runtime::RuntimeError),
}

/// What `warren join` reports once the mesh is usable.
#[derive(Debug, Clone)]
pub struct Usable {
    /// The node's name.
    pub name: String,
    /// The node's mesh address.
    pub mesh_ip: Ipv4Addr,
    /// `direct` or `relay`.
    pub mode: Mode,
    /// Whether the control plane answered; if not, the mesh runs from the
    /// stored peer map while the agent keeps trying it.
    pub control_connected: bool,
}

/// Joins and runs until `shutdown`; `usable` hears once the mesh works.
pub async fn run(
    options: JoinOptions,
    usable: impl FnOnce(&Usable),
    shutdown: impl Future<Output = ()>,
) -> Result<(), JoinError> {
    let dir = AgentDir::open(&options.data_dir)?;
    let private_key = dir.wireguard_key()?;
    let stored = dir.joined()?;
    let (auth, control, pin) = match (&stored, &options.token) {
        (Some(joined), _) => (
            Auth::Credential {
                secret: joined.credential.clone(),
            },
            joined.control.clone(),
            joined.cert_sha256()?,
        ),
        (None, Some(token)) => (
            Auth::Token {
                id: TokenId(token.id),
                secret: Secret(token.secret),
            },
            token.control.clone(),
            token.cert_sha256,
        ),
        (None, None) => return Err(JoinError::NoToken),
    };
    let (mode, private_address) = match options.mode {
        JoinMode::Direct(ip) => (Mode::Direct, Some(ip)),
        JoinMode::Relay => (Mode::Relay, None),
    };
    // The node's daemon first: what it offers goes in the hello, so the
    // node can be placed on as soon as it is admitted.
    let runtime = match &options.docker_host {
        Some(host) => Some(warren_runner::runtime::Runtime::connect(host).await?),
        None => None,
    };
    let node_report = match &runtime {
        Some(runtime) => Some(
            workloads::node_report(runtime, options.capacity_cpu, options.capacity_memory).await?,
        ),
        None => None,
    };
    let hello = Hello {
        version: PROTOCOL_VERSION,
        capabilities: CONTROL_KINDS
            .iter()
            .copied()
            .chain(
                options
                    .docker_host
                    .iter()
                    .flat_map(|_| [ASSIGNMENTS_KIND, STREAMS_KIND]),
            )
            .map(str::to_owned)
            .collect(),
        auth,
        name: options.name.clone(),
        public_key: private_key.public_key(),
        mode,
        private_address,
        wg_port: options.wg_port,
        machine: node_report.clone(),
    };
    let mut target = Target {
        control,
        pin,
        hello,
    };
    // A node that joined before starts from its stored mesh map when the
    // control plane cannot be reached, and keeps trying it.
    let (mut session, welcome, online) = match session::open(&target).await {
        Ok((link, welcome)) => (Session::Connected(link), welcome, true),
        Err(JoinError::Unreachable { addrs, reason }) => match (&stored, dir.mesh_map()?) {
            (Some(_), Some(map)) => {
                tracing::warn!(%addrs, %reason, "the control plane is unreachable: starting the mesh from the stored peer map and reconnecting");
                (Session::reconnect(&target), map, false)
            }
            _ => return Err(JoinError::Unreachable { addrs, reason }),
        },
        Err(error) => return Err(error),
    };
    let credential = match (&welcome.credential, &stored) {
        (Some(credential), _) => credential.clone(),
        (None, Some(stored)) => stored.credential.clone(),
        (None, None) => {
            return Err(JoinError::Protocol(
                "a first join without a credential".to_owned(),
            ))
        }
    };
    if online {
        dir.save_joined(&Joined::new(
            &welcome,
            mode,
            credential.clone(),
            target.control.clone(),
            pin,
        ))?;
    }
    // From now on the agent rejoins with its credential.
    target.hello.auth = Auth::Credential { secret: credential };

    // Only peers inside the mesh network become routes into the tunnel.
    let welcome = crate::core::checked_welcome(&welcome)?;
    let mut core = AgentCore::new(StatusOf {
        name: welcome.name.clone(),
        mesh_ip: welcome.mesh_ip,
        mode,
        iface: options.iface.clone(),
    });
    let device = bring_up(&options, &private_key, &welcome).await?;
    let handle = device.handle();
    // The device already has the welcome's peers; the core learns them.
    if online {
        core.handle_welcome(&welcome);
        save_mesh_map(&dir, &core);
        let control_key = welcome
            .peers
            .first()
            .map(|peer| peer.public_key)
            .ok_or_else(|| JoinError::Protocol("no control plane in the peer map".to_owned()))?;
        wait_usable(&handle, &control_key).await?;
    } else {
        core.handle_stored(&welcome);
    }
    usable(&Usable {
        name: welcome.name.clone(),
        mesh_ip: welcome.mesh_ip,
        mode,
        control_connected: online,
    });
    let echo = paths::echo_responder(welcome.mesh_ip)
        .await
        .map_err(|e| JoinError::NotUsable(USABLE_TIMEOUT, format!("the mesh echo: {e}")))?;

    let relays = welcome.relays.clone();
    // Replicas start once the mesh is up: they publish on its address.
    let facts_runtime = runtime.clone();
    let mut node_report = node_report;
    let (assign, mut replica_reports, streams) = match runtime {
        Some(runtime) => {
            let streams = Streams::new(runtime.clone());
            let runner = Runner::new(runtime, dir.assignments_file(), welcome.mesh_ip);
            let (assign, inputs) = tokio::sync::mpsc::channel(4);
            let (reports, replica_reports) = tokio::sync::mpsc::channel(4);
            tokio::spawn(runner.run(inputs, reports));
            (Some(assign), replica_reports, Some(streams))
        }
        None => (None, tokio::sync::mpsc::channel(1).1, None),
    };
    // `warren logs` and `warren exec` arrive on streams of each connection.
    let serve_streams = |session: &Session| {
        if let (Some(streams), Some(connection)) = (&streams, session.connection()) {
            tokio::spawn(crate::streams::serve(connection, streams.clone()));
        }
    };
    serve_streams(&session);
    let mut last_replicas: Option<Vec<ReplicaStatus>> = None;
    let send_workload_state =
        |session: &Session, node: &Option<NodeReport>, replicas: &Option<Vec<ReplicaStatus>>| {
            if let Some(report) = node {
                session.send(&AgentMessage::Node(report.clone()));
            }
            if let Some(replicas) = replicas {
                session.send(&AgentMessage::Replicas {
                    replicas: replicas.clone(),
                });
            }
        };
    send_workload_state(&session, &node_report, &last_replicas);
    // `warren leave` on this node asks through a local socket.
    let (leave_requests, mut leave_asked) = tokio::sync::mpsc::channel(1);
    let (replica_count, counted) = tokio::sync::watch::channel(None);
    let leave_socket = match crate::leave::bind(&options.data_dir) {
        Ok(listener) => Some(tokio::spawn(crate::leave::serve(
            listener,
            leave_requests,
            counted,
        ))),
        Err(error) => {
            tracing::warn!(%error, "no socket for `warren leave`");
            None
        }
    };
    let mut reports = tokio::time::interval(REPORT_INTERVAL);
    let mut facts_tick = tokio::time::interval(NODE_FACTS_INTERVAL);
    facts_tick.reset();
    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            _ = reports.tick() => {
                if let Some(report) = measure(&handle, &relays, &core).await {
                    session.send_report(&report, target.hello.version);
                    let status = core.handle_report(report, warren_os::unix_now());
                    if let Err(error) = dir.save_status(&status) {
                        tracing::warn!(%error, "writing the status file");
                    }
                }
            },
            _ = facts_tick.tick(), if facts_runtime.is_some() => {
                if let Some(runtime) = &facts_runtime {
                    match workloads::node_report(runtime, options.capacity_cpu, options.capacity_memory).await {
                        Ok(report) if node_report.as_ref() != Some(&report) => {
                            tracing::debug!(?report, "the node's facts changed");
                            session.send(&AgentMessage::Node(report.clone()));
                            node_report = Some(report);
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(%error, "reading the node's facts"),
                    }
                }
            },
            Some(replicas) = replica_reports.recv() => {
                session.send(&AgentMessage::Replicas { replicas: replicas.clone() });
                replica_count.send_replace(Some(replicas.len()));
                last_replicas = Some(replicas);
            },
            Some(reply) = leave_asked.recv() => {
                let connected = session.connection().is_some();
                if connected {
                    tracing::info!("asked to leave the cluster: the control plane drains and removes this node");
                    session.send(&AgentMessage::Leave);
                }
                let _ = reply.send(connected);
            },
            event = session.next(&target) => match event {
                SessionEvent::Message(message) => {
                    let changes_map = matches!(
                        message,
                        ControlMessage::Peers { .. } | ControlMessage::Ticket { .. }
                    );
                    let actions = core.handle_message(message);
                    carry_out(&handle, assign.as_ref(), actions).await;
                    if changes_map {
                        save_mesh_map(&dir, &core);
                    }
                }
                SessionEvent::Lost(reason) => {
                    tracing::warn!(%reason, "lost the control plane; the mesh keeps running, reconnecting");
                    core.handle_disconnected();
                    if let Err(error) = dir.save_status(&core.status(warren_os::unix_now())) {
                        tracing::warn!(%error, "writing the status file");
                    }
                }
                SessionEvent::Relinked(welcome) => {
                    tracing::info!("reconnected to the control plane");
                    let actions = core.handle_welcome(&welcome);
                    carry_out(&handle, assign.as_ref(), actions).await;
                    save_mesh_map(&dir, &core);
                    send_workload_state(&session, &node_report, &last_replicas);
                    serve_streams(&session);
                }
                SessionEvent::Ended(error) => break Err(error),
            },
        }
    };
    session.close();
    if let (Err(JoinError::Removed), Some(assign)) = (&outcome, &assign) {
        let (done, stopped) = tokio::sync::oneshot::channel();
        if assign.send(workloads::Input::Leave { done }).await.is_ok() {
            let _ = tokio::time::timeout(LEAVE_TIMEOUT, stopped).await;
        }
    }
    echo.abort();
    if let Some(task) = leave_socket {
        task.abort();
        let _ = std::fs::remove_file(crate::leave::socket_path(&options.data_dir));
    }
    drop(replica_count);
    if let Err(error) = device.stop().await {
        tracing::warn!(%error, "the mesh device stopped with an error");
    }
    outcome
}

/// Stores the core's mesh map (a failure is logged: the mesh runs on).
fn save_mesh_map(dir: &AgentDir, core: &AgentCore) {
    if let Some(map) = core.mesh_map() {
        if let Err(error) = dir.save_mesh_map(map) {
            tracing::warn!(%error, "storing the mesh map");
        }
    }
}

/// Carries out what the core decided, in order.
async fn carry_out(
    handle: &DeviceHandle,
    assign: Option<&tokio::sync::mpsc::Sender<workloads::Input>>,
    actions: Vec<Action>,
) {
    for action in actions {
        match action {
            Action::Configure(set) => {
                if let Err(error) = handle.set(set).await {
                    tracing::warn!(%error, "applying a peer-map change");
                }
            }
            Action::PeerCandidates { peer, candidates } => {
                tracing::debug!(%peer, ?candidates, "peer candidates from the control plane");
                if let Err(error) = handle.set_peer_candidates(peer, candidates).await {
                    tracing::debug!(%error, "a peer's candidates");
                }
            }
            Action::RenewTicket(ticket) => match handle.renew_relay_ticket(ticket).await {
                Ok(()) => tracing::debug!("relay ticket renewed"),
                Err(error) => tracing::warn!(%error, "renewing the relay ticket"),
            },
            Action::Assign { revision, replicas } => match assign {
                Some(assign) => {
                    let input = workloads::Input::Assignments { revision, replicas };
                    if assign.send(input).await.is_err() {
                        tracing::warn!("the replicas' loop has stopped");
                    }
                }
                None => tracing::warn!("assignments for a node started without --docker-host"),
            },
        }
    }
}

/// The mesh device with the welcome's address, peers, relays and ticket,
/// on a thread of its own.
async fn bring_up(
    options: &JoinOptions,
    private_key: &PrivateKey,
    welcome: &Welcome,
) -> Result<RunningDevice, JoinError> {
    let mut config = peer_changes(&welcome.peers, &[]);
    config.private_key = Some(Some(private_key.into()));
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
    device_options.ticket = (!welcome.relays.is_empty()).then_some(welcome.ticket);
    Ok(RunningDevice::start(device_options).await?)
}

/// Waits until the mesh is usable: a session with the control plane (the
/// persistent keepalive starts the handshake at once) and every relay's
/// acknowledgement of the registration. A relay that has not answered
/// after [`RELAY_GRACE`] does not hold the node back while another one has
/// (a dead relay must not keep nodes off the mesh); it is named in a
/// warning and the device keeps registering with it.
async fn wait_usable(handle: &DeviceHandle, control_key: &PublicKey) -> Result<(), JoinError> {
    let started = Instant::now();
    let deadline = started + USABLE_TIMEOUT;
    let not_usable =
        |e: warren_device::HandleError| JoinError::NotUsable(USABLE_TIMEOUT, e.to_string());
    loop {
        let state = handle.state().await.map_err(not_usable)?;
        let handshake = state.peers.iter().any(|peer| {
            PublicKey::from(peer.public_key) == *control_key && peer.last_handshake.is_some()
        });
        let relays = handle.relay_registrations().await.map_err(not_usable)?;
        let silent: Vec<String> = relays
            .iter()
            .filter(|(_, registered)| !registered)
            .map(|(relay, _)| relay.to_string())
            .collect();
        let enough = relays.is_empty()
            || silent.is_empty()
            || (started.elapsed() >= RELAY_GRACE && silent.len() < relays.len());
        if handshake && enough {
            if !silent.is_empty() {
                tracing::warn!(relays = %silent.join(", "), "joined without these relays' acknowledgement; still registering");
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(JoinError::NotUsable(
                USABLE_TIMEOUT,
                "no WireGuard handshake with the control plane's mesh device, or no relay acknowledged the registration".to_owned(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// This node's paths and candidates now, for the control plane.
async fn measure(handle: &DeviceHandle, relays: &[SocketAddr], core: &AgentCore) -> Option<Report> {
    let mesh_ips: HashMap<PublicKey, Ipv4Addr> = core
        .peers()
        .map(|peer| (peer.public_key, peer.mesh_ip))
        .collect();
    let paths = paths::measure(handle, relays, &mesh_ips).await.ok()?;
    let candidates = handle.own_candidates().await.unwrap_or_default();
    Some(Report { paths, candidates })
}
