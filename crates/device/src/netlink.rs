//! Interface configuration through rtnetlink: MTU, up, addresses, routes.
//!
//! [`Netlink`] is a small handle over one route-netlink socket in the
//! calling thread's network namespace. It configures the interface a
//! [`Tun`](crate::tun::Tun) created (the equivalent of `ip link set mtu/up`,
//! `ip addr add` and `ip route add/del ... dev`) and reads that state back.
//!
//! Routes added here are `proto static`, `scope link`, in the main table,
//! through the interface without a gateway: one per prefix of a peer's
//! allowed IPs. Nothing needs undoing on exit: closing the TUN removes the
//! interface and with it every address and route on it.
//!
//! Errors say what was being done, naming the interface (`setting MTU 1420
//! on warren0: Invalid argument (os error 22)`); the cause is an
//! [`io::Error`] carrying the kernel's errno.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::pin;

use futures::{StreamExt, TryStreamExt};
use ip_network::IpNetwork;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteScope, RouteType,
};
use rtnetlink::{LinkUnspec, RouteMessageBuilder};

/// Errors from [`Netlink`]. Each names the operation and the interface
/// (by name when it can still be looked up, else by index).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetlinkError {
    /// The route-netlink socket could not be opened.
    #[error("opening a route netlink socket: {0}")]
    Connect(#[source] io::Error),
    /// [`Netlink::connect`] was called outside a tokio runtime.
    #[error("opening a route netlink socket: no tokio runtime on this thread")]
    NoRuntime,
    /// No interface has this name.
    #[error("looking up interface {name}: no such interface")]
    NoSuchLink {
        /// The name looked up.
        name: String,
    },
    /// A prefix length longer than the address (over 32 for IPv4, 128 for
    /// IPv6). Nothing was sent to the kernel.
    #[error("adding address {address}/{prefix_len} to {link}: prefix length too long")]
    InvalidPrefix {
        /// The interface.
        link: String,
        /// The address.
        address: IpAddr,
        /// The rejected prefix length.
        prefix_len: u8,
    },
    /// The destination of a route to add is already routed in the main
    /// table, but not through this interface (another interface, a gateway
    /// or a different metric). Nothing was changed.
    #[error("adding route {route} dev {link}: the prefix is already routed elsewhere")]
    RouteConflict {
        /// The interface.
        link: String,
        /// The route's destination.
        route: IpNetwork,
    },
    /// The kernel refused a request, or the reply could not be read.
    #[error("{op}: {source}")]
    Request {
        /// What was being done.
        op: Op,
        /// The kernel's errno, or the decoding failure.
        #[source]
        source: io::Error,
    },
}

impl NetlinkError {
    /// The kernel's errno, if the kernel refused the request.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            NetlinkError::Connect(e) | NetlinkError::Request { source: e, .. } => e.raw_os_error(),
            _ => None,
        }
    }
}

/// The operation a [`NetlinkError::Request`] was doing; its `Display` is
/// the first half of the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// [`Netlink::link_index`].
    LookUpLink {
        /// The name looked up.
        name: String,
    },
    /// [`Netlink::link`].
    ReadLink {
        /// The interface.
        link: String,
    },
    /// [`Netlink::set_mtu`].
    SetMtu {
        /// The interface.
        link: String,
        /// The MTU asked for.
        mtu: u32,
    },
    /// [`Netlink::set_up`].
    SetUp {
        /// The interface.
        link: String,
    },
    /// [`Netlink::add_address`].
    AddAddress {
        /// The interface.
        link: String,
        /// The address and prefix length.
        address: IfAddress,
    },
    /// [`Netlink::addresses`].
    ListAddresses {
        /// The interface.
        link: String,
    },
    /// [`Netlink::add_route`].
    AddRoute {
        /// The interface.
        link: String,
        /// The destination.
        route: IpNetwork,
    },
    /// [`Netlink::delete_route`].
    DeleteRoute {
        /// The interface.
        link: String,
        /// The destination.
        route: IpNetwork,
    },
    /// [`Netlink::routes`].
    ListRoutes {
        /// The interface.
        link: String,
    },
    /// [`Netlink::main_table_routes`].
    ListAllRoutes,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::LookUpLink { name } => write!(f, "looking up interface {name}"),
            Op::ReadLink { link } => write!(f, "reading the state of {link}"),
            Op::SetMtu { link, mtu } => write!(f, "setting MTU {mtu} on {link}"),
            Op::SetUp { link } => write!(f, "setting {link} up"),
            Op::AddAddress { link, address } => write!(f, "adding address {address} to {link}"),
            Op::ListAddresses { link } => write!(f, "listing the addresses of {link}"),
            Op::AddRoute { link, route } => write!(f, "adding route {route} dev {link}"),
            Op::DeleteRoute { link, route } => write!(f, "deleting route {route} dev {link}"),
            Op::ListRoutes { link } => write!(f, "listing the routes via {link}"),
            Op::ListAllRoutes => write!(f, "listing the routing table"),
        }
    }
}

