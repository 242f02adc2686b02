//! Keeps the kernel's routes through the TUN in step with the peers'
//! allowed IPs, so traffic for a peer is routed into the device.
//!
//! Routes are a convenience on top of WireGuard (wireguard-go and
//! boringtun-cli install none): a route that cannot be installed — most
//! often because the prefix is already routed through another interface —
//! is logged and retried at the next sync, and never undoes or blocks a
//! configuration change.

use crate::netlink::{IfAddress, Netlink, NetlinkError};
use ip_network::IpNetwork;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The routes the device has installed through its interface.
pub struct Routes {
    link: u32,
    connected: Vec<IfAddress>,
    installed: BTreeSet<IpNetwork>,
}

impl Routes {
    /// Routes via interface `link`, whose own subnets (`connected`) the
    /// kernel already routes.
    pub fn new(link: u32, connected: Vec<IfAddress>) -> Routes {
        Routes {
            link,
            connected,
            installed: BTreeSet::new(),
        }
    }

    /// The routes wanted for a set of allowed IPs: each prefix, except those
    /// inside a connected subnet (already routed) and default routes (which
    /// would take over the host's own connectivity; route those by hand).
    pub fn wanted(&self, allowed: impl IntoIterator<Item = IpNetwork>) -> BTreeSet<IpNetwork> {
        allowed
            .into_iter()
            .filter(|network| network.netmask() != 0)
            .filter(|network| !self.connected.iter().any(|own| covers(own, network)))
            .collect()
    }

    /// Adds missing routes and removes stale ones, going on past failures;
    /// returns the failures (each also logged).
    pub async fn sync(
        &mut self,
        netlink: &Netlink,
        allowed: impl IntoIterator<Item = IpNetwork>,
    ) -> Vec<NetlinkError> {
        let wanted = self.wanted(allowed);
        let mut failures = Vec::new();
        for stale in self
            .installed
            .difference(&wanted)
            .copied()
            .collect::<Vec<_>>()
        {
            match netlink.delete_route(self.link, stale).await {
                Ok(()) => {
                    self.installed.remove(&stale);
                }
                Err(error) => failures.push(error),
            }
        }
        for missing in wanted
            .difference(&self.installed)
            .copied()
            .collect::<Vec<_>>()
        {
            match netlink.add_route(self.link, missing).await {
                Ok(()) => {
                    self.installed.insert(missing);
                }
                Err(error) => failures.push(error),
            }
        }
        for error in &failures {
            tracing::warn!(%error, "route not changed; will retry at the next configuration change");
        }
        failures
    }
}

/// Whether `network` lies inside the subnet of interface address `own`.
fn covers(own: &IfAddress, network: &IpNetwork) -> bool {
    if network.netmask() < own.prefix_len {
        return false;
    }
    match (own.address, network.network_address()) {
        (IpAddr::V4(own_ip), IpAddr::V4(first)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(own.prefix_len))
                .unwrap_or(0);
            u32::from(own_ip) & mask == u32::from(first) & mask
        }
        (IpAddr::V6(own_ip), IpAddr::V6(first)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(own.prefix_len))
                .unwrap_or(0);
            u128::from(own_ip) & mask == u128::from(first) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNetwork {
        text.parse().unwrap()
    }

    #[test]
    fn connected_subnets_and_default_routes_are_not_installed() {
        let own = IfAddress {
            address: "10.9.0.1".parse().unwrap(),
            prefix_len: 24,
        };
        let routes = Routes::new(1, vec![own]);
        let wanted = routes.wanted([
            net("10.9.0.2/32"),
            net("10.9.0.0/16"),
            net("10.10.0.0/24"),
            net("0.0.0.0/0"),
            net("fd00::/64"),
        ]);
        let expected: BTreeSet<IpNetwork> =
            [net("10.9.0.0/16"), net("10.10.0.0/24"), net("fd00::/64")].into();
        assert_eq!(wanted, expected);
    }
}
