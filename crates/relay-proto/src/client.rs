//! The node side of the relay protocol, sans-IO: registration, keepalive,
//! re-registration, and the `Send`/`Recv` framing.
//!
//! [`RelayClient`] is what a node (the device, later) runs per relay, on the
//! same UDP socket as WireGuard: feed it every datagram from the relay's
//! address ([`RelayClient::handle_datagram`]), call
//! [`RelayClient::handle_timeout`] when [`RelayClient::poll_timeout`]
//! passes, and after every call drain [`RelayClient::poll_transmit`] (frames
//! for the relay) and [`RelayClient::poll_event`].
//!
//! It registers on creation and re-registers by itself: at once when the
//! relay answers `NOT_REGISTERED` (a restarted relay has no sessions) or
//! `STALE_CHALLENGE`, and when the relay has not answered anything for
//! [`DEAD_AFTER`]. Until registered, requests are retried every
//! [`RETRY_INTERVAL`].
//!
//! The relay's `Error` frames are not authenticated (nothing is, before
//! registration): a forged one costs at most a re-registration.

use crate::crypto::Transcript;
use crate::transmit::Transmit;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use warren_wire::frame::SEND_HEADER_LEN;
use warren_wire::{
    DecodeError, ErrorCode, Frame, PrivateKey, PublicKey, RegisterProof, RegisterRequest,
    Registered, Ticket,
};
use x25519_dalek::StaticSecret;

/// How often an unanswered registration is retried: a lost datagram costs a
/// second, and a relay that is down sees one 140-byte request per second.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// Keepalive interval once registered. It keeps the NAT mapping towards the
/// relay open (UDP conntrack forgets unreplied flows after 30 s) and bounds
/// how long an idle node takes to notice that a restarted relay forgot it.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// With nothing heard from the relay for this long (3 keepalives and a
/// half), the session is presumed lost and the client registers again.
pub const DEAD_AFTER: Duration = Duration::from_secs(35);

/// What happened, for the node to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The relay registered us; `reflexive` is our address as it sees it.
    Registered {
        /// Our reflexive address.
        reflexive: SocketAddr,
        /// When the session (the ticket) expires, unix seconds.
        expires: u64,
    },
    /// A `Pong` reported a different reflexive address (a NAT rebinding):
    /// the client registers again from it.
    ReflexiveChanged(SocketAddr),
    /// The session was lost (the relay forgot us or went silent); the
    /// client is registering again.
    Lost,
    /// The relay refused something (`TICKET_EXPIRED`: a new ticket is needed,
    /// see [`RelayClient::set_ticket`]; `UNKNOWN_DESTINATION`: a peer is not
    /// on this relay).
    Refused(ErrorCode),
}

/// A datagram another node sent us through the relay (borrowed from the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    /// The sender, as its relay session proved it.
    pub src: PublicKey,
    /// What it sent (a WireGuard datagram).
    pub payload: &'a [u8],
}

/// A datagram the client did not accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Not from this client's relay address.
    #[error("datagram from {0}, not from the relay")]
    NotFromRelay(SocketAddr),
    /// Malformed or of another version.
    #[error("malformed relay frame: {0}")]
    Malformed(#[from] DecodeError),
    /// A frame a relay never sends to a node (e.g. `Send`).
    #[error("unexpected frame from the relay")]
    Unexpected,
    /// Sending needs a session.
    #[error("not registered with the relay")]
    NotRegistered,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for a challenge or for `Registered`; retry at `retry_at`.
    /// `proved`: a proof went out, so a `Registered` is expected.
    Registering { retry_at: Instant, proved: bool },
    /// Registered; ping at `ping_at`; `ping` is the txid of the last ping
    /// sent, the only one a `Pong` is accepted for.
    Registered {
        ping_at: Instant,
        reflexive: SocketAddr,
        ping: Option<u64>,
        /// A registration with a new ticket under way (see
        /// [`RelayClient::renew_ticket`]): the session stays usable meanwhile.
        renewal: Option<Renewal>,
    },
}

/// A ticket renewal in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Renewal {
    retry_at: Instant,
    proved: bool,
}

/// One node's link to one relay. See the module docs.
pub struct RelayClient {
    relay: SocketAddr,
    private_key: StaticSecret,
    node_key: PublicKey,
    ticket: Ticket,
    state: State,
    last_heard: Instant,
    next_txid: u64,
    queued: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
}

