//! Pieces of the relay end-to-end tests: a `warren relay` process in a
//! namespace, nodes that run the sans-IO relay client over a real UDP socket
//! in theirs, and a `/metrics` scrape.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warren_netns_tests::wg::warren_bin;
use warren_netns_tests::{Host, Lab, Proc, Spawn};
use warren_relay_proto::client::{ClientEvent, RelayClient};
use warren_relay_proto::SigningKey;
use warren_wire::{is_warren_frame, PublicKey, Ticket};

/// The relay's UDP port.
pub const RELAY_PORT: u16 = 3478;
/// The relay's metrics port.
pub const METRICS_PORT: u16 = 9478;
/// The port every node's socket is bound to.
pub const NODE_PORT: u16 = 51820;

/// Starts `warren relay` on `host`, trusting `control_key` (base64), and
/// waits until it serves.
pub fn start_relay(lab: &Lab, host: &Host, control_key: &str) -> Result<Proc> {
    let listen = SocketAddr::from((host.ip, RELAY_PORT)).to_string();
    let metrics = SocketAddr::from((host.ip, METRICS_PORT)).to_string();
    let relay = lab.spawn(
        &host.ns,
        Spawn::new(warren_bin()?)
            .args(["relay", "--listen", &listen, "--control-key", control_key])
            .args(["--metrics", &metrics])
            .env("WARREN_LOG", "debug")
            .name("relay"),
    )?;
    relay.wait_for_log("relay listening on", Duration::from_secs(10))?;
    Ok(relay)
}

/// Unix seconds `offset` from now (negative: in the past).
pub fn unix_in(offset: i64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    now.saturating_add_signed(offset)
}

/// A node: a UDP socket in its host's namespace and the relay client.
pub struct Node {
    pub sock: UdpSocket,
    pub client: RelayClient,
    pub key: PublicKey,
    pub events: Vec<ClientEvent>,
    /// Datagrams received through the relay: (source key, payload).
    pub received: Vec<(PublicKey, Vec<u8>)>,
}

/// The public key of a private key.
pub fn public_of(private: [u8; 32]) -> PublicKey {
    warren_wire::PrivateKey::from_bytes(private).public_key()
}

impl Node {
    /// A node on `host` (socket on port [`NODE_PORT`]) that registers with
    /// the relay at `relay` using `ticket`.
    pub fn new(
        lab: &Lab,
        host: &Host,
        private: [u8; 32],
        ticket: Ticket,
        relay: SocketAddr,
    ) -> Result<Node> {
        Node::on_port(lab, host, NODE_PORT, private, ticket, relay)
    }

    /// Like [`Node::new`], with the socket on `port`.
    pub fn on_port(
        lab: &Lab,
        host: &Host,
        port: u16,
        private: [u8; 32],
        ticket: Ticket,
        relay: SocketAddr,
    ) -> Result<Node> {
        let sock = lab.in_ns(&host.ns, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)))??;
        Ok(Node {
            sock,
            client: RelayClient::new(
                relay,
                &warren_wire::PrivateKey::from_bytes(private),
                ticket,
                Instant::now(),
            ),
            key: public_of(private),
            events: Vec::new(),
            received: Vec::new(),
        })
    }

    /// Runs the client for at most `timeout`, until `done` holds.
    pub fn pump_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&Node) -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 65_535];
        loop {
            let now = Instant::now();
            self.client.handle_timeout(now);
            self.flush()?;
            self.events
                .extend(std::iter::from_fn(|| self.client.poll_event()));
            if done(self) {
                return Ok(());
            }
            if now >= deadline {
                bail!(
                    "timed out after {timeout:?}; registered: {}, events: {:?}",
                    self.client.is_registered(),
                    self.events
                );
            }
            let wake = self.client.poll_timeout().min(deadline);
            let wait = wake
                .saturating_duration_since(now)
                .clamp(Duration::from_millis(1), Duration::from_millis(100));
            self.sock.set_read_timeout(Some(wait))?;
            match self.sock.recv_from(&mut buf) {
                Ok((len, from)) => {
                    let datagram = &buf[..len];
                    if !is_warren_frame(datagram) {
                        continue;
                    }
                    match self.client.handle_datagram(Instant::now(), from, datagram) {
                        Ok(Some(received)) => {
                            self.received
                                .push((received.src, received.payload.to_vec()));
                        }
                        Ok(None) => {}
                        Err(error) => eprintln!("node {:?}: {error}", self.key),
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => return Err(e).context("receiving"),
            }
        }
    }

    /// Runs the client until it is registered.
    pub fn register(&mut self, timeout: Duration) -> Result<()> {
        self.pump_until(timeout, |node| node.client.is_registered())
    }

    /// Sends `payload` to `dst` through the relay.
    pub fn send(&mut self, dst: &PublicKey, payload: &[u8]) -> Result<()> {
        let mut frame = Vec::new();
        self.client.encode_send(dst, payload, &mut frame)?;
        self.sock.send_to(&frame, self.client.relay_addr())?;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        while let Some(transmit) = self.client.poll_transmit() {
            self.sock
                .send_to(&transmit.payload, transmit.dst)
                .context("sending to the relay")?;
        }
        Ok(())
    }
}

/// Mints a ticket for `key` valid until `expires` (unix seconds).
pub fn ticket(signer: &SigningKey, key: PublicKey, expires: u64) -> Ticket {
    signer.mint(key, expires)
}

/// Scrapes `/metrics` from inside the relay's namespace.
pub fn scrape(lab: &Lab, host: &Host) -> Result<String> {
    let addr = SocketAddr::from((host.ip, METRICS_PORT));
    lab.in_ns(&host.ns, move || -> Result<String> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
        stream.set_read_timeout(Some(Duration::from_secs(3)))?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: relay\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        if !text.starts_with("HTTP/1.1 200 OK") {
            bail!("metrics answered: {text}");
        }
        Ok(text)
    })?
}

/// The value of one sample line (`name` with its labels, if any).
pub fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
