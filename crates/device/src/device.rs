//! The device driver: one tokio task that moves bytes between the TUN, the
//! UDP socket, UAPI clients and the mesh core, and holds no protocol state.
//!
//! The loop waits on whichever comes first — a datagram, a packet from the
//! TUN, a UAPI request, the core's next timer, or shutdown — feeds it to the
//! [`Node`], then sends whatever the node queued.

use crate::batch::TxBatch;
use crate::configure;
use crate::handle::{DeviceHandle, HandleCommand};
use crate::local_addresses;
use crate::netlink::{IfAddress, Netlink, NetlinkError};
use crate::offload::{self, Coalescer, OffloadError, VnetHdr};
use crate::routes::Routes;
use crate::stats;
use crate::tun::{Tun, TunError};
use crate::uapi_server::{self, UapiCommand, UapiListener, UapiRequest, UapiSocketError};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::{mpsc, Semaphore};
use warren_mesh::{Node, MAX_OVERHEAD};
use warren_uapi::{errno, Request, SetRequest};
use warren_udp::{GsoSocket, Received};
use warren_wire::{PrivateKey, Ticket};

/// Default MTU of the tunnel interface: what fits a 1500-byte path once
/// IPv6 (40), UDP (8), the relay's `Send` header (36) and WireGuard (32)
/// are added, so that relayed packets never need fragmenting. (wg-quick's
/// 1420 leaves no room for the relay header.)
pub const DEFAULT_MTU: u32 = 1384;

/// Largest datagram or packet handled (the most a UDP datagram can carry).
const MAX_PACKET: usize = 65535;

/// How many reads (of the TUN or of the UDP socket) one burst makes before
/// the loop looks at its other inputs again: large enough to amortise,
/// small enough that UAPI requests and timers are not starved.
const BURST: usize = 64;

/// Least room to leave for one decrypted packet (boringtun's minimum buffer).
const MIN_DECRYPT_ROOM: usize = 148;

/// Encrypted datagrams collected before they are sent (one TUN
/// super-packet alone can make 45).
const TX_BATCH: usize = 128;

/// Bytes of decrypted packets collected before they are coalesced and
/// written to the TUN.
const RX_ARENA: usize = 256 * 1024;

/// UAPI clients served at once; more are refused until one finishes.
const MAX_UAPI_CLIENTS: usize = 16;

/// Pause after a failed `accept` on the UAPI socket.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// How often the host's addresses are listed again for peers (a laptop
/// changes networks, DHCP renews).
const LOCAL_ADDRESSES_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// The loop's packet buffers, allocated once.
struct Buffers {
    /// UDP receive buffer: one datagram or one GRO batch.
    rx: Vec<u8>,
    /// Decrypted packets on their way to the TUN.
    decrypted: Decrypted,
    /// A TUN read: vnet header and (super-)packet.
    tun: Vec<u8>,
    /// The segments of a super-packet, `stride` bytes apart.
    segments: Vec<u8>,
    /// Room for one segment: the interface MTU (at least 1500).
    stride: usize,
    /// Encrypted datagrams on their way out, grouped for GSO.
    tx: TxBatch,
}

/// Decrypted packets collected during a burst, then coalesced and written.
struct Decrypted {
    /// The packets, back to back...
    arena: Vec<u8>,
    /// ...at these ranges.
    packets: Vec<Range<usize>>,
    /// Merges in-order TCP segments for fewer TUN writes.
    coalescer: Coalescer,
    /// The coalescer's output: a vnet header and a packet per TUN write.
    coalesced: Vec<u8>,
}

impl Buffers {
    /// Buffers for a device whose interface MTU is `mtu`: a TUN packet
    /// larger than that (the MTU raised behind warren's back) is dropped.
    fn new(mtu: u32) -> Buffers {
        let stride = (mtu as usize).max(1500);
        Buffers {
            rx: vec![0; MAX_PACKET],
            decrypted: Decrypted {
                arena: vec![0; RX_ARENA],
                packets: Vec::with_capacity(RX_ARENA / 1000),
                coalescer: Coalescer::new(),
                // Each output adds a 10-byte header to a packet of 20 bytes or more.
                coalesced: vec![0; RX_ARENA * 3 / 2],
            },
            tun: vec![0; VnetHdr::LEN + MAX_PACKET],
            segments: vec![0; 64 * stride],
            stride,
            tx: TxBatch::new(TX_BATCH, stride + MAX_OVERHEAD),
        }
    }
}

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
    /// Relays to register with, in preference order.
    pub relays: Vec<SocketAddr>,
    /// The ticket for this device's key that the relays require.
    pub ticket: Option<Ticket>,
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
            relays: Vec::new(),
            ticket: None,
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
    /// Relays were given without a ticket to register with.
    #[error("relays need a ticket for this device's key (--ticket)")]
    NoTicket,
    /// The configuration asks for no private key; a warren device always has one.
    #[error("the configuration removes the private key; a warren device needs one")]
    NoPrivateKey,
    /// Reading the TUN failed for good (the interface was deleted).
    #[error("reading the TUN interface: {0}")]
    TunRead(io::Error),
    /// No randomness for the private key and session indexes.
    #[error(transparent)]
    Random(#[from] warren_os::RandomError),
    /// The device's own thread could not be started.
    #[error("starting the device's thread: {0}")]
    Thread(io::Error),
    /// The device's thread ended before answering.
    #[error("the device's thread stopped unexpectedly")]
    ThreadGone,
}