/// An address assigned to an interface, with the prefix length of its
/// subnet (`10.9.0.1/24`): unlike an [`IpNetwork`], host bits are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IfAddress {
    /// The interface's own address.
    pub address: IpAddr,
    /// The prefix length of the subnet it is in.
    pub prefix_len: u8,
}

impl fmt::Display for IfAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// The state of an interface as [`Netlink::link`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The interface index.
    pub index: u32,
    /// The interface name.
    pub name: String,
    /// The MTU in bytes.
    pub mtu: u32,
    /// Administratively up (`IFF_UP`, as set by [`Netlink::set_up`]).
    pub up: bool,
    /// Up and with carrier (`IFF_RUNNING`): for a TUN, a process holds it
    /// open.
    pub running: bool,
}

/// A route-netlink connection in the calling thread's network namespace.
///
/// The socket is bound to the namespace it was opened in; the connection
/// task runs on the tokio runtime `connect` was called in and stops when
/// the `Netlink` is dropped.
#[derive(Debug)]
pub struct Netlink {
    handle: rtnetlink::Handle,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for Netlink {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

impl Netlink {
    /// Opens a route-netlink socket and spawns its connection task on the
    /// current tokio runtime.
    pub fn connect() -> Result<Netlink, NetlinkError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| NetlinkError::NoRuntime)?;
        let (connection, handle, _multicast) =
            rtnetlink::new_connection().map_err(NetlinkError::Connect)?;
        let connection = runtime.spawn(connection);
        Ok(Netlink { handle, connection })
    }

    /// The index of the interface called `name`.
    pub async fn link_index(&self, name: &str) -> Result<u32, NetlinkError> {
        match self.link_by_name(name).await {
            Ok(Some(message)) => Ok(message.header.index),
            Ok(None) => Err(NetlinkError::NoSuchLink {
                name: name.to_owned(),
            }),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Err(NetlinkError::NoSuchLink {
                name: name.to_owned(),
            }),
            Err(source) => Err(NetlinkError::Request {
                op: Op::LookUpLink {
                    name: name.to_owned(),
                },
                source,
            }),
        }
    }

    /// Reads name, MTU and up/running state of interface `index`.
    pub async fn link(&self, index: u32) -> Result<LinkInfo, NetlinkError> {
        match self.link_by_index(index).await {
            Ok(message) => Ok(link_info(&message)),
            Err(source) => Err(self
                .request_error(index, source, |link| Op::ReadLink { link })
                .await),
        }
    }

