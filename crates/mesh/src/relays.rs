//! The relays a node is registered with, as seen from the mesh core.
//!
//! Each relay gets a [`RelayClient`] (registration, keepalives,
//! re-registration; see `warren_relay_proto::client`) driven over the node's one
//! UDP socket, so the NAT mapping a relay observes is the one WireGuard
//! uses. Relays are kept in preference order: a peer without a trusted
//! direct path is reached through the first relay this node is registered
//! with.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;
use warren_relay_proto::client::{ClientEvent, Received, RelayClient};
use warren_relay_proto::Transmit;
use warren_wire::frame::{send_header, SEND_HEADER_LEN};
use warren_wire::{PrivateKey, PublicKey, Ticket};

/// The node's relay clients, in preference order.
#[derive(Default)]
pub(crate) struct Relays {
    clients: Vec<RelayClient>,
}

impl Relays {
    /// Adds a relay at the end of the preference order (replacing a client
    /// for the same address, e.g. to give it a new ticket).
    pub(crate) fn add(
        &mut self,
        relay: SocketAddr,
        private_key: &PrivateKey,
        ticket: Ticket,
        now: Instant,
    ) {
        let client = RelayClient::new(relay, private_key, ticket, now);
        match self.clients.iter_mut().find(|c| c.relay_addr() == relay) {
            Some(existing) => *existing = client,
            None => self.clients.push(client),
        }
    }

    /// The relay to reach peers through: the first one registered.
    pub(crate) fn preferred(&self) -> Option<SocketAddr> {
        self.clients
            .iter()
            .find(|c| c.is_registered())
            .map(RelayClient::relay_addr)
    }

    /// Each relay's address and whether this node is registered with it.
    pub(crate) fn registrations(&self) -> Vec<(SocketAddr, bool)> {
        self.clients
            .iter()
            .map(|c| (c.relay_addr(), c.is_registered()))
            .collect()
    }

    /// Every relay's address, registered or not.
    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.clients.iter().map(RelayClient::relay_addr).collect()
    }

    /// This node's address as each registered relay sees it, the preferred
    /// relay's first, without repeats.
    pub(crate) fn reflexives(&self) -> Vec<SocketAddr> {
        let mut all = Vec::new();
        for reflexive in self
            .clients
            .iter()
            .filter(|c| c.is_registered())
            .filter_map(RelayClient::reflexive_addr)
        {
            if !all.contains(&reflexive) {
                all.push(reflexive);
            }
        }
        all
    }

    /// Renews every relay registration with `ticket`, keeping the sessions.
    pub(crate) fn renew(&mut self, ticket: Ticket, now: Instant) {
        for client in &mut self.clients {
            client.renew_ticket(ticket, now);
        }
    }

    /// Registers again with every relay under a new identity (the tickets
    /// must be for the new key, or the relays refuse them).
    pub(crate) fn rekey(&mut self, private_key: &PrivateKey, now: Instant) {
        let old = std::mem::take(&mut self.clients);
        for client in old {
            self.add(client.relay_addr(), private_key, *client.ticket(), now);
        }
    }

    /// Hands a warren frame from `from` to that relay's client. Returns what
    /// a peer sent through the relay, if the frame carried one; protocol
    /// replies go to `queue`. `None` from the outer option: no such relay.
    pub(crate) fn handle_frame<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        frame: &'a [u8],
        queue: &mut VecDeque<Transmit>,
    ) -> Option<Result<Option<Received<'a>>, ()>> {
        let client = self.clients.iter_mut().find(|c| c.relay_addr() == from)?;
        let result = client.handle_datagram(now, from, frame).map_err(|error| {
            tracing::debug!(relay = %from, %error, "relay frame refused");
        });
        drain(client, queue);
        Some(result)
    }

    /// Advances every client's timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant, queue: &mut VecDeque<Transmit>) {
        for client in &mut self.clients {
            if client.poll_timeout() <= now {
                client.handle_timeout(now);
            }
            drain(client, queue);
        }
    }

    /// The earliest client timer.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.clients.iter().map(RelayClient::poll_timeout).min()
    }
}

/// Moves a client's frames into the node's queue and logs its events.
fn drain(client: &mut RelayClient, queue: &mut VecDeque<Transmit>) {
    queue.extend(std::iter::from_fn(|| client.poll_transmit()));
    while let Some(event) = client.poll_event() {
        let relay = client.relay_addr();
        match event {
            ClientEvent::Registered { reflexive, .. } => {
                tracing::info!(%relay, %reflexive, "registered with relay");
            }
            ClientEvent::Refused(code) => tracing::warn!(%relay, ?code, "relay refused"),
            other => tracing::debug!(%relay, ?other, "relay event"),
        }
    }
}

/// A WireGuard datagram for `peer`, framed to go through a relay.
pub(crate) fn framed(peer: PublicKey, datagram: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(SEND_HEADER_LEN + datagram.len());
    frame.extend_from_slice(&send_header(&peer));
    frame.extend_from_slice(datagram);
    frame
}