impl RelayClient {
    /// A client for the relay at `relay`, registering `private_key`'s public
    /// key with `ticket`. The first `RegisterRequest` is queued at once.
    pub fn new(relay: SocketAddr, private_key: &PrivateKey, ticket: Ticket, now: Instant) -> Self {
        let node_key = private_key.public_key();
        let private_key = StaticSecret::from(private_key);
        let mut client = RelayClient {
            relay,
            private_key,
            node_key,
            ticket,
            state: State::Registering {
                retry_at: now,
                proved: false,
            },
            last_heard: now,
            next_txid: 1,
            queued: VecDeque::new(),
            events: VecDeque::new(),
        };
        client.request(now);
        client
    }

    /// The relay's address.
    pub fn relay_addr(&self) -> SocketAddr {
        self.relay
    }

    /// The ticket the client registers with.
    pub fn ticket(&self) -> &Ticket {
        &self.ticket
    }

    /// Our key.
    pub fn node_key(&self) -> PublicKey {
        self.node_key
    }

    /// Whether a session exists (as far as the client knows).
    pub fn is_registered(&self) -> bool {
        matches!(self.state, State::Registered { .. })
    }

    /// Our address as the relay last saw it, once registered.
    pub fn reflexive_addr(&self) -> Option<SocketAddr> {
        match self.state {
            State::Registered { reflexive, .. } => Some(reflexive),
            State::Registering { .. } => None,
        }
    }

    /// Registers again with a fresh ticket (the control plane hands out
    /// short-lived ones and renews them) without leaving the session: while
    /// registered, the relay keeps forwarding on the current registration
    /// until the renewal's `Registered` arrives; otherwise this is
    /// [`RelayClient::set_ticket`].
    pub fn renew_ticket(&mut self, ticket: Ticket, now: Instant) {
        self.ticket = ticket;
        match &mut self.state {
            State::Registered { renewal, .. } => {
                *renewal = Some(Renewal {
                    retry_at: now + RETRY_INTERVAL,
                    proved: false,
                });
                self.send_frame(Frame::RegisterRequest(RegisterRequest {
                    node_key: self.node_key,
                    ticket: self.ticket,
                }));
            }
            State::Registering { .. } => self.request(now),
        }
    }

    /// Replaces the ticket (e.g. before the old one expires) and registers
    /// with it at once.
    pub fn set_ticket(&mut self, ticket: Ticket, now: Instant) {
        self.ticket = ticket;
        self.request(now);
    }

    /// Starts registering again now (e.g. after the node's address changed).
    pub fn reregister(&mut self, now: Instant) {
        if self.is_registered() {
            self.events.push_back(ClientEvent::Lost);
        }
        self.request(now);
    }

