//! `warren serve`: the control plane's process. It loads (or creates) its
//! identities and state, checks the mesh CIDR, serves the admin API and,
//! unless told not to, an embedded relay that trusts its ticket-signing key.

use crate::acme::{AcmeHandle, AcmeHttp, AcmeOptions, Challenges, RootsError};
use crate::agent_links::AgentLinks;
use crate::api::{self, ApiState};
use crate::cluster::{Cluster, ClusterConfig, ClusterState};
use crate::control_node::{ControlNode, ControlNodeError};
use crate::host_checks::{advertised, check_cidr_is_free};
use crate::identity::{Identity, IdentityError};
use crate::ipam::{AllocError, Allocator};
use crate::mesh_view::ControlMember;
use crate::nodes::{Registry, CONTROL_NAME};
use crate::proxy::{self, HttpsRedirect, ListenError, Listeners, Proxy, ProxyLimits};
use crate::store::{Store, StoreError};
use crate::{agent_endpoint, control_device, own_report};
use ip_network::Ipv4Network;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use warren_device::paths;
use warren_proto::{Mode, StatusOf};
use warren_relay::{RunningRelay, ServerError, ServerOptions};
use warren_relay_proto::Config;
use warren_uapi::IpNetwork;

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
    /// The host ports replicas publish on.
    pub host_ports: std::ops::RangeInclusive<u16>,
    /// This host's Docker daemon (`--docker-host`): the control plane's
    /// host then runs replicas too, as the node `control`.
    pub docker_host: Option<String>,
    /// The ingress proxy; `None` runs none (`--no-proxy`).
    pub proxy: Option<ProxyOptions>,
    /// How nodes that go silent are noticed and given up on.
    pub failure: FailureDetection,
    /// Where every cluster event is posted (`--webhook`).
    pub webhooks: Vec<http::Uri>,
}

/// How nodes that go silent are noticed and given up on (`warren serve
/// --heartbeat --node-timeout --replace-after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureDetection {
    /// How often the control plane makes each agent's connection carry
    /// something (a QUIC ping, which the agent acknowledges).
    pub heartbeat: Duration,
    /// How long an agent's connection may carry nothing before it is
    /// closed and the node is offline: the proxy stops routing to it.
    pub node_timeout: Duration,
    /// How long a node is offline before its replicas are replaced.
    pub replace_after: Duration,
}

impl Default for FailureDetection {
    fn default() -> FailureDetection {
        FailureDetection {
            heartbeat: Duration::from_millis(500),
            node_timeout: Duration::from_secs(2),
            replace_after: Duration::from_secs(2),
        }
    }
}

