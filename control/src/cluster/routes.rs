//! The proxy's routing table from the cluster's state: each service with a
//! host, at its healthy replicas on online nodes. The owner thread
//! publishes a new table after any job that changed it
//! ([`ClusterState::publish_routes`]), so the proxy follows a replica's
//! health and its node's connection as soon as they are known.

use super::ClusterState;
use crate::proxy::{Route, RouteTable, Upstream};
use crate::store::ReplicaRecord;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::sync::watch;
use warren_proto::Mode;

impl ClusterState {
    /// The routing table the state implies now.
    pub fn routes(&self) -> RouteTable {
        let routes = self
            .workloads
            .services()
            .iter()
            .filter(|service| !service.spec.hosts.is_empty())
            .map(|service| {
                let spec = &service.spec;
                let upstreams: Vec<Upstream> = self
                    .workloads
                    .routable_replicas_of(&spec.name)
                    .filter(|replica| self.is_online(&replica.node))
                    .filter_map(|replica| {
                        let (mode, addr) = self.proxied_at(replica)?;
                        Some(Upstream {
                            replica: replica.id.to_string(),
                            node: replica.node.clone(),
                            addr,
                            mode,
                        })
                    })
                    .collect();
                Route {
                    service: spec.name.clone(),
                    hosts: spec.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
                    path: spec.path.clone().unwrap_or_else(|| "/".to_owned()),
                    strip_prefix: spec.strip_prefix,
                    sticky: spec.sticky,
                    h2: spec.upstream_h2,
                    upstreams: Arc::from(upstreams),
                }
            })
            .collect();
        RouteTable::new(routes).with_unreachable(self.unreachable_replicas())
    }

    /// Where the replicas of routed services on offline nodes answered.
    fn unreachable_replicas(&self) -> Vec<SocketAddr> {
        self.workloads
            .services()
            .iter()
            .filter(|service| !service.spec.hosts.is_empty())
            .flat_map(|service| self.workloads.replicas_of(&service.spec.name))
            .filter(|replica| !self.is_online(&replica.node))
            .filter_map(|replica| Some(self.proxied_at(replica)?.1))
            .collect()
    }

    /// How `replica`'s node joined, and where the proxy sends to it: its
    /// node's mesh address and the host port of the service's first port.
    pub(super) fn proxied_at(&self, replica: &ReplicaRecord) -> Option<(Mode, SocketAddr)> {
        let (mode, mesh_ip) = self.member(&replica.node)?;
        let port = *replica.host_ports.first()?;
        Some((mode, SocketAddr::new(IpAddr::V4(mesh_ip), port)))
    }

    /// The latest routing table, and every new one from now on.
    pub fn subscribe_routes(&self) -> watch::Receiver<Arc<RouteTable>> {
        self.routes.subscribe()
    }

    /// Tells the proxy the routing table if it changed.
    pub fn publish_routes(&self) {
        let table = self.routes();
        self.routes.send_if_modified(|current| {
            if **current == table {
                return false;
            }
            *current = Arc::new(table);
            true
        });
    }

    /// Whether `node`'s agent is connected (the control plane's host always is).
    pub(super) fn is_online(&self, node: &str) -> bool {
        self.online.contains_key(node) || self.is_control_node(node)
    }
}