/// A running userspace WireGuard interface.
pub struct Device {
    tun: Tun,
    netlink: Netlink,
    routes: Routes,
    socket: GsoSocket,
    listen_port: u16,
    fwmark: u32,
    uapi: UapiListener,
    node: Node,
    mtu: u32,
    /// Requests from [`DeviceHandle`]s.
    handle_commands: (mpsc::Sender<HandleCommand>, mpsc::Receiver<HandleCommand>),
}

impl Device {
    /// Creates the TUN interface, configures it, binds the UDP socket and
    /// the UAPI socket, and applies the initial configuration. Without a
    /// private key in the configuration, a random one is generated.
    pub async fn create(options: DeviceOptions) -> Result<Device, DeviceError> {
        let tun = Tun::create_with_offload(&options.name)?;
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
        let socket =
            GsoSocket::bind(listen_port, fwmark).map_err(|source| DeviceError::Socket {
                port: listen_port,
                source,
            })?;
        let listen_port = socket.port().map_err(|source| DeviceError::Socket {
            port: listen_port,
            source,
        })?;
        let uapi = UapiListener::bind(&options.uapi_dir, tun.name())?;

        // Replaced by the configuration's key at once; random until then.
        let private_key = PrivateKey::from_bytes(warren_os::random::<32>()?);
        let seed = u64::from_le_bytes(warren_os::random::<8>()?);
        let mut node = Node::new(&private_key, seed, Instant::now());
        configure::apply(&mut node, &config);
        if !options.relays.is_empty() {
            let ticket = options.ticket.ok_or(DeviceError::NoTicket)?;
            for relay in &options.relays {
                node.add_relay(*relay, ticket, Instant::now());
            }
        }
        refresh_local_candidates(&mut node, tun.name(), &socket, listen_port);
        let mut routes = Routes::new(link, options.addresses);
        routes.sync(&netlink, allowed_ips(&node)).await;
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
            mtu: options.mtu,
            handle_commands: mpsc::channel(16),
        })
    }

    /// A handle that configures the device while it runs.
    pub fn handle(&self) -> DeviceHandle {
        DeviceHandle {
            commands: self.handle_commands.0.clone(),
        }
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
        let mut buffers = Buffers::new(self.mtu);
        let connection_slots = Arc::new(Semaphore::new(MAX_UAPI_CLIENTS));
        tokio::pin!(shutdown);
        let timer = tokio::time::sleep_until(self.deadline());
        tokio::pin!(timer);
        let mut addresses_check = tokio::time::interval(LOCAL_ADDRESSES_INTERVAL);
        // Relay registrations queued while the device was being set up.
        self.flush_queued().await;
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                received = self.socket.recv_segments(&mut buffers.rx) => match received {
                    Ok(first) => self.on_datagrams(first, &mut buffers).await,
                    Err(error) => tracing::debug!(%error, "UDP receive"),
                },
                read = self.tun.recv(&mut buffers.tun) => match read {
                    Ok(len) => self.on_tun_packets(len, &mut buffers).await,
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    // The interface is gone (e.g. `ip link del`): nothing left to serve.
                    Err(source) => return Err(DeviceError::TunRead(source)),
                },
                accepted = self.uapi.accept() => match accepted {
                    Ok(stream) => match connection_slots.clone().try_acquire_owned() {
                        Ok(slot) => {
                            tokio::spawn(uapi_server::serve_connection(stream, commands_tx.clone(), slot));
                        }
                        Err(_) => tracing::warn!("too many UAPI clients; refusing one"),
                    },
                    Err(error) => {
                        // E.g. out of file descriptors: don't spin on it.
                        tracing::warn!(%error, "UAPI accept");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(command) = self.handle_commands.1.recv() => self.handle_command(command).await,
                Some(command) = commands.recv() => {
                    let answer = self.handle_uapi(command.request).await;
                    let _ = command.reply.send(answer);
                },
                () = &mut timer => self.node.handle_timeout(Instant::now()),
                _ = addresses_check.tick() => refresh_local_candidates(
                    &mut self.node,
                    self.tun.name(),
                    &self.socket,
                    self.listen_port,
                ),
            }
            self.flush_queued().await;
            let deadline = self.deadline();
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
        }
        tracing::info!(iface = self.tun.name(), "device shutting down");
        Ok(())
    }

    fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.node.poll_timeout())
    }

    /// Decrypts a burst of datagrams (the first already read, then whatever
    /// else is waiting, up to [`BURST`] reads) and writes them to the TUN,
    /// coalesced.
    async fn on_datagrams(&mut self, first: Received, buffers: &mut Buffers) {
        let mut next = Some(first);
        let mut reads = 0;
        while let Some(received) = next.take() {
            let now = Instant::now();
            let batch = buffers.rx.get(..received.len).unwrap_or_default();
            // An empty datagram is still one to refuse and count.
            let empty = batch.is_empty().then_some(&[][..]);
            for datagram in batch.chunks(received.segment_size.max(1)).chain(empty) {
                let decrypted = &mut buffers.decrypted;
                let mut used = decrypted.packets.last().map_or(0, |last| last.end);
                if decrypted.arena.len() - used < datagram.len().max(MIN_DECRYPT_ROOM) {
                    self.write_decrypted(decrypted).await;
                    used = 0;
                }
                let out = &mut decrypted.arena[used..];
                if let Ok(Some(packet)) =
                    self.node.handle_datagram(now, received.from, datagram, out)
                {
                    let len = packet.len();
                    decrypted.packets.push(used..used + len);
                }
            }
            reads += 1;
            if reads < BURST {
                next = self.socket.try_recv_segments(&mut buffers.rx).ok();
            }
        }
        self.write_decrypted(&mut buffers.decrypted).await;
    }

    /// Writes the collected decrypted packets to the TUN, merging runs of
    /// TCP segments, and empties the collection.
    async fn write_decrypted(&self, decrypted: &mut Decrypted) {
        if decrypted.packets.is_empty() {
            return;
        }
        let packets: Vec<&[u8]> = decrypted
            .packets
            .iter()
            .filter_map(|range| decrypted.arena.get(range.clone()))
            .collect();
        match decrypted
            .coalescer
            .coalesce(&packets, &mut decrypted.coalesced)
        {
            Ok(writes) => {
                for range in writes {
                    if let Some(write) = decrypted.coalesced.get(range.clone()) {
                        if let Err(error) = self.tun.send(write).await {
                            tracing::debug!(%error, "writing to the TUN");
                        }
                    }
                }
            }
            // Sized so that it cannot happen (see `Buffers::new`).
            Err(error) => tracing::warn!(%error, "coalescing for the TUN"),
        }
        decrypted.packets.clear();
    }

    /// Encrypts a burst of TUN reads (the first already read, then whatever
    /// else is waiting, up to [`BURST`]) and sends them, grouped for GSO.
    async fn on_tun_packets(&mut self, first_len: usize, buffers: &mut Buffers) {
        let mut next = Some(first_len);
        let mut reads = 0;
        while let Some(len) = next.take() {
            self.encrypt_tun_read(len, buffers).await;
            reads += 1;
            if reads < BURST {
                next = self.tun.try_recv(&mut buffers.tun).ok();
            }
        }
        self.send_batch(&mut buffers.tx).await;
    }

    /// Cuts one TUN read into packets (segmenting a TCP super-packet) and
    /// encrypts each into the transmit batch, sending the batch when full.
    async fn encrypt_tun_read(&mut self, len: usize, buffers: &mut Buffers) {
        let read = buffers.tun.get(..len).unwrap_or_default();
        let (Ok(header), Some(packet)) = (VnetHdr::decode(read), read.get(VnetHdr::LEN..)) else {
            tracing::debug!(len, "TUN read without a vnet header");
            return;
        };
        let segments = loop {
            match offload::segment(&header, packet, &mut buffers.segments, buffers.stride) {
                Ok(segments) => break segments,
                Err(OffloadError::OutputTooSmall { needed, .. }) => {
                    buffers.segments.resize(needed, 0);
                }
                Err(error) => {
                    tracing::debug!(%error, "TUN packet refused");
                    return;
                }
            }
        };
        let now = Instant::now();
        for range in segments.ranges() {
            if buffers.tx.slot().is_none() {
                self.send_batch(&mut buffers.tx).await;
            }
            let (Some(slot), Some(segment)) = (buffers.tx.slot(), buffers.segments.get(range))
            else {
                continue;
            };
            if let Ok(Some(transmit)) = self.node.send_ip(now, segment, slot) {
                let (dst, written) = (transmit.dst, transmit.payload.len());
                buffers.tx.push(dst, written);
            }
        }
    }

    /// Sends the batch's datagrams, grouped for GSO, and empties it.
    async fn send_batch(&self, tx: &mut TxBatch) {
        for group in tx.groups() {
            let datagrams = tx.bytes().get(group.range.clone()).unwrap_or_default();
            if let Err(error) = self
                .socket
                .send_segments(datagrams, group.segment_size, group.dst)
                .await
            {
                tracing::debug!(%error, dst = %group.dst, "UDP send");
            }
        }
        tx.clear();
    }

    /// Sends every datagram the node queued (handshakes, keepalives, cookies).
    async fn flush_queued(&mut self) {
        while let Some(transmit) = self.node.poll_transmit() {
            if let Err(error) = self.socket.send_to(&transmit.payload, transmit.dst).await {
                tracing::debug!(%error, dst = %transmit.dst, "UDP send");
            }
        }
    }

    /// Answers a [`DeviceHandle`] request.
    async fn handle_command(&mut self, command: HandleCommand) {
        let now = std::time::Instant::now();
        // A requester that stopped waiting is no reason to fail.
        match command {
            HandleCommand::Set(set, reply) => {
                let _ = reply.send(self.handle_set(&set).await);
            }
            HandleCommand::State(reply) => {
                let _ = reply.send(self.snapshot());
            }
            HandleCommand::RenewRelayTicket(ticket) => self.node.renew_relay_ticket(ticket, now),
            HandleCommand::RelayRegistrations(reply) => {
                let _ = reply.send(self.node.relay_registrations());
            }
            HandleCommand::Candidates(reply) => {
                let _ = reply.send(self.node.own_candidates());
            }
            HandleCommand::PeerCandidates(key, candidates, reply) => {
                let _ = reply.send(self.node.set_peer_candidates(&key, candidates, now));
            }
        }
    }

    /// The device as `get=1` reports it.
    fn snapshot(&self) -> warren_uapi::DeviceState {
        configure::snapshot(&self.node, self.listen_port, self.fwmark, SystemTime::now())
    }

    async fn handle_uapi(&mut self, request: UapiRequest) -> String {
        match request {
            UapiRequest::Stats => stats::format_stats(&self.node),
            UapiRequest::Uapi(Request::Get) => warren_uapi::format_get_response(&self.snapshot()),
            UapiRequest::Uapi(Request::Set(set)) => match self.handle_set(&set).await {
                Ok(()) => warren_uapi::format_errno(errno::SUCCESS),
                Err(errno) => warren_uapi::format_errno(errno),
            },
        }
    }

    /// Applies a `set`: first the part that can fail (the socket), so a
    /// failure leaves the peers untouched, then the peers, which cannot
    /// fail, then the routes, which are best effort (see [`crate::routes`]).
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
                let socket = GsoSocket::bind(port, fwmark).map_err(socket_error)?;
                self.listen_port = socket.port().map_err(socket_error)?;
                self.socket = socket;
            }
            _ if fwmark != self.fwmark => self.socket.set_fwmark(fwmark).map_err(socket_error)?,
            _ => {}
        }
        self.fwmark = fwmark;
        configure::apply(&mut self.node, set);
        refresh_local_candidates(
            &mut self.node,
            self.tun.name(),
            &self.socket,
            self.listen_port,
        );
        self.routes
            .sync(&self.netlink, allowed_ips(&self.node))
            .await;
        Ok(())
    }
}

/// Tells the node this host's addresses (with the device's port), for
/// peers on the same network. A host whose addresses cannot be listed keeps
/// the ones it had: NAT traversal still has the relays' view.
fn refresh_local_candidates(node: &mut Node, own_interface: &str, socket: &GsoSocket, port: u16) {
    match local_addresses::interface_addresses() {
        Ok(all) => {
            let candidates =
                local_addresses::candidate_addresses(&all, own_interface, socket.is_dual_stack())
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect();
            node.set_local_candidates(candidates);
        }
        Err(error) => tracing::debug!(%error, "listing the host's addresses"),
    }
}

fn allowed_ips(node: &Node) -> Vec<ip_network::IpNetwork> {
    node.peers()
        .into_iter()
        .flat_map(|peer| peer.allowed_ips)
        .collect()
}
