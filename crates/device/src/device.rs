//! The device driver: one tokio task that moves bytes between the TUN, the
//! UDP socket, UAPI clients and the mesh core, and holds no protocol state.
//!
//! The loop waits on whichever comes first — a datagram, a packet from the
//! TUN, a UAPI request, the core's next timer, or shutdown — feeds it to the
//! [`Node`], then sends whatever the node queued.

use crate::configure;
use crate::netlink::{IfAddress, Netlink, NetlinkError};
use crate::routes::Routes;
use crate::stats;
use crate::tun::{Tun, TunError};
use crate::uapi_server::{self, UapiCommand, UapiListener, UapiRequest, UapiSocketError};
use crate::udp::WgSocket;
use std::future::Future;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};
use tokio::sync::mpsc;
use warren_mesh::{Node, DATA_OVERHEAD};
use warren_uapi::{errno, Request, SetRequest};

/// Default MTU of the tunnel interface: 1500 minus IPv6 (40) + UDP (8) +
/// WireGuard (32) overheads, as wg-quick picks.
pub const DEFAULT_MTU: u32 = 1420;

/// Largest datagram or packet handled (the most a UDP datagram can carry).
const MAX_PACKET: usize = 65535;

/// How a device is set up.
#[derive(Debug, Clone)]
pub struct DeviceOptions {
    /// Interface name (≤ 15 bytes).
    pub name: String,
    /// Addresses with their subnet prefix, e.g. `10.9.0.1/24`.
    pub addresses: Vec<IfAddress>,
    /// Interface MTU.
    pub mtu: u32,
    /// UDP port to listen on (0 picks one), unless the configuration sets one.
    pub listen_port: u16,
    /// Initial configuration (keys, peers), applied before the device serves.
    pub config: Option<SetRequest>,
    /// Directory of the UAPI socket.
    pub uapi_dir: PathBuf,
}

impl DeviceOptions {
    /// Options for interface `name` with defaults for everything else.
    pub fn new(name: impl Into<String>) -> DeviceOptions {
        DeviceOptions {
            name: name.into(),
            addresses: Vec::new(),
            mtu: DEFAULT_MTU,
            listen_port: 0,
            config: None,
            uapi_dir: PathBuf::from(uapi_server::DEFAULT_UAPI_DIR),
        }
    }
}