    /// Sets the MTU of interface `index` (`ip link set dev … mtu`). IPv6
    /// needs at least 1280; below that the kernel removes IPv6 from the
    /// interface.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        let message = LinkUnspec::new_with_index(index).mtu(mtu).build();
        match self.handle.link().set(message).execute().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self
                .request_error(index, to_io(e), |link| Op::SetMtu { link, mtu })
                .await),
        }
    }

    /// Sets interface `index` administratively up (`ip link set dev … up`).
    pub async fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        let message = LinkUnspec::new_with_index(index).up().build();
        match self.handle.link().set(message).execute().await {
            Ok(()) => Ok(()),
            Err(e) => Err(self
                .request_error(index, to_io(e), |link| Op::SetUp { link })
                .await),
        }
    }

    /// Adds `address/prefix_len` to interface `index` (`ip addr add`),
    /// IPv4 or IPv6. The kernel also installs the route to the subnet
    /// (`10.9.0.0/24 dev …`, `proto kernel`).
    ///
    /// IPv6 addresses are added with `nodad`, so they are usable at once.
    /// Adding an address the interface already has with that prefix length
    /// is not an error.
    pub async fn add_address(
        &self,
        index: u32,
        address: IpAddr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        let max = if address.is_ipv4() { 32 } else { 128 };
        if prefix_len > max {
            return Err(NetlinkError::InvalidPrefix {
                link: self.describe(index).await,
                address,
                prefix_len,
            });
        }
        let wanted = IfAddress {
            address,
            prefix_len,
        };
        let mut request = self.handle.address().add(index, address, prefix_len);
        if address.is_ipv6() {
            // Without NODAD the address is "tentative" until the kernel's
            // DAD work runs (even on a NOARP link such as a TUN, where it
            // then skips DAD), and binding or sending from it fails with
            // EADDRNOTAVAIL meanwhile. Mesh addresses are unique by
            // allocation; there is no neighbour on a TUN to ask anyway.
            request
                .message_mut()
                .attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        let result = request.execute().await.map_err(to_io);
        let source = match result {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => match self.addresses(index).await {
                Ok(present) if present.contains(&wanted) => return Ok(()),
                _ => e,
            },
            Err(e) => e,
        };
        Err(self
            .request_error(index, source, |link| Op::AddAddress {
                link,
                address: wanted,
            })
            .await)
    }

    /// The addresses of interface `index`, IPv4 and IPv6, including the
    /// IPv6 link-local one the kernel may have generated.
    pub async fn addresses(&self, index: u32) -> Result<Vec<IfAddress>, NetlinkError> {
        let dump = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        match dump.try_collect::<Vec<AddressMessage>>().await {
            Ok(messages) => Ok(messages.iter().filter_map(if_address).collect()),
            Err(e) => Err(self
                .request_error(index, to_io(e), |link| Op::ListAddresses { link })
                .await),
        }
    }

    /// Routes `route` through interface `index`, without a gateway
    /// (`ip route add ROUTE dev … scope link proto static`), in the main
    /// table.
    ///
    /// If that route already exists, this is not an error; if the prefix is
    /// routed some other way (another interface, a gateway), it is
    /// [`NetlinkError::RouteConflict`] and nothing changes.
    pub async fn add_route(&self, index: u32, route: IpNetwork) -> Result<(), NetlinkError> {
        let message = route_message(index, route);
        let result = self
            .handle
            .route()
            .add(message)
            .execute()
            .await
            .map_err(to_io);
        let source = match result {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => match self.routes(index).await {
                Ok(present) if present.contains(&route) => return Ok(()),
                Ok(_) => {
                    return Err(NetlinkError::RouteConflict {
                        link: self.describe(index).await,
                        route,
                    })
                }
                Err(_) => e,
            },
            Err(e) => e,
        };
        Err(self
            .request_error(index, source, |link| Op::AddRoute { link, route })
            .await)
    }

    /// Removes a route [`add_route`](Netlink::add_route) added. A route
    /// that is not there is not an error; routes through the interface
    /// that warren did not add (such as the subnet route of an address)
    /// are left alone.
    pub async fn delete_route(&self, index: u32, route: IpNetwork) -> Result<(), NetlinkError> {
        let message = route_message(index, route);
        match self
            .handle
            .route()
            .del(message)
            .execute()
            .await
            .map_err(to_io)
        {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            Err(source) => Err(self
                .request_error(index, source, |link| Op::DeleteRoute { link, route })
                .await),
        }
    }

    /// The destinations of the unicast routes in the main table that go
    /// out through interface `index`, IPv4 and IPv6: those added by
    /// [`add_route`](Netlink::add_route) and the kernel's subnet routes.
    pub async fn routes(&self, index: u32) -> Result<Vec<IpNetwork>, NetlinkError> {
        match self.dump_routes().await {
            Ok(messages) => Ok(messages
                .iter()
                .filter(|m| routes_via(m, index))
                .filter_map(destination)
                .collect()),
            Err(e) => Err(self
                .request_error(index, e, |link| Op::ListRoutes { link })
                .await),
        }
    }

    /// The destinations of every unicast route in the main table except
    /// default routes, whatever interface they use: what a new network
    /// (the mesh CIDR) must not overlap.
    pub async fn main_table_routes(&self) -> Result<Vec<IpNetwork>, NetlinkError> {
        let messages = self
            .dump_routes()
            .await
            .map_err(|source| NetlinkError::Request {
                op: Op::ListAllRoutes,
                source,
            })?;
        Ok(messages
            .iter()
            .filter(|m| in_main_table(m) && m.header.destination_prefix_length > 0)
            .filter_map(destination)
            .collect())
    }

    /// Every route of every family (an AF_UNSPEC dump).
    async fn dump_routes(&self) -> Result<Vec<RouteMessage>, io::Error> {
        let dump = self
            .handle
            .route()
            .get(RouteMessageBuilder::<IpAddr>::new().build())
            .execute();
        dump.try_collect::<Vec<RouteMessage>>().await.map_err(to_io)
    }

    async fn link_by_name(&self, name: &str) -> Result<Option<LinkMessage>, io::Error> {
        let mut replies = pin!(self.handle.link().get().match_name(name).execute());
        replies.try_next().await.map_err(to_io)
    }

    async fn link_by_index(&self, index: u32) -> Result<LinkMessage, io::Error> {
        let mut replies = pin!(self.handle.link().get().match_index(index).execute());
        match replies.next().await {
            Some(reply) => reply.map_err(to_io),
            None => Err(io::Error::from_raw_os_error(libc::ENODEV)),
        }
    }

    /// The interface's name for error messages, else `interface #index`.
    async fn describe(&self, index: u32) -> String {
        match self.link_by_index(index).await {
            Ok(message) => link_info(&message).name,
            Err(_) => format!("interface #{index}"),
        }
    }

    async fn request_error(
        &self,
        index: u32,
        source: io::Error,
        op: impl FnOnce(String) -> Op,
    ) -> NetlinkError {
        NetlinkError::Request {
            op: op(self.describe(index).await),
            source,
        }
    }
}