/// Where the ingress proxy listens and its limits.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Plain HTTP addresses.
    pub http_listen: Vec<SocketAddr>,
    /// HTTPS addresses.
    pub https_listen: Vec<SocketAddr>,
    /// Whether the addresses are the defaults (both address families): an
    /// IPv6 address a host without IPv6 cannot have is then skipped.
    pub default_listen: bool,
    /// Body size, timeouts.
    pub limits: ProxyLimits,
    /// Certificates by ACME, if a directory is given.
    pub acme: Option<AcmeOptions>,
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
    Tls(#[from] rustls::Error),
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
    /// The mesh echo (what `warren ping` and RTT probes reach).
    #[error("cannot answer mesh echoes on UDP {addr}: {source}")]
    Echo {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The thread that owns the cluster's state.
    #[error("cannot start the cluster state's thread: {0}")]
    Thread(std::io::Error),
    /// The mesh CIDR overlaps a route this host has.
    #[error("the mesh CIDR {cidr} overlaps the route to {route} on this host: pick a free range with --mesh-cidr")]
    MeshCidrRouted {
        /// The mesh CIDR.
        cidr: Ipv4Network,
        /// The route's destination.
        route: IpNetwork,
    },
    /// The control plane's host cannot run replicas.
    #[error(transparent)]
    ControlNode(#[from] ControlNodeError),
    /// The proxy's sockets.
    #[error(transparent)]
    Proxy(#[from] ListenError),
    /// The CA file for the ACME directory or webhooks.
    #[error(transparent)]
    Roots(#[from] RootsError),
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
    /// Where the ingress proxy takes plain HTTP.
    pub http: Vec<SocketAddr>,
    /// Where it takes HTTPS.
    pub https: Vec<SocketAddr>,
}

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
    let (http_listeners, https_listeners) = match &options.proxy {
        Some(proxy) => (
            proxy::bind(
                &proxy.http_listen,
                proxy.default_listen,
                "--http-listen",
                proxy.limits.workers,
            )?,
            proxy::bind(
                &proxy.https_listen,
                proxy.default_listen,
                "--https-listen",
                proxy.limits.workers,
            )?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    let api_addr = api_listener
        .local_addr()
        .map_err(|source| ServeError::Api {
            addr: options.api_listen,
            source,
        })?;
    // The packet paths, the embedded relay and the control plane's own
    // device, run on threads of their own.
    let relay = match options.relay_listen {
        Some(listen) => Some(
            RunningRelay::start(ServerOptions {
                listen,
                metrics: None,
                control_key: identity.control_key(),
                config: Config::default(),
            })
            .await?,
        ),
        None => None,
    };
    let relay_addr = relay.as_ref().map(RunningRelay::local_addr);
    // Agents reach the embedded relay where they reach the control plane.
    let mut relays: Vec<SocketAddr> = relay_addr
        .zip(control_addrs.first())
        .map(|(relay, control)| SocketAddr::new(control.ip(), relay.port()))
        .into_iter()
        .collect();
    relays.extend(options.relays.iter().copied());

    let control_ip = registry.allocator().control_address();
    let device = control_device::start(
        &options,
        &identity.wireguard_key,
        &identity.signing_key,
        &registry,
        &relays,
    )
    .await?;
    let device_handle = device.handle();
    let endpoint = agent_endpoint::endpoint(
        options.listen,
        agent_endpoint::server_config(
            &identity.tls_cert,
            &identity.tls_key,
            options.failure.heartbeat,
            options.failure.node_timeout,
        )?,
        &identity.tls_key,
    )
    .map_err(|source| ServeError::Quic {
        addr: options.listen,
        source,
    })?;

    let state = ClusterState::new(ClusterConfig {
        store,
        registry,
        signing_key: Arc::clone(&identity.signing_key),
        ticket_lifetime: options.ticket_lifetime,
        relays: relays.clone(),
        mesh: options.mesh_cidr,
        control: ControlMember {
            public_key: identity.wireguard_key.public_key(),
            mesh_ip: control_ip,
            endpoint: control_addrs.first().copied(),
            wireguard_endpoints: control_addrs
                .iter()
                .map(|addr| SocketAddr::new(addr.ip(), options.wg_port))
                .collect(),
        },
        revoker: relay.as_ref().map(RunningRelay::revoker),
        host_ports: options.host_ports.clone(),
        control_node: options.docker_host.is_some(),
        replace_after: options.failure.replace_after,
        started: Instant::now(),
    })?;
    let events = state.subscribe();
    let control_events = state.subscribe();
    let webhook_tasks = match options.webhooks.is_empty() {
        true => Vec::new(),
        false => {
            let outbound = crate::outbound::Outbound::new(None)?;
            options
                .webhooks
                .iter()
                .map(|url| {
                    tokio::spawn(crate::webhooks::deliver(
                        url.clone(),
                        outbound.clone(),
                        state.subscribe_events(),
                    ))
                })
                .collect()
        }
    };
    let routes = state.subscribe_routes();
    let certs = state.subscribe_certs();
    let cluster = Cluster::spawn(state).map_err(ServeError::Thread)?;
    let links = AgentLinks::new();
    let https_port = https_listeners.first().map(|bound| bound.addr().port());
    let tls = match https_port {
        Some(_) => Some(Arc::new(proxy::tls_config(certs.clone())?)),
        None => None,
    };
    let challenges = Challenges::default();
    let acme = match options.proxy.as_ref().and_then(|p| p.acme.as_ref()) {
        Some(acme_options) => {
            let http = AcmeHttp::new(acme_options.ca_file.as_deref())?;
            Some(AcmeHandle::start(
                acme_options,
                http,
                cluster.clone(),
                challenges.clone(),
                routes.clone(),
            ))
        }
        None => None,
    };
    let proxy = options.proxy.as_ref().map(|options| {
        let redirect = https_port.map(|port| HttpsRedirect {
            certs: certs.clone(),
            port,
        });
        Proxy::new(routes, options.limits, redirect, challenges.clone())
    });
    let proxy_listeners = proxy
        .as_ref()
        .map(|proxy| Listeners::start(proxy, http_listeners, https_listeners, tls));
    let api_state = Arc::new(ApiState {
        cluster: cluster.clone(),
        links: links.clone(),
        admin_token: identity.admin_token.clone(),
        cert_sha256: identity.cert_sha256(),
        control_addrs: control_addrs.clone(),
        proxy: proxy.clone(),
        acme: acme.clone(),
    });
    // The mesh device is up: the host's replicas can publish on its address.
    let control_node = match &options.docker_host {
        Some(host) => Some(
            ControlNode::start(
                host,
                control_ip,
                &options.data_dir,
                cluster.clone(),
                control_events,
                &links,
            )
            .await?,
        ),
        None => None,
    };
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
        http: proxy_listeners
            .as_ref()
            .map(|l| l.http_addrs().to_vec())
            .unwrap_or_default(),
        https: proxy_listeners
            .as_ref()
            .map(|l| l.https_addrs().to_vec())
            .unwrap_or_default(),
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    let echo = paths::echo_responder(control_ip)
        .await
        .map_err(|source| ServeError::Echo {
            addr: SocketAddr::new(IpAddr::V4(control_ip), paths::ECHO_PORT),
            source,
        })?;
    let me = StatusOf {
        name: CONTROL_NAME.to_owned(),
        mesh_ip: control_ip,
        mode: Mode::Control,
        iface: options.iface.clone(),
    };
    let report_task = tokio::spawn(own_report::run(
        cluster.clone(),
        device_handle.clone(),
        relays,
        me,
        options.data_dir.join(warren_proto::STATUS_FILE),
    ));
    let peers_task = tokio::spawn(control_device::follow_joins(
        cluster.clone(),
        events,
        device_handle,
    ));
    let liveness_task = tokio::spawn(tell_the_time(cluster.clone(), proxy.clone()));
    let agents_task = tokio::spawn(agent_endpoint::serve(endpoint.clone(), cluster, links));
    let api =
        axum::serve(api_listener, api::router(api_state)).with_graceful_shutdown(stopped(stop_rx));
    let api_task = tokio::spawn(async move { api.await });
    shutdown.await;
    endpoint.close(0u32.into(), b"control plane stopping");
    let _ = stop_tx.send(true);
    agents_task.abort();
    liveness_task.abort();
    for task in webhook_tasks {
        task.abort();
    }
    peers_task.abort();
    if let Some(listeners) = proxy_listeners {
        listeners.stop();
    }
    if let Some(acme) = acme {
        acme.stop();
    }
    report_task.abort();
    echo.abort();
    if let Some(control_node) = control_node {
        control_node.stop();
    }
    if let Some(relay) = relay {
        relay.stop().await;
    }
    if let Err(error) = device.stop().await {
        tracing::warn!(%error, "the mesh device stopped with an error");
    }
    if let Ok(Err(error)) = api_task.await {
        tracing::warn!(%error, "admin API stopped with an error");
    }
    tracing::info!("control plane stopped");
    Ok(())
}

/// The longest the control plane goes without telling the cluster the
/// time: how often it asks whether a node offline long enough is lost (a
/// disconnection starts a new wait) and whether draining replicas are done.
const TICK: Duration = Duration::from_millis(250);

/// Tells the cluster the time and which replicas the proxy has requests
/// in flight to: nodes offline for the replace-after time are given up on
/// and their replicas placed again, draining replicas stop once idle, and
/// update delays end.
async fn tell_the_time(cluster: Cluster, proxy: Option<Arc<Proxy>>) {
    loop {
        let now = Instant::now();
        let busy = proxy
            .as_ref()
            .map(|p| p.busy_upstreams())
            .unwrap_or_default();
        let Ok(next) = cluster
            .with(move |state| state.tick(now, warren_os::unix_now(), &busy))
            .await
        else {
            return;
        };
        let wait = next.map_or(TICK, |at| {
            at.saturating_duration_since(Instant::now()).min(TICK)
        });
        tokio::time::sleep(wait).await;
    }
}
