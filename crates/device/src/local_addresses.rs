//! The host's own addresses, as NAT traversal candidates: where a peer on
//! the same network (or with IPv6 on both ends) can reach this device
//! without going through a NAT.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Interfaces whose addresses peers could never reach this host at:
/// container and VM bridges, and the host ends of their veth pairs.
const VIRTUAL_PREFIXES: [&str; 5] = ["docker", "br-", "veth", "virbr", "cni"];

/// Most addresses offered (peers probe only the first few anyway).
const MAX_ADDRESSES: usize = 4;

/// One address of one interface, as `getifaddrs(3)` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// The interface's name.
    pub interface: String,
    /// Its `IFF_*` flags.
    pub flags: u32,
    /// The address.
    pub address: IpAddr,
}

/// The addresses of every interface of the host (this network namespace).
pub fn interface_addresses() -> io::Result<Vec<InterfaceAddress>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut all = Vec::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, alive
        // until freeifaddrs; its name is a C string and its address, when
        // present, is a sockaddr of the family it names.
        unsafe {
            let entry = &*cursor;
            if let Some(address) = ip_of(entry.ifa_addr) {
                all.push(InterfaceAddress {
                    interface: CStr::from_ptr(entry.ifa_name)
                        .to_string_lossy()
                        .into_owned(),
                    flags: entry.ifa_flags,
                    address,
                });
            }
            cursor = entry.ifa_next;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(all)
}

/// # Safety
/// `addr` is null or points at a sockaddr of the family it names.
unsafe fn ip_of(addr: *const libc::sockaddr) -> Option<IpAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY (caller): the family tells which sockaddr this is.
    unsafe {
        match i32::from((*addr).sa_family) {
            libc::AF_INET => {
                let v4 = &*addr.cast::<libc::sockaddr_in>();
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
            }
            libc::AF_INET6 => {
                let v6 = &*addr.cast::<libc::sockaddr_in6>();
                Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

/// The addresses worth offering peers, in order (IPv4 first): those of
/// interfaces that are up, not loopback, not point-to-point (tunnels,
/// including `own_interface`), not container or VM bridges; not link-local,
/// and IPv6 only when `ipv6` (the device's socket takes IPv6).
pub fn candidate_addresses(
    all: &[InterfaceAddress],
    own_interface: &str,
    ipv6: bool,
) -> Vec<IpAddr> {
    let excluded_flags = (libc::IFF_LOOPBACK | libc::IFF_POINTOPOINT) as u32;
    let mut chosen: Vec<IpAddr> = all
        .iter()
        .filter(|a| a.flags & libc::IFF_UP as u32 != 0 && a.flags & excluded_flags == 0)
        .filter(|a| a.interface != own_interface)
        .filter(|a| !VIRTUAL_PREFIXES.iter().any(|p| a.interface.starts_with(p)))
        .map(|a| a.address)
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
            IpAddr::V6(v6) => {
                ipv6 && !v6.is_loopback() && !v6.is_unicast_link_local() && !v6.is_unspecified()
            }
        })
        .collect();
    chosen.sort_by_key(IpAddr::is_ipv6);
    chosen.dedup();
    chosen.truncate(MAX_ADDRESSES);
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(interface: &str, flags: i32, address: &str) -> InterfaceAddress {
        InterfaceAddress {
            interface: interface.to_owned(),
            flags: flags as u32,
            address: address.parse().unwrap(),
        }
    }

    #[test]
    fn offers_lan_and_global_addresses_not_tunnels_bridges_or_link_local() {
        let up = libc::IFF_UP;
        let all = [
            entry("lo", up | libc::IFF_LOOPBACK, "127.0.0.1"),
            entry("eth0", up, "fe80::1"),
            entry("eth0", up, "2001:db8::10"),
            entry("eth0", up, "192.168.1.10"),
            entry("warren0", up | libc::IFF_POINTOPOINT, "100.96.0.2"),
            entry("wg1", up, "10.9.0.1"),
            entry("docker0", up, "172.17.0.1"),
            entry("eth1", 0, "10.0.0.5"),
            entry("eth2", up, "169.254.3.3"),
        ];
        let chosen = candidate_addresses(&all, "wg1", true);
        let expected: Vec<IpAddr> = vec![
            "192.168.1.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ];
        assert_eq!(chosen, expected);
        assert_eq!(
            candidate_addresses(&all, "wg1", false),
            expected[..1].to_vec(),
            "no IPv6 candidates from a socket without IPv6"
        );
    }

    #[test]
    fn lists_this_namespaces_loopback() {
        let all = interface_addresses().unwrap();
        assert!(all
            .iter()
            .any(|a| a.interface == "lo" && a.address == IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
}
