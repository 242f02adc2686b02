//! What `warren serve` checks and reads off its host before it starts: that
//! the mesh CIDR is free here, and which addresses agents reach it at.

use crate::serve::{ServeError, ServeOptions};
use ip_network::Ipv4Network;
use std::net::{IpAddr, SocketAddr};
use warren_device::local_addresses;
use warren_uapi::IpNetwork;

/// Refuses a mesh CIDR that holds one of this host's addresses or overlaps
/// one of its routes: mesh routes would hijack that network. (A listing
/// that fails is no reason to refuse.)
pub async fn check_cidr_is_free(cidr: Ipv4Network) -> Result<(), ServeError> {
    let all = local_addresses::interface_addresses().unwrap_or_default();
    let taken = all.into_iter().find(|a| match a.address {
        IpAddr::V4(v4) => cidr.contains(v4),
        IpAddr::V6(_) => false,
    });
    if let Some(taken) = taken {
        return Err(ServeError::MeshCidrInUse {
            cidr,
            address: taken.address,
            interface: taken.interface,
        });
    }
    let routes = match warren_device::netlink::Netlink::connect() {
        Ok(netlink) => netlink.main_table_routes().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let overlapping = routes.into_iter().find(|route| match route {
        IpNetwork::V4(route) => {
            route.contains(cidr.network_address()) || cidr.contains(route.network_address())
        }
        IpNetwork::V6(_) => false,
    });
    match overlapping {
        Some(route) => Err(ServeError::MeshCidrRouted { cidr, route }),
        None => Ok(()),
    }
}

/// Where join tokens send agents: the advertised address, else the listen
/// address, else (listening on a wildcard) the host's own addresses.
pub fn advertised(options: &ServeOptions) -> Result<Vec<SocketAddr>, ServeError> {
    let port = options.listen.port();
    if let Some(ip) = options.advertise_address {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    if !options.listen.ip().is_unspecified() {
        return Ok(vec![options.listen]);
    }
    let all = local_addresses::interface_addresses().map_err(|_| ServeError::NoAdvertiseAddress)?;
    let own: Vec<SocketAddr> =
        local_addresses::candidate_addresses(&all, "", options.listen.is_ipv6())
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
    if own.is_empty() {
        return Err(ServeError::NoAdvertiseAddress);
    }
    Ok(own)
}
