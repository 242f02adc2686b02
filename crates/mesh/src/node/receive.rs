//! The receive side of [`Node`]: datagrams from the socket, relayed
//! frames, disco messages, and working out which peer sent what.

use super::send::call_me_maybe;
use super::*;

/// The kind of WireGuard message a datagram claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageKind {
    HandshakeInitiation,
    HandshakeResponse,
    CookieReply,
    Data,
}

/// Whether an address a peer named could be probed: unicast, routable
/// from here in principle, with a port.
fn is_probe_target(candidate: SocketAddr) -> bool {
    let ip = candidate.ip();
    let special = match ip {
        IpAddr::V4(v4) => v4.is_broadcast() || v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback(),
    };
    candidate.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !special
}

/// How a WireGuard datagram reached the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// Straight from this address.
    Direct(SocketAddr),
    /// Through the relay at `relay`, which vouches that `src` sent it.
    Relay { relay: SocketAddr, src: PublicKey },
}

/// What boringtun did with an incoming datagram, without borrowing its buffer.
enum Decapsulated {
    Nothing,
    Reply(Vec<u8>),
    Deliver { len: usize, source: IpAddr },
    Failed(DropReason),
}

impl Node {
    /// Handles a datagram that arrived on the UDP socket from `from`: a
    /// WireGuard message straight from a peer, or a relay's frame (which may
    /// carry a WireGuard message from a peer).
    ///
    /// Returns the decrypted IP packet to write to the TUN (inside `out`), or
    /// `None` when the datagram was protocol traffic (its replies are queued
    /// for [`Node::poll_transmit`]). A datagram that fails to authenticate is
    /// counted and changes no session, endpoint or counter other than the
    /// drop counters. One that authenticates but carries an inner source
    /// outside the sender's allowed IPs is dropped after it has counted as
    /// received and moved the endpoint, as in the kernel's WireGuard: the
    /// sender proved its key. Only a datagram that came straight from the
    /// peer moves its endpoint; one relayed never does. `out` must be at
    /// least as long as `datagram`.
    pub fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        out: &'a mut [u8],
    ) -> Result<Option<&'a mut [u8]>, Dropped> {
        self.now = now;
        if !is_warren_frame(datagram) {
            return self.handle_wireguard(now, Arrival::Direct(from), datagram, out);
        }
        match self
            .relays
            .handle_frame(now, from, datagram, &mut self.queued)
        {
            Some(Ok(Some(received))) if disco::is_disco(received.payload) => {
                self.handle_disco(now, received.src, received.payload)?;
                Ok(None)
            }
            Some(Ok(Some(received))) => {
                let arrival = Arrival::Relay {
                    relay: from,
                    src: received.src,
                };
                self.handle_wireguard(now, arrival, received.payload, out)
            }
            Some(Ok(None)) => Ok(None),
            Some(Err(())) | None => Err(self.drop_unattributed(DropReason::Malformed)),
        }
    }

    fn handle_wireguard<'a>(
        &mut self,
        now: Instant,
        arrival: Arrival,
        datagram: &[u8],
        out: &'a mut [u8],
    ) -> Result<Option<&'a mut [u8]>, Dropped> {
        if out.len() < datagram.len() || out.len() < MIN_OUT_BUFFER {
            return Err(self.drop_unattributed(DropReason::TooLarge));
        }
        let from = match arrival {
            Arrival::Direct(from) | Arrival::Relay { relay: from, .. } => from,
        };
        let (index, kind) = match self.identify_sender(arrival, datagram) {
            Ok(identified) => identified,
            Err(reason) => return Err(self.drop_unattributed(reason)),
        };
        let Some(peer) = self.peers.get_mut(&index) else {
            return Err(self.drop_unattributed(DropReason::UnknownPeer));
        };
        if let Arrival::Relay { src, .. } = arrival {
            // The relay vouches for who sent it; a message for another
            // peer's session arriving in someone else's name is refused.
            if src != peer.key {
                peer.note_drop(DropReason::Unauthenticated);
                self.drops.count(DropReason::Unauthenticated);
                return Err(Dropped {
                    reason: DropReason::Unauthenticated,
                });
            }
        }
        let outcome = match peer.tunn.decapsulate(Some(from.ip()), datagram, out) {
            TunnResult::Done => Decapsulated::Nothing,
            TunnResult::Err(error) => Decapsulated::Failed(DropReason::from_wireguard(&error)),
            TunnResult::WriteToNetwork(reply) => Decapsulated::Reply(reply.to_vec()),
            TunnResult::WriteToTunnelV4(packet, source) => Decapsulated::Deliver {
                len: packet.len(),
                source: source.into(),
            },
            TunnResult::WriteToTunnelV6(packet, source) => Decapsulated::Deliver {
                len: packet.len(),
                source: source.into(),
            },
        };
        if let Decapsulated::Failed(reason) = outcome {
            peer.note_drop(reason);
            self.drops.count(reason);
            return Err(Dropped { reason });
        }

        // The datagram authenticated as this peer. Straight from an address,
        // it proves the direct path (and may roam the endpoint there). A
        // cookie reply is not proof of the peer's key (anyone who saw our
        // initiation's MAC1 can make one), so it proves nothing.
        peer.rx_bytes += datagram.len() as u64;
        if let (Arrival::Direct(from), true) = (arrival, kind != MessageKind::CookieReply) {
            if peer.endpoint != Some(from) {
                tracing::debug!(peer = ?peer.key, %from, "peer endpoint roamed");
                peer.endpoint = Some(from);
            }
            peer.last_direct_rx = Some(now);
        }

        match outcome {
            Decapsulated::Reply(reply) => {
                // Answers go back the way the message came.
                let peer_key = peer.key;
                let reply_route = |datagram: &[u8]| match arrival {
                    Arrival::Direct(from) => Transmit::udp(from, datagram.to_vec()),
                    Arrival::Relay { relay, .. } => {
                        Transmit::udp(relay, framed(peer_key, datagram))
                    }
                };
                peer.note_sent(now, reply.len());
                self.queued.push_back(reply_route(&reply));
                // A completed handshake releases packets boringtun queued while waiting.
                while let TunnResult::WriteToNetwork(packet) = peer.tunn.decapsulate(None, &[], out)
                {
                    peer.note_sent(now, packet.len());
                    self.queued.push_back(reply_route(packet));
                }
                Ok(None)
            }
            Decapsulated::Deliver { len, source } => {
                let owner = self.routes.longest_match(source).map(|(_, owner)| *owner);
                if owner != Some(index) {
                    peer.note_drop(DropReason::SourceNotAllowed);
                    self.drops.count(DropReason::SourceNotAllowed);
                    return Err(Dropped {
                        reason: DropReason::SourceNotAllowed,
                    });
                }
                Ok(out.get_mut(..len))
            }
            // `Failed` returned above.
            Decapsulated::Nothing | Decapsulated::Failed(_) => Ok(None),
        }
    }

    /// Handles a disco message `src` sent through a relay: its candidates
    /// become probe targets, probed at the next tick, and if this node has
    /// not called the peer within a second it calls back at once, so both
    /// ends probe together (which is what punches through cone NATs).
    fn handle_disco(
        &mut self,
        now: Instant,
        src: PublicKey,
        message: &[u8],
    ) -> Result<(), Dropped> {
        let Some(index) = self.index_by_key.get(&src).copied() else {
            return Err(self.drop_unattributed(DropReason::UnknownPeer));
        };
        let verdict = match self.peers.get(&index) {
            Some(peer) => match disco::claimed_sender(message) {
                Some(claimed) if claimed == src => match peer.disco.open(message) {
                    Ok(opened) if opened.1.follows(peer.last_disco) => Ok(opened),
                    Ok(_) => Err(DropReason::Replayed),
                    Err(disco::DiscoError::Malformed) => Err(DropReason::Malformed),
                    Err(disco::DiscoError::Unauthenticated) => Err(DropReason::Unauthenticated),
                },
                _ => Err(DropReason::Unauthenticated),
            },
            None => return Err(self.drop_unattributed(DropReason::UnknownPeer)),
        };
        let (disco::Message::CallMeMaybe(candidates), nonce) = match verdict {
            Ok(opened) => opened,
            Err(reason) => {
                if let Some(peer) = self.peers.get_mut(&index) {
                    peer.note_drop(reason);
                }
                self.drops.count(reason);
                return Err(Dropped { reason });
            }
        };
        let candidates = self.probeable(candidates);
        let own = self.own_candidates();
        let relay = self.relays.preferred();
        let Some(peer) = self.peers.get_mut(&index) else {
            return Ok(());
        };
        peer.last_disco = Some(nonce);
        tracing::debug!(peer = ?peer.key, ?candidates, "peer called: probing its candidates");
        if peer.take_candidates(candidates, now) {
            // Probe at the next tick rather than wait a probe interval.
            self.next_tick = self.next_tick.min(now);
        }
        let answered_lately = peer
            .last_call
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
        if let (Some(relay), false, false) = (relay, own.is_empty(), answered_lately) {
            let call = call_me_maybe(
                peer,
                now,
                relay,
                own,
                self.disco_prefix,
                &mut self.disco_counter,
            );
            self.queued.push_back(call);
        }
        Ok(())
    }

    /// The candidates worth probing: unicast addresses with a port, not a
    /// relay, not this node, IPv6 only if this node has it, and only the
    /// first few (a peer lists the likeliest first).
    pub(super) fn probeable(&self, candidates: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let own = self.own_candidates();
        let relays = self.relays.addrs();
        let has_ipv6 = self.local_candidates.iter().any(SocketAddr::is_ipv6);
        candidates
            .into_iter()
            .filter(|c| {
                is_probe_target(*c)
                    && !relays.contains(c)
                    && !own.contains(c)
                    && (c.is_ipv4() || has_ipv6)
            })
            .take(crate::peer::MAX_PROBED_CANDIDATES)
            .collect()
    }

    /// Works out which peer a datagram claims to come from, checking MAC1
    /// (and the cookie when under load) before doing any expensive work.
    fn identify_sender(
        &mut self,
        arrival: Arrival,
        datagram: &[u8],
    ) -> Result<(u32, MessageKind), DropReason> {
        let from = match arrival {
            Arrival::Direct(from) | Arrival::Relay { relay: from, .. } => from,
        };
        let mut cookie = [0u8; 64];
        let packet = match self
            .rate_limiter
            .verify_packet(Some(from.ip()), datagram, &mut cookie)
        {
            Ok(packet) => packet,
            Err(TunnResult::WriteToNetwork(reply)) => {
                // Under load: answer with a cookie (64 bytes, smaller than the
                // 148-byte initiation it answers, so never an amplifier), the
                // way the initiation came.
                let payload = match arrival {
                    Arrival::Direct(_) => reply.to_vec(),
                    Arrival::Relay { src, .. } => framed(src, reply),
                };
                self.queued.push_back(Transmit::udp(from, payload));
                return Err(DropReason::UnderLoad);
            }
            Err(TunnResult::Err(error)) => return Err(DropReason::from_wireguard(&error)),
            Err(_) => return Err(DropReason::Malformed),
        };
        match packet {
            Packet::HandshakeInit(init) => {
                let half = parse_handshake_anon(
                    &StaticSecret::from(&self.private_key),
                    &self.public_key.into(),
                    &init,
                )
                .map_err(|error| DropReason::from_wireguard(&error))?;
                let index = self
                    .index_by_key
                    .get(&PublicKey::from_bytes(half.peer_static_public))
                    .copied()
                    .ok_or(DropReason::UnknownPeer)?;
                Ok((index, MessageKind::HandshakeInitiation))
            }
            Packet::HandshakeResponse(response) => {
                Ok((response.receiver_idx >> 8, MessageKind::HandshakeResponse))
            }
            Packet::PacketCookieReply(reply) => {
                Ok((reply.receiver_idx >> 8, MessageKind::CookieReply))
            }
            Packet::PacketData(data) => Ok((data.receiver_idx >> 8, MessageKind::Data)),
        }
    }
}