/// Why a device could not be brought up or kept running.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// Creating the TUN interface failed.
    #[error(transparent)]
    Tun(#[from] TunError),
    /// Configuring the interface failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// The UAPI socket could not be set up.
    #[error(transparent)]
    Uapi(#[from] UapiSocketError),
    /// The UDP socket could not be bound or configured.
    #[error("UDP socket on port {port}: {source}")]
    Socket {
        /// The port asked for.
        port: u16,
        /// The OS error.
        source: io::Error,
    },
    /// The configuration asks for no private key; a warren device always has one.
    #[error("the configuration removes the private key; a warren device needs one")]
    NoPrivateKey,
    /// No randomness for the private key and session indexes.
    #[error("reading /dev/urandom: {0}")]
    Random(io::Error),
}

/// A running userspace WireGuard interface.
pub struct Device {
    tun: Tun,
    netlink: Netlink,
    routes: Routes,
    socket: WgSocket,
    listen_port: u16,
    fwmark: u32,
    uapi: UapiListener,
    node: Node,
}

impl Device {
    /// Creates the TUN interface, configures it, binds the UDP socket and
    /// the UAPI socket, and applies the initial configuration. Without a
    /// private key in the configuration, a random one is generated.
    pub async fn create(options: DeviceOptions) -> Result<Device, DeviceError> {
        let tun = Tun::create(&options.name)?;
        let netlink = Netlink::connect()?;
        let link = netlink.link_index(tun.name()).await?;
        netlink.set_mtu(link, options.mtu).await?;
        for address in &options.addresses {
            netlink
                .add_address(link, address.address, address.prefix_len)
                .await?;
        }
        netlink.set_up(link).await?;

        let config = options.config.unwrap_or_default();
        if config.private_key == Some(None) {
            return Err(DeviceError::NoPrivateKey);
        }
        let listen_port = config.listen_port.unwrap_or(options.listen_port);
        let fwmark = config.fwmark.unwrap_or(0);
        let socket = WgSocket::bind(listen_port, fwmark).map_err(|source| DeviceError::Socket {
            port: listen_port,
            source,
        })?;
        let listen_port = socket.port().map_err(|source| DeviceError::Socket {
            port: listen_port,
            source,
        })?;
        let uapi = UapiListener::bind(&options.uapi_dir, tun.name())?;

        let private_key = random_bytes::<32>()?;
        let seed = u64::from_le_bytes(random_bytes::<8>()?);
        let mut node = Node::new(private_key, seed, Instant::now());
        configure::apply(&mut node, &config);
        let mut routes = Routes::new(link, options.addresses);
        routes.sync(&netlink, allowed_ips(&node)).await?;
        tracing::info!(
            iface = tun.name(),
            port = listen_port,
            public_key = %node.public_key(),
            uapi = %uapi.path().display(),
            "device up"
        );
        Ok(Device {
            tun,
            netlink,
            routes,
            socket,
            listen_port,
            fwmark,
            uapi,
            node,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        self.tun.name()
    }

    /// The UDP port the device listens on.
    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    /// Serves until `shutdown` completes. Dropping the device afterwards
    /// removes the interface (with its addresses and routes) and the UAPI socket.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), DeviceError> {
        let (commands_tx, mut commands) = mpsc::channel::<UapiCommand>(16);
        let mut datagram = vec![0u8; MAX_PACKET];
        let mut packet = vec![0u8; MAX_PACKET];
        let mut out = vec![0u8; MAX_PACKET + DATA_OVERHEAD];
        tokio::pin!(shutdown);
        loop {
            let deadline = tokio::time::Instant::from_std(self.node.poll_timeout());
            tokio::select! {
                () = &mut shutdown => break,
                received = self.socket.recv_from(&mut datagram) => match received {
                    Ok((len, from)) => {
                        let now = Instant::now();
                        if let Ok(Some(decrypted)) =
                            self.node.handle_datagram(now, from, &datagram[..len], &mut out)
                        {
                            if let Err(error) = self.tun.send(decrypted).await {
                                tracing::debug!(%error, "writing to the TUN");
                            }
                        }
                    }
                    Err(error) => tracing::debug!(%error, "UDP receive"),
                },
                read = self.tun.recv(&mut packet) => match read {
                    Ok(len) => {
                        let now = Instant::now();
                        if let Ok(Some(transmit)) = self.node.send_ip(now, &packet[..len], &mut out) {
                            let dst = transmit.dst;
                            if let Err(error) = self.socket.send_to(transmit.payload, dst).await {
                                tracing::debug!(%error, %dst, "UDP send");
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "TUN read"),
                },
                accepted = self.uapi.accept() => match accepted {
                    Ok(stream) => {
                        tokio::spawn(uapi_server::serve_connection(stream, commands_tx.clone()));
                    }
                    Err(error) => tracing::warn!(%error, "UAPI accept"),
                },
                Some(command) = commands.recv() => {
                    let answer = self.handle_uapi(command.request).await;
                    let _ = command.reply.send(answer);
                },
                () = tokio::time::sleep_until(deadline) => self.node.handle_timeout(Instant::now()),
            }
            self.flush_queued().await;
        }
        tracing::info!(iface = self.tun.name(), "device shutting down");
        Ok(())
    }

    /// Sends every datagram the node queued (handshakes, keepalives, cookies).
    async fn flush_queued(&mut self) {
        while let Some(transmit) = self.node.poll_transmit() {
            if let Err(error) = self.socket.send_to(&transmit.payload, transmit.dst).await {
                tracing::debug!(%error, dst = %transmit.dst, "UDP send");
            }
        }
    }

    async fn handle_uapi(&mut self, request: UapiRequest) -> String {
        match request {
            UapiRequest::Stats => stats::format_stats(&self.node),
            UapiRequest::Uapi(Request::Get) => warren_uapi::format_get_response(
                &configure::snapshot(&self.node, self.listen_port, self.fwmark, SystemTime::now()),
            ),
            UapiRequest::Uapi(Request::Set(set)) => match self.handle_set(&set).await {
                Ok(()) => warren_uapi::format_errno(errno::SUCCESS),
                Err(errno) => warren_uapi::format_errno(errno),
            },
        }
    }

    /// Applies a `set`: first the parts that can fail (socket), so a
    /// failure leaves the peers untouched, then the peers and routes.
    /// Answers with a negated errno, as wg(8) expects.
    async fn handle_set(&mut self, set: &SetRequest) -> Result<(), i32> {
        if set.private_key == Some(None) {
            return Err(errno::INVALID_ARGUMENT);
        }
        let socket_error = |error: io::Error| {
            tracing::warn!(%error, "applying listen port or fwmark");
            errno::ADDRESS_IN_USE
        };
        let fwmark = set.fwmark.unwrap_or(self.fwmark);
        match set.listen_port {
            Some(port) if port != self.listen_port => {
                let socket = WgSocket::bind(port, fwmark).map_err(socket_error)?;
                self.listen_port = socket.port().map_err(socket_error)?;
                self.socket = socket;
            }
            _ if fwmark != self.fwmark => self.socket.set_fwmark(fwmark).map_err(socket_error)?,
            _ => {}
        }
        self.fwmark = fwmark;
        configure::apply(&mut self.node, set);
        if let Err(error) = self
            .routes
            .sync(&self.netlink, allowed_ips(&self.node))
            .await
        {
            tracing::warn!(%error, "updating routes");
            return Err(errno::IO_ERROR);
        }
        Ok(())
    }
}

fn allowed_ips(node: &Node) -> Vec<ip_network::IpNetwork> {
    node.peers()
        .into_iter()
        .flat_map(|peer| peer.allowed_ips)
        .collect()
}

fn random_bytes<const N: usize>() -> Result<[u8; N], DeviceError> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut bytes))
        .map_err(DeviceError::Random)?;
    Ok(bytes)
}
