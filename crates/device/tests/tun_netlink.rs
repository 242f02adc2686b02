//! `tun` and `netlink` against the real kernel. Needs root and /dev/net/tun.
//!
//! Every test that creates an interface runs on its own thread that first
//! moves itself into a new network namespace (`unshare(CLONE_NEWNET)` only
//! affects the calling thread), then runs a current-thread tokio runtime
//! there. Nothing touches the host's namespace; when the thread ends the
//! namespace and everything in it disappears, also when the test fails.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ip_network::IpNetwork;
use tokio::net::UdpSocket;
use tokio::time::timeout;
use warren_device::netlink::{IfAddress, Netlink, NetlinkError};
use warren_device::tun::{Tun, TunError};

const TUN_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const TUN_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 2);

/// Runs `body` in a fresh network namespace on a dedicated thread, with a
/// 20 s limit; a panic in it fails the calling test.
fn in_netns<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::spawn(move || {
        // SAFETY: unshare takes no pointers; CLONE_NEWNET moves only this
        // thread into a new network namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET) (needs root): {}",
            io::Error::last_os_error()
        );
        let own = std::fs::read_link("/proc/thread-self/ns/net").expect("own netns");
        let process = std::fs::read_link("/proc/self/ns/net").expect("process netns");
        assert_ne!(own, process, "still in the process's network namespace");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime
            .block_on(async { timeout(Duration::from_secs(20), body()).await })
            .expect("test timed out");
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

fn net(address: IpAddr, len: u8) -> IpNetwork {
    IpNetwork::new(address, len).expect("valid network")
}

/// A TUN `wt0` with 10.77.0.1/24 and fd00:77::1/64, up, and its index.
async fn tun_with_addresses(netlink: &Netlink) -> (Tun, u32) {
    let tun = Tun::create("wt0").expect("create TUN");
    let index = netlink.link_index(tun.name()).await.expect("index");
    netlink
        .add_address(index, TUN_V4.into(), 24)
        .await
        .expect("add v4");
    netlink
        .add_address(index, TUN_V6.into(), 64)
        .await
        .expect("add v6");
    netlink.set_up(index).await.expect("set up");
    (tun, index)
}

#[test]
fn configure_read_back_and_remove_on_drop() {
    in_netns(|| async {
        let netlink = Netlink::connect().expect("netlink");
        let tun = Tun::create("wt0").expect("create TUN");
        assert_eq!(tun.name(), "wt0");
        let index = netlink.link_index("wt0").await.expect("index");

        let fresh = netlink.link(index).await.expect("link");
        assert_eq!(fresh.name, "wt0");
        assert!(!fresh.up, "a new TUN starts down");

        netlink.set_mtu(index, 1380).await.expect("set MTU");
        netlink
            .add_address(index, TUN_V4.into(), 24)
            .await
            .expect("add v4");
        netlink
            .add_address(index, TUN_V6.into(), 64)
            .await
            .expect("add v6");
        // Adding an address again is not an error.
        netlink
            .add_address(index, TUN_V4.into(), 24)
            .await
            .expect("add v4 again");
        netlink.set_up(index).await.expect("set up");
        let v4_route = net(Ipv4Addr::new(10, 78, 0, 0).into(), 16);
        let v6_route = net(Ipv6Addr::new(0xfd00, 0x78, 0, 0, 0, 0, 0, 0).into(), 48);
        netlink.add_route(index, v4_route).await.expect("add route");
        netlink
            .add_route(index, v6_route)
            .await
            .expect("add v6 route");
        // Adding a route that exists is not an error.
        netlink
            .add_route(index, v4_route)
            .await
            .expect("add route again");

        let link = netlink.link(index).await.expect("link");
        assert_eq!(link.index, index);
        assert_eq!(link.name, "wt0");
        assert_eq!(link.mtu, 1380);
        assert!(link.up, "{link:?}");
        assert!(link.running, "an open TUN has carrier: {link:?}");

        let addresses = netlink.addresses(index).await.expect("addresses");
        for wanted in [
            IfAddress {
                address: TUN_V4.into(),
                prefix_len: 24,
            },
            IfAddress {
                address: TUN_V6.into(),
                prefix_len: 64,
            },
        ] {
            assert!(addresses.contains(&wanted), "{wanted} in {addresses:?}");
        }
        let v4_count = addresses.iter().filter(|a| a.address.is_ipv4()).count();
        assert_eq!(v4_count, 1, "{addresses:?}");

        let routes = netlink.routes(index).await.expect("routes");
        for wanted in [
            v4_route,
            v6_route,
            // The subnet routes the addresses installed.
            net(Ipv4Addr::new(10, 77, 0, 0).into(), 24),
            net(Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 0).into(), 64),
        ] {
            assert!(routes.contains(&wanted), "{wanted} in {routes:?}");
        }
        assert_eq!(
            routes.iter().filter(|r| **r == v4_route).count(),
            1,
            "{routes:?}"
        );

        netlink
            .delete_route(index, v4_route)
            .await
            .expect("delete route");
        netlink
            .delete_route(index, v6_route)
            .await
            .expect("delete v6 route");
        let routes = netlink.routes(index).await.expect("routes");
        assert!(!routes.contains(&v4_route), "{routes:?}");
        assert!(!routes.contains(&v6_route), "{routes:?}");
        assert!(
            routes.contains(&net(Ipv4Addr::new(10, 77, 0, 0).into(), 24)),
            "deleting our route leaves the subnet route: {routes:?}"
        );
        // Deleting a route that is not there is not an error.
        netlink
            .delete_route(index, v4_route)
            .await
            .expect("delete route again");

        drop(tun);
        match netlink.link_index("wt0").await {
            Err(NetlinkError::NoSuchLink { name }) => assert_eq!(name, "wt0"),
            other => panic!("interface still there after drop: {other:?}"),
        }
        assert!(netlink.link(index).await.is_err());
        let routes = netlink.routes(index).await.expect("routes");
        assert!(routes.is_empty(), "{routes:?}");
    });
}