    /// Handles a datagram from `from` (a warren frame: check with
    /// [`warren_wire::is_warren_frame`] first). Returns a datagram another
    /// node sent through the relay; everything else is internal or queued.
    pub fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &'a [u8],
    ) -> Result<Option<Received<'a>>, ClientError> {
        // IPv4-mapped addresses as plain IPv4, on both sides.
        let canonical = |mut addr: SocketAddr| {
            addr.set_ip(addr.ip().to_canonical());
            addr
        };
        if canonical(from) != canonical(self.relay) {
            return Err(ClientError::NotFromRelay(from));
        }
        let frame = Frame::decode(datagram)?;
        self.last_heard = now;
        match frame {
            Frame::Recv { src, payload } => return Ok(Some(Received { src, payload })),
            Frame::Challenge(challenge) => {
                // Only an outstanding request or renewal is answered; a late
                // duplicate challenge after `Registered` is ignored.
                match &mut self.state {
                    State::Registering { .. } => self.prove(&challenge),
                    State::Registered {
                        renewal: Some(renewal),
                        ..
                    } => {
                        renewal.proved = true;
                        self.prove(&challenge);
                    }
                    State::Registered { .. } => {}
                }
            }
            Frame::Registered(Registered { observed, expires }) => {
                // Only the answer to a proof we sent: an unsolicited (or
                // spoofed) `Registered` cannot set our reflexive address.
                let expected = matches!(
                    self.state,
                    State::Registering { proved: true, .. }
                        | State::Registered {
                            renewal: Some(Renewal { proved: true, .. }),
                            ..
                        }
                );
                if !expected {
                    return Err(ClientError::Unexpected);
                }
                self.state = State::Registered {
                    ping_at: now + KEEPALIVE_INTERVAL,
                    reflexive: observed,
                    ping: None,
                    renewal: None,
                };
                tracing::debug!(relay = %self.relay, reflexive = %observed, "registered");
                self.events.push_back(ClientEvent::Registered {
                    reflexive: observed,
                    expires,
                });
            }
            Frame::Pong { observed, txid } => {
                if let State::Registered {
                    reflexive, ping, ..
                } = self.state
                {
                    // Only the pong for our last ping counts.
                    if ping != Some(txid) {
                        return Err(ClientError::Unexpected);
                    }
                    if reflexive != observed {
                        // The NAT moved us: the session is bound to the old
                        // address, so register from the new one.
                        self.events
                            .push_back(ClientEvent::ReflexiveChanged(observed));
                        self.request(now);
                    }
                }
            }
            Frame::Error { code } => match code {
                ErrorCode::NOT_REGISTERED | ErrorCode::STALE_CHALLENGE => {
                    if self.is_registered() {
                        self.events.push_back(ClientEvent::Lost);
                    }
                    self.request(now);
                }
                other => self.events.push_back(ClientEvent::Refused(other)),
            },
            _ => return Err(ClientError::Unexpected),
        }
        Ok(None)
    }

    /// Frames `payload` as a `Send` to `dst` into `out` (cleared first);
    /// send `out` to [`RelayClient::relay_addr`].
    pub fn encode_send(
        &self,
        dst: &PublicKey,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ClientError> {
        if !self.is_registered() {
            return Err(ClientError::NotRegistered);
        }
        out.clear();
        out.reserve(SEND_HEADER_LEN + payload.len());
        Frame::Send { dst: *dst, payload }.encode(out);
        Ok(())
    }

    /// Advances timers: registration retries, keepalives, dead-relay detection.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Registering { retry_at, .. } if now >= retry_at => self.request(now),
            State::Registering { .. } => {}
            State::Registered { .. }
                if now.saturating_duration_since(self.last_heard) >= DEAD_AFTER =>
            {
                tracing::debug!(relay = %self.relay, "relay silent; registering again");
                self.events.push_back(ClientEvent::Lost);
                self.request(now);
            }
            State::Registered {
                renewal: Some(renewal),
                ..
            } if now >= renewal.retry_at => {
                // The renewal got no answer: ask again.
                let ticket = self.ticket;
                self.renew_ticket(ticket, now);
            }
            State::Registered {
                ping_at,
                reflexive,
                renewal,
                ..
            } if now >= ping_at => {
                let txid = self.next_txid;
                self.next_txid = self.next_txid.wrapping_add(1);
                self.send_frame(Frame::Ping { txid });
                self.state = State::Registered {
                    ping_at: now + KEEPALIVE_INTERVAL,
                    reflexive,
                    ping: Some(txid),
                    renewal,
                };
            }
            State::Registered { .. } => {}
        }
    }

    /// When [`RelayClient::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Instant {
        match self.state {
            State::Registering { retry_at, .. } => retry_at,
            State::Registered {
                ping_at, renewal, ..
            } => {
                let next = ping_at.min(self.last_heard + DEAD_AFTER);
                renewal.map_or(next, |r| next.min(r.retry_at))
            }
        }
    }

    /// The next frame to send to the relay.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.queued.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Queues a `RegisterRequest` and waits for its challenge.
    fn request(&mut self, now: Instant) {
        self.state = State::Registering {
            retry_at: now + RETRY_INTERVAL,
            proved: false,
        };
        self.send_frame(Frame::RegisterRequest(RegisterRequest {
            node_key: self.node_key,
            ticket: self.ticket,
        }));
    }

    fn prove(&mut self, challenge: &warren_wire::Challenge) {
        let transcript = Transcript {
            node_key: &self.node_key,
            ticket: &self.ticket,
            ephemeral: &challenge.ephemeral,
            cookie: &challenge.cookie,
            observed: &challenge.observed,
        };
        let Ok(mac) = transcript.node_mac(&self.private_key) else {
            tracing::debug!(relay = %self.relay, "challenge with a weak ephemeral key ignored");
            return;
        };
        self.send_frame(Frame::RegisterProof(RegisterProof {
            node_key: self.node_key,
            ticket: self.ticket,
            ephemeral: challenge.ephemeral,
            cookie: challenge.cookie,
            mac,
        }));
        if let State::Registering { proved, .. } = &mut self.state {
            *proved = true;
        }
    }

    fn send_frame(&mut self, frame: Frame<'_>) {
        self.queued
            .push_back(Transmit::udp(self.relay, frame.to_vec()));
    }
}