/// The kernel's errno as an `io::Error`; anything else (a reply that did
/// not parse) as `io::ErrorKind::Other` with rtnetlink's description.
fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(message) => message.to_io(),
        other => io::Error::other(other),
    }
}

fn route_message(index: u32, route: IpNetwork) -> RouteMessage {
    match route {
        IpNetwork::V4(net) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(net.network_address(), net.netmask())
            .output_interface(index)
            .scope(RouteScope::Link)
            .build(),
        IpNetwork::V6(net) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(net.network_address(), net.netmask())
            .output_interface(index)
            .scope(RouteScope::Link)
            .build(),
    }
}

/// Whether `message` is a unicast route of the main table out of `index`.
fn routes_via(message: &RouteMessage, index: u32) -> bool {
    in_main_table(message) && message.attributes.contains(&RouteAttribute::Oif(index))
}

/// Whether a route is a unicast route of the main table.
fn in_main_table(message: &RouteMessage) -> bool {
    let table = message
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(message.header.table));
    table == u32::from(RouteHeader::RT_TABLE_MAIN) && message.header.kind == RouteType::Unicast
}

/// The destination prefix of a route; a route without one is a default
/// route.
fn destination(message: &RouteMessage) -> Option<IpNetwork> {
    let len = message.header.destination_prefix_length;
    let address = message.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
        RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
        _ => None,
    });
    let address = match address {
        Some(a) => a,
        None => match message.header.address_family {
            rtnetlink::packet_route::AddressFamily::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            rtnetlink::packet_route::AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => return None,
        },
    };
    IpNetwork::new_truncate(address, len).ok()
}

/// The interface's own address in an address message: `IFA_LOCAL` where
/// present (on a point-to-point link `IFA_ADDRESS` is the peer), else
/// `IFA_ADDRESS`.
fn if_address(message: &AddressMessage) -> Option<IfAddress> {
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let address = local.or_else(|| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })?;
    Some(IfAddress {
        address,
        prefix_len: message.header.prefix_len,
    })
}

fn link_info(message: &LinkMessage) -> LinkInfo {
    let mut name = String::new();
    let mut mtu = 0;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Mtu(m) => mtu = *m,
            _ => {}
        }
    }
    LinkInfo {
        index: message.header.index,
        name,
        mtu,
        up: message.header.flags.contains(LinkFlags::Up),
        running: message.header.flags.contains(LinkFlags::Running),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_message_is_scope_link_via_the_interface() {
        let route = IpNetwork::V4(
            ip_network::Ipv4Network::new(Ipv4Addr::new(10, 78, 0, 0), 16).expect("valid"),
        );
        let message = route_message(7, route);
        assert_eq!(message.header.scope, RouteScope::Link);
        assert_eq!(message.header.destination_prefix_length, 16);
        assert!(message.attributes.contains(&RouteAttribute::Oif(7)));
        assert!(routes_via(&message, 7));
        assert!(!routes_via(&message, 8));
        assert_eq!(destination(&message), Some(route));
    }

    #[test]
    fn error_messages_name_the_operation() {
        let err = NetlinkError::Request {
            op: Op::SetMtu {
                link: "warren0".into(),
                mtu: 1420,
            },
            source: io::Error::from_raw_os_error(libc::EINVAL),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("setting MTU 1420 on warren0: Invalid argument"),
            "{text}"
        );
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
}