#[test]
fn errors_name_the_interface_and_change_nothing() {
    in_netns(|| async {
        let netlink = Netlink::connect().expect("netlink");
        let (_tun, index) = tun_with_addresses(&netlink).await;
        let before = netlink.addresses(index).await.expect("addresses");

        match netlink.add_address(index, TUN_V4.into(), 33).await {
            Err(e @ NetlinkError::InvalidPrefix { .. }) => {
                assert_eq!(
                    e.to_string(),
                    "adding address 10.77.0.1/33 to wt0: prefix length too long"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(netlink.addresses(index).await.expect("addresses"), before);

        // The kernel refuses an MTU below the minimum of 68.
        let err = netlink
            .set_mtu(index, 10)
            .await
            .expect_err("MTU 10 refused");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
        assert!(
            err.to_string().starts_with("setting MTU 10 on wt0: "),
            "{err}"
        );

        let err = netlink.set_up(9999).await.expect_err("no such index");
        assert!(
            err.to_string().starts_with("setting interface #9999 up: "),
            "{err}"
        );

        match netlink.link_index("nonexistent0").await {
            Err(NetlinkError::NoSuchLink { name }) => assert_eq!(name, "nonexistent0"),
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn route_through_another_interface_is_a_conflict() {
    in_netns(|| async {
        let netlink = Netlink::connect().expect("netlink");
        let first = Tun::create("wt0").expect("wt0");
        let second = Tun::create("wt1").expect("wt1");
        let first_index = netlink.link_index(first.name()).await.expect("index");
        let second_index = netlink.link_index(second.name()).await.expect("index");
        netlink.set_up(first_index).await.expect("up");
        netlink.set_up(second_index).await.expect("up");

        let route = net(Ipv4Addr::new(10, 78, 0, 0).into(), 16);
        netlink.add_route(first_index, route).await.expect("add");
        match netlink.add_route(second_index, route).await {
            Err(NetlinkError::RouteConflict { link, route: r }) => {
                assert_eq!(link, "wt1");
                assert_eq!(r, route);
            }
            other => panic!("{other:?}"),
        }
        assert!(netlink
            .routes(first_index)
            .await
            .expect("routes")
            .contains(&route));
        assert!(!netlink
            .routes(second_index)
            .await
            .expect("routes")
            .contains(&route));
    });
}

#[test]
fn bad_names_and_taken_names_are_errors() {
    for name in ["", "has space", "a/b", "sixteen-bytes-xx", "a:b"] {
        match Tun::create(name) {
            Err(TunError::InvalidName { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{name:?}: {other:?}"),
        }
    }
    // A valid name outside a runtime: an error before anything is created.
    match Tun::create("wt0") {
        Err(TunError::NoRuntime { .. }) => {}
        other => panic!("{other:?}"),
    }
    in_netns(|| async {
        let _first = Tun::create("wt0").expect("wt0");
        match Tun::create("wt0") {
            Err(TunError::Create { name, source }) => {
                assert_eq!(name, "wt0");
                assert_eq!(source.raw_os_error(), Some(libc::EBUSY));
            }
            other => panic!("second wt0: {other:?}"),
        }
        let templated = Tun::create("wt%d").expect("template");
        assert_eq!(templated.name(), "wt1");
    });
}

#[test]
fn packets_routed_to_the_tun_are_received() {
    in_netns(|| async {
        let netlink = Netlink::connect().expect("netlink");
        let (tun, _index) = tun_with_addresses(&netlink).await;

        let socket = UdpSocket::bind("0.0.0.0:0").await.expect("bind");
        let port = socket.local_addr().expect("local addr").port();
        let payload = b"hello through the tun";
        socket
            .send_to(payload, (PEER_V4, 9))
            .await
            .expect("send_to");

        let packet = recv_udp(&tun, |p| p.dst == IpAddr::V4(PEER_V4)).await;
        assert_eq!(packet.src, IpAddr::V4(TUN_V4));
        assert_eq!(packet.src_port, port);
        assert_eq!(packet.dst_port, 9);
        assert_eq!(packet.payload, payload);

        let socket6 = UdpSocket::bind("[::]:0").await.expect("bind v6");
        socket6
            .send_to(b"six", (PEER_V6, 9))
            .await
            .expect("send_to v6");
        let packet = recv_udp(&tun, |p| p.dst == IpAddr::V6(PEER_V6)).await;
        assert_eq!(packet.src, IpAddr::V6(TUN_V6));
        assert_eq!(packet.payload, b"six");
    });
}

#[test]
fn try_recv_drains_what_is_queued() {
    in_netns(|| async {
        let netlink = Netlink::connect().expect("netlink");
        let (tun, _index) = tun_with_addresses(&netlink).await;
        let socket = UdpSocket::bind("0.0.0.0:0").await.expect("bind");
        for payload in [b"one", b"two"] {
            socket
                .send_to(payload, (PEER_V4, 9))
                .await
                .expect("send_to");
        }
        // Both are queued on the TUN now (the send path is synchronous).
        let mut seen = vec![
            recv_udp(&tun, |p| p.dst == IpAddr::V4(PEER_V4))
                .await
                .payload,
        ];
        let mut buf = [0u8; 2048];
        loop {
            match tun.try_recv(&mut buf) {
                Ok(n) => {
                    if let Some(p) = parse_udp(&buf[..n]) {
                        if p.dst == IpAddr::V4(PEER_V4) {
                            seen.push(p.payload);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("try_recv: {e}"),
            }
        }
        assert_eq!(seen, [b"one".to_vec(), b"two".to_vec()]);

        // After WouldBlock cleared the readiness, recv waits for the next one.
        socket
            .send_to(b"three", (PEER_V4, 9))
            .await
            .expect("send_to");
        let packet = recv_udp(&tun, |p| p.dst == IpAddr::V4(PEER_V4)).await;
        assert_eq!(packet.payload, b"three");
    });
}

#[test]
fn packets_sent_into_the_tun_are_delivered() {
    in_netns(|| async {
        let netlink = Netlink::connect().expect("netlink");
        let (tun, _index) = tun_with_addresses(&netlink).await;
        let socket = UdpSocket::bind((TUN_V4, 0)).await.expect("bind");
        let port = socket.local_addr().expect("local addr").port();

        let payload = b"hello from a peer";
        let packet = ipv4_udp(PEER_V4, 4242, TUN_V4, port, payload);
        assert_eq!(tun.send(&packet).await.expect("send"), packet.len());

        let mut buf = [0u8; 2048];
        let (n, from) = timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
            .await
            .expect("datagram delivered")
            .expect("recv_from");
        assert_eq!(&buf[..n], payload);
        assert_eq!(from, SocketAddr::from((PEER_V4, 4242)));

        // try_send works as well once the device is known writable.
        let packet = ipv4_udp(PEER_V4, 4243, TUN_V4, port, b"again");
        let sent = loop {
            match tun.try_send(&packet) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::task::yield_now().await;
                }
                other => break other.expect("try_send"),
            }
        };
        assert_eq!(sent, packet.len());
        let (n, from) = timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
            .await
            .expect("datagram delivered")
            .expect("recv_from");
        assert_eq!(&buf[..n], b"again");
        assert_eq!(from, SocketAddr::from((PEER_V4, 4243)));

        // Garbage is refused by the kernel, not silently dropped.
        let err = tun.send(&[0xff; 20]).await.expect_err("not IP");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    });
}

/// A UDP datagram parsed out of an IP packet.
#[derive(Debug)]
struct Udp {
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    payload: Vec<u8>,
}

/// Receives from the TUN until a UDP packet matching `wanted` arrives,
/// skipping what else the kernel sends (IPv6 router solicitations, MLD).
async fn recv_udp(tun: &Tun, wanted: impl Fn(&Udp) -> bool) -> Udp {
    let mut buf = [0u8; 2048];
    loop {
        let n = timeout(Duration::from_secs(5), tun.recv(&mut buf))
            .await
            .expect("packet on the TUN")
            .expect("recv");
        if let Some(udp) = parse_udp(&buf[..n]) {
            if wanted(&udp) {
                return udp;
            }
        }
    }
}

fn parse_udp(packet: &[u8]) -> Option<Udp> {
    let version = packet.first()? >> 4;
    let (src, dst, udp) = match version {
        4 => {
            let header_len = usize::from(packet[0] & 0x0f) * 4;
            assert_eq!(checksum(&[&packet[..header_len]]), 0, "IPv4 header sum");
            if packet[9] != 17 {
                return None;
            }
            let src: [u8; 4] = packet[12..16].try_into().ok()?;
            let dst: [u8; 4] = packet[16..20].try_into().ok()?;
            (IpAddr::from(src), IpAddr::from(dst), &packet[header_len..])
        }
        6 => {
            if packet[6] != 17 {
                return None;
            }
            let src: [u8; 16] = packet[8..24].try_into().ok()?;
            let dst: [u8; 16] = packet[24..40].try_into().ok()?;
            (IpAddr::from(src), IpAddr::from(dst), &packet[40..])
        }
        _ => return None,
    };
    let length = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    Some(Udp {
        src,
        dst,
        src_port: u16::from_be_bytes([udp[0], udp[1]]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        payload: udp[8..length].to_vec(),
    })
}

/// An IPv4/UDP packet with correct header and UDP checksums.
fn ipv4_udp(src: Ipv4Addr, src_port: u16, dst: Ipv4Addr, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = u16::try_from(8 + payload.len()).expect("small payload");
    let total_len = 20 + udp_len;
    let mut packet = Vec::with_capacity(usize::from(total_len));
    packet.extend_from_slice(&[0x45, 0]); // version 4, IHL 5; DSCP/ECN 0
    packet.extend_from_slice(&total_len.to_be_bytes());
    packet.extend_from_slice(&[0, 1, 0x40, 0]); // id 1; don't fragment
    packet.extend_from_slice(&[64, 17, 0, 0]); // TTL 64, UDP, checksum 0 for now
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    let header_sum = checksum(&[&packet[..20]]);
    packet[10..12].copy_from_slice(&header_sum.to_be_bytes());

    let mut udp = Vec::with_capacity(usize::from(udp_len));
    udp.extend_from_slice(&src_port.to_be_bytes());
    udp.extend_from_slice(&dst_port.to_be_bytes());
    udp.extend_from_slice(&udp_len.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    let udp_sum = match checksum(&[&pseudo, &udp]) {
        0 => 0xffff, // 0 means "no checksum" in UDP over IPv4
        sum => sum,
    };
    udp[6..8].copy_from_slice(&udp_sum.to_be_bytes());
    packet.extend_from_slice(&udp);
    packet
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`, each
/// of even length except possibly the last.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for chunk in part.chunks(2) {
            let word = match chunk {
                [a, b] => u16::from_be_bytes([*a, *b]),
                [a] => u16::from_be_bytes([*a, 0]),
                _ => 0,
            };
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
