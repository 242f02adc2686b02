//! The send side of [`Node`]: packets from the TUN, and what the timers
//! send (handshake retries, keepalives, direct probes, disco calls).

use super::*;

/// A `CallMeMaybe` telling `peer` this node's `candidates`, sealed and
/// framed to go through `relay`; records the call.
pub(super) fn call_me_maybe(
    peer: &mut Peer,
    now: Instant,
    relay: SocketAddr,
    candidates: Vec<SocketAddr>,
    prefix: [u8; 8],
    counter: &mut u32,
) -> Transmit {
    peer.last_call = Some(now);
    *counter = counter.wrapping_add(1);
    let call = peer.disco.seal(
        &disco::Message::CallMeMaybe(candidates),
        disco::DiscoNonce::new(prefix, *counter),
    );
    Transmit::udp(relay, framed(peer.key, &call))
}

impl Node {
    /// Handles an IP packet read from the TUN: routes it to the peer whose
    /// allowed IPs contain its destination and encrypts it into `out`,
    /// framed for the relay when the peer's path goes through one.
    ///
    /// Returns the datagram to send: the encrypted packet, or, without a
    /// session, a handshake initiation (boringtun keeps the packet until the
    /// handshake completes). `None` means the packet is waiting on a
    /// handshake already under way. `out` must be at least
    /// `packet.len() + MAX_OVERHEAD` and 148 bytes long.
    pub fn send_ip<'a>(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &'a mut [u8],
    ) -> Result<Option<Transmit<&'a mut [u8]>>, Dropped> {
        self.now = now;
        let Some(destination) = Tunn::dst_address(packet) else {
            return Err(self.drop_unattributed(DropReason::NotIp));
        };
        if out.len() < packet.len() + MAX_OVERHEAD || out.len() < MIN_OUT_BUFFER + SEND_HEADER_LEN {
            return Err(self.drop_unattributed(DropReason::TooLarge));
        }
        let relay = self.relays.preferred();
        let Some(peer) = self
            .routes
            .longest_match(destination)
            .and_then(|(_, index)| self.peers.get_mut(index))
        else {
            return Err(self.drop_unattributed(DropReason::NoRoute));
        };
        let path = peer.path(now, relay);
        // The datagram starts at `out[0]` either way: after the relay's
        // header when relayed, at once when not.
        let split = match path {
            Path::Relay(_) => out
                .split_first_chunk_mut::<SEND_HEADER_LEN>()
                .map(|(header, body)| (Some(header), body)),
            Path::Direct(_) | Path::Unknown => Some((None, &mut *out)),
        };
        let Some((header, body)) = split else {
            // Never: `out` was checked to be longer than a header above.
            self.drops.count(DropReason::TooLarge);
            return Err(Dropped {
                reason: DropReason::TooLarge,
            });
        };
        let header_len = if header.is_some() { SEND_HEADER_LEN } else { 0 };
        // (destination, WireGuard datagram length)
        let sent = match (peer.tunn.encapsulate(packet, body), path) {
            (TunnResult::WriteToNetwork(datagram), Path::Direct(dst)) => Ok((dst, datagram.len())),
            (TunnResult::WriteToNetwork(datagram), Path::Relay(relay)) => {
                // A handshake also tries the direct endpoint: if it gets
                // through, the answer proves the direct path.
                if let (Some(endpoint), Some(&1)) = (peer.endpoint, datagram.first()) {
                    self.queued
                        .push_back(Transmit::udp(endpoint, datagram.to_vec()));
                }
                if let Some(header) = header {
                    *header = send_header(&peer.key);
                }
                Ok((relay, datagram.len()))
            }
            (TunnResult::WriteToNetwork(_), Path::Unknown) => Err(DropReason::NoEndpoint),
            (TunnResult::Err(error), _) => Err(DropReason::from_wireguard(&error)),
            (
                TunnResult::Done
                | TunnResult::WriteToTunnelV4(..)
                | TunnResult::WriteToTunnelV6(..),
                _,
            ) => return Ok(None),
        };
        match sent {
            Ok((dst, len)) => {
                peer.note_sent(now, len);
                Ok(Some(Transmit::udp(dst, &mut out[..header_len + len])))
            }
            Err(reason) => {
                peer.note_drop(reason);
                self.drops.count(reason);
                Err(Dropped { reason })
            }
        }
    }

    /// Advances timers to `now`: handshake retries, rekeys, keepalives,
    /// persistent keepalives and relay registrations. Their datagrams are
    /// queued for [`Node::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        self.relays.handle_timeout(now, &mut self.queued);
        if now >= self.next_rate_limit_reset {
            self.rate_limiter.reset_count();
            self.next_rate_limit_reset = now + RATE_LIMIT_WINDOW;
        }
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + TIMER_TICK;
        let relay = self.relays.preferred();
        let candidates = self.own_candidates();
        for peer in self.peers.values_mut() {
            let mut outputs: [Option<Vec<u8>>; 2] = [None, None];
            match peer.tunn.update_timers(&mut self.scratch[..]) {
                TunnResult::WriteToNetwork(datagram) => outputs[0] = Some(datagram.to_vec()),
                TunnResult::Err(error) => {
                    tracing::trace!(peer = ?peer.key, ?error, "timer");
                }
                _ => {}
            }
            if peer.keepalive_due(now) {
                if let TunnResult::WriteToNetwork(datagram) =
                    peer.tunn.encapsulate(&[], &mut self.scratch[..])
                {
                    outputs[1] = Some(datagram.to_vec());
                }
            }
            let path = peer.path(now, relay);
            if peer.direct_probe_due(now, path) {
                peer.last_direct_probe = Some(now);
                for target in peer.probe_targets(now) {
                    let TunnResult::WriteToNetwork(probe) =
                        peer.tunn.encapsulate(&[], &mut self.scratch[..])
                    else {
                        continue;
                    };
                    let probe = probe.to_vec();
                    if let (Some(&1), Path::Relay(relay)) = (probe.first(), path) {
                        // Without a session the probe is a handshake
                        // initiation: it goes through the relay too, and
                        // to every target, as one initiation.
                        for target in peer.probe_targets(now) {
                            self.queued.push_back(Transmit::udp(target, probe.clone()));
                        }
                        self.queued
                            .push_back(Transmit::udp(relay, framed(peer.key, &probe)));
                        break;
                    }
                    self.queued.push_back(Transmit::udp(target, probe));
                }
            }
            if let (Path::Relay(relay), false) = (path, candidates.is_empty()) {
                if peer.call_due(now, path) {
                    let call = call_me_maybe(
                        peer,
                        now,
                        relay,
                        candidates.clone(),
                        self.disco_prefix,
                        &mut self.disco_counter,
                    );
                    self.queued.push_back(call);
                }
            }
            for datagram in outputs.into_iter().flatten() {
                peer.note_sent(now, datagram.len());
                match path {
                    Path::Direct(dst) => self.queued.push_back(Transmit::udp(dst, datagram)),
                    Path::Relay(relay) => {
                        // Keepalives and handshakes also try the direct
                        // endpoint, so a direct path can prove itself.
                        if let Some(endpoint) = peer.endpoint {
                            self.queued
                                .push_back(Transmit::udp(endpoint, datagram.clone()));
                        }
                        self.queued
                            .push_back(Transmit::udp(relay, framed(peer.key, &datagram)));
                    }
                    Path::Unknown => {
                        peer.note_drop(DropReason::NoEndpoint);
                        self.drops.count(DropReason::NoEndpoint);
                    }
                }
            }
        }
    }
}
