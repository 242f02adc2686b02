//! Translation between UAPI requests and the mesh core.
//!
//! A `set` request is parsed completely (by `warren-uapi`) before anything
//! here runs, and applying it to the [`Node`] cannot fail half-way: every
//! change is one the node accepts. A `get` is answered from a snapshot.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use warren_mesh::{Node, PeerConfig, PeerStats};
use warren_uapi::{DeviceState, PeerChange, PeerState, SetRequest};
use warren_wire::PublicKey;

/// Applies the peer and key parts of a `set` request. The socket parts
/// (listen port, fwmark) are the driver's, applied before this runs, and
/// so is the refusal of a request to remove the private key (a warren
/// device always has one).
pub fn apply(node: &mut Node, request: &SetRequest) {
    if let Some(Some(private_key)) = request.private_key {
        node.set_private_key(&private_key.into());
    }
    if request.replace_peers {
        node.remove_all_peers();
    }
    let own_key = node.public_key();
    for change in &request.peers {
        let key = PublicKey::from(change.public_key);
        if key == own_key {
            // As wireguard-go does: a device is never its own peer.
            continue;
        }
        if change.remove {
            node.remove_peer(&key);
        } else if node.has_peer(&key) {
            update_peer(node, &key, change);
        } else if !change.update_only {
            let config = PeerConfig {
                preshared_key: preshared_key(change).flatten(),
                endpoint: change.endpoint,
                persistent_keepalive: change.persistent_keepalive_interval.unwrap_or(0),
                allowed_ips: change.allowed_ips.clone(),
            };
            // Neither our own key (skipped above) nor a duplicate (checked).
            let _ = node.add_peer(key, config);
        }
    }
}

fn update_peer(node: &mut Node, key: &PublicKey, change: &PeerChange) {
    // The peer exists and is not us, so none of these can fail.
    if let Some(psk) = preshared_key(change) {
        let _ = node.set_preshared_key(key, psk);
    }
    if let Some(endpoint) = change.endpoint {
        let _ = node.set_endpoint(key, Some(endpoint));
    }
    if let Some(seconds) = change.persistent_keepalive_interval {
        let _ = node.set_persistent_keepalive(key, seconds);
    }
    if change.replace_allowed_ips {
        let _ = node.set_allowed_ips(key, change.allowed_ips.clone());
    } else {
        for network in &change.allowed_ips {
            let _ = node.add_allowed_ip(key, *network);
        }
    }
}

/// The requested PSK change: `None` = unchanged, `Some(None)` = remove.
fn preshared_key(change: &PeerChange) -> Option<Option<[u8; 32]>> {
    change
        .preshared_key
        .map(|key| if key.is_zero() { None } else { Some(key.0) })
}

/// The device as `get=1` reports it.
pub fn snapshot(node: &Node, listen_port: u16, fwmark: u32, wall_clock: SystemTime) -> DeviceState {
    DeviceState {
        private_key: Some((&node.private_key()).into()),
        listen_port,
        fwmark,
        peers: node
            .peers()
            .iter()
            .map(|peer| peer_state(peer, wall_clock))
            .collect(),
    }
}

fn peer_state(peer: &PeerStats, wall_clock: SystemTime) -> PeerState {
    PeerState {
        public_key: peer.key.into(),
        preshared_key: peer.preshared_key.map(warren_uapi::Key),
        // `wg show` has one endpoint field: where the peer's traffic goes
        // now (the relay while relayed), else its direct endpoint if known.
        endpoint: peer.path.destination().or(peer.endpoint),
        last_handshake: peer
            .last_handshake
            .and_then(|ago| wall_clock.checked_sub(ago))
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .filter(|since_epoch| *since_epoch > Duration::ZERO),
        rx_bytes: peer.rx_bytes,
        tx_bytes: peer.tx_bytes,
        persistent_keepalive_interval: peer.persistent_keepalive,
        allowed_ips: peer.allowed_ips.clone(),
    }
}
