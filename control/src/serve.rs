//! `warren serve`: the control plane's process. It loads (or creates) its
//! identities and state, checks the mesh CIDR, serves the admin API and,
//! unless told not to, an embedded relay that trusts its ticket-signing key.

use crate::alloc::{AllocError, Allocator};
use crate::api::{self, ApiState};
use crate::identity::{Identity, IdentityError};
use crate::store::{Store, StoreError};
use ip_network::Ipv4Network;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use warren_device::local_addresses;
use warren_relay::{Config, Server, ServerError, ServerOptions};

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

/// Runs the control plane until `shutdown` completes; `started` hears once
/// everything listens.
pub async fn serve(
    options: ServeOptions,
    started: impl FnOnce(&Started),
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let identity = Identity::load_or_create(&options.data_dir)?;
    let store = Store::open(&identity.database())?;
    let allocator = Allocator::new(options.mesh_cidr)?;
    check_cidr_is_free(options.mesh_cidr)?;
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

    let state = Arc::new(ApiState {
        store: Mutex::new(store),
        admin_token: identity.admin_token.clone(),
        cert_sha256: identity.cert_sha256(),
        control_addrs: control_addrs.clone(),
    });
    tracing::info!(
        data_dir = %options.data_dir.display(),
        mesh = %allocator.cidr(),
        control_address = %allocator.control_address(),
        "control plane state loaded"
    );
    started(&Started {
        api: api_addr,
        relay: relay_addr,
        control_addrs,
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let relay_task = relay.map(|server| {
        let mut stop = stop_rx.clone();
        tokio::spawn(server.run(async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        }))
    });
    let mut api_stop = stop_rx;
    let api = axum::serve(api_listener, api::router(state)).with_graceful_shutdown(async move {
        let _ = api_stop.wait_for(|stopped| *stopped).await;
    });
    let api_task = tokio::spawn(async move { api.await });
    shutdown.await;
    let _ = stop_tx.send(true);
    if let Some(task) = relay_task {
        let _ = task.await;
    }
    if let Ok(Err(error)) = api_task.await {
        tracing::warn!(%error, "admin API stopped with an error");
    }
    tracing::info!("control plane stopped");
    Ok(())
}

/// Refuses a mesh CIDR that holds one of this host's addresses: mesh routes
/// would hijack that network. (A listing that fails is no reason to refuse.)
fn check_cidr_is_free(cidr: Ipv4Network) -> Result<(), ServeError> {
    let all = local_addresses::interface_addresses().unwrap_or_default();
    let taken = all.into_iter().find(|a| match a.address {
        IpAddr::V4(v4) => cidr.contains(v4),
        IpAddr::V6(_) => false,
    });
    match taken {
        Some(taken) => Err(ServeError::MeshCidrInUse {
            cidr,
            address: taken.address,
            interface: taken.interface,
        }),
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
