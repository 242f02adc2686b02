//! The control plane's own mesh device: the CIDR's first address, every
//! node as a peer, registered with the relays like any node, and kept in
//! step with the peer map.

use crate::cluster::{Cluster, PeerEvent};
use crate::nodes::{NodeRecord, Registry};
use crate::serve::{ServeError, ServeOptions};
use ip_network::Ipv4Network;
use std::net::{IpAddr, SocketAddr};
use tokio::sync::broadcast;
use warren_device::netlink::IfAddress;
use warren_device::{DeviceHandle, DeviceOptions, RunningDevice};
use warren_relay_proto::SigningKey;
use warren_uapi::{IpNetwork, PeerChange, SetRequest};
use warren_wire::PrivateKey;

/// How long the device's own relay ticket lasts: it is minted by the
/// control plane for itself at every start.
const OWN_TICKET_LIFETIME: u64 = 10 * 365 * 24 * 3600;

/// The device, with every stored node as a peer, on a thread of its own.
pub async fn start(
    options: &ServeOptions,
    private_key: &PrivateKey,
    signing_key: &SigningKey,
    registry: &Registry,
    relays: &[SocketAddr],
) -> Result<RunningDevice, ServeError> {
    let mut config = SetRequest {
        private_key: Some(Some(private_key.into())),
        listen_port: Some(options.wg_port),
        ..SetRequest::default()
    };
    config.peers = registry.nodes().map(node_peer).collect();
    let mut device = DeviceOptions::new(options.iface.clone());
    device.addresses = vec![IfAddress {
        address: IpAddr::V4(registry.allocator().control_address()),
        prefix_len: options.mesh_cidr.netmask(),
    }];
    device.listen_port = options.wg_port;
    device.config = Some(config);
    device.relays = relays.to_vec();
    device.ticket = Some(signing_key.mint(
        private_key.public_key(),
        warren_os::unix_now() + OWN_TICKET_LIFETIME,
    ));
    Ok(RunningDevice::start(device).await?)
}

/// A node as a peer of the control plane's device.
fn node_peer(node: &NodeRecord) -> PeerChange {
    PeerChange {
        endpoint: node
            .private_address
            .map(|ip| SocketAddr::new(ip, node.wg_port)),
        replace_allowed_ips: true,
        allowed_ips: vec![IpNetwork::V4(Ipv4Network::from(node.mesh_ip))],
        ..PeerChange::new(node.public_key.into())
    }
}

/// Keeps the device's peers in step with the nodes. After falling behind
/// the events it rebuilds its peers from the registry, so a node removed
/// meanwhile is not left as a peer.
pub async fn follow_joins(
    cluster: Cluster,
    mut events: broadcast::Receiver<PeerEvent>,
    device: DeviceHandle,
) {
    loop {
        let (set, what) = match events.recv().await {
            Ok(PeerEvent::Joined(node)) => (
                SetRequest {
                    peers: vec![node_peer(&node)],
                    ..SetRequest::default()
                },
                node.name,
            ),
            Ok(PeerEvent::Left(node)) => (
                SetRequest {
                    peers: vec![PeerChange {
                        remove: true,
                        ..PeerChange::new(node.public_key.into())
                    }],
                    ..SetRequest::default()
                },
                node.name,
            ),
            Ok(PeerEvent::Assignments) => continue,
            Ok(PeerEvent::Candidates { node, candidates }) => {
                if let Err(error) = device
                    .set_peer_candidates(node.public_key, candidates)
                    .await
                {
                    tracing::debug!(name = %node.name, %error, "a node's candidates");
                }
                continue;
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(
                    missed,
                    "the control plane's device missed peer-map changes; resynchronising"
                );
                let Ok(peers) = cluster
                    .with(|state| state.registry().nodes().map(node_peer).collect::<Vec<_>>())
                    .await
                else {
                    return;
                };
                match resync(&device, peers).await {
                    Some(set) => (set, "every node".to_owned()),
                    None => continue,
                }
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let Err(error) = device.set(set).await {
            tracing::warn!(%what, %error, "updating the control plane's device");
        }
    }
}

/// The changes that make the device's peers exactly `peers`: the others
/// removed, these added or updated (an update keeps a peer's session).
async fn resync(device: &DeviceHandle, mut peers: Vec<PeerChange>) -> Option<SetRequest> {
    let current = match device.state().await {
        Ok(state) => state.peers,
        Err(error) => {
            tracing::warn!(%error, "reading the control plane's device");
            return None;
        }
    };
    let stale: Vec<PeerChange> = current
        .iter()
        .filter(|peer| {
            !peers
                .iter()
                .any(|wanted| wanted.public_key == peer.public_key)
        })
        .map(|peer| PeerChange {
            remove: true,
            ..PeerChange::new(peer.public_key)
        })
        .collect();
    peers.extend(stale);
    Some(SetRequest {
        peers,
        ..SetRequest::default()
    })
}
