//! The warren lab: end-to-end test support on real network namespaces.
//!
//! A [`Lab`] owns everything a test creates and removes it on drop, also when
//! the test panics. On top of it:
//! - [`netns`]: a namespace handle with the usual `ip`/`iptables`/`sysctl`
//!   helpers, and [`Lab::in_ns`] to run test code (its sockets) inside one;
//! - [`process`]: long-running programs in a namespace, stopped by pid;
//! - [`topology`]: two hosts on a link, or a "public" segment with hosts
//!   behind cone, symmetric or carrier-grade NAT routers;
//! - [`impair`]: UDP blocking, loss and delay (the `lab-nfq-delay` helper
//!   binary of this package holds NFQUEUE packets, since there is no netem);
//! - [`tcp`]: known data both ways, checked byte for byte;
//! - [`udp`]: traffic helpers (reflexive-address discovery, hole punching,
//!   DF datagrams);
//! - [`wg`]: reference WireGuard peers (wireguard-go, boringtun-cli) and
//!   warren's own device, configured through `wg`;
//! - [`docker`]: one Docker daemon per simulated worker, with host
//!   networking only or with a bridge (and published ports) of its own;
//! - [`registry`]: an image registry on a namespace's loopback, standing in
//!   for Docker Hub;
//! - [`acme`]: a real ACME server (`pebble`) and the DNS server it needs;
//! - [`cluster`]: a control plane (`warren serve`) and its workers
//!   (`warren join`), optionally each with its own Docker daemon.
//!
//! ```no_run
//! use std::net::{Ipv4Addr, UdpSocket};
//! use std::time::Duration;
//! use warren_netns_tests::{udp, Internet, Lab, Nat};
//!
//! # fn main() -> anyhow::Result<()> {
//! let lab = Lab::new("example")?; // everything below goes when `lab` drops
//! let net = Internet::new(&lab)?;
//! let relay = net.add_public_host(&lab, "relay")?;
//! let home = net.add_host(&lab, "home", Nat::Cone)?;
//! let reflector = udp::Reflector::start(&relay.ns, (relay.ip, 3478).into())?;
//! // Sockets made inside `in_ns` live in that namespace.
//! let sock = lab.in_ns(&home.ns, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))??;
//! let seen = udp::reflexive_addr(&sock, reflector.addr, Duration::from_secs(2))?;
//! assert_eq!(seen.ip(), home.reflexive_ip());
//! # Ok(())
//! # }
//! ```
//!
//! Interface names for anything that has a UAPI socket come from
//! [`Lab::iface_name`] (the sockets in /var/run/wireguard are shared by all
//! namespaces); reference peers start with [`wg::start_wg`]; a worker's
//! Docker daemon with [`docker::start_dockerd`]. Test failures keep the lab's
//! logs (`/tmp/wl/...`, path printed); `WARREN_LAB_KEEP=1` keeps them always.
//!
//! Hard rules (see docs/lab.md): nothing is added to the root namespace,
//! every address used belongs to a lab namespace, and processes are only
//! ever signalled by pid.

pub mod acme;
pub mod cluster;
pub mod cmd;
pub mod docker;
pub mod impair;
pub mod lab;
pub mod netns;
pub mod process;
pub mod registry;
pub mod sweep;
pub mod tcp;
pub mod topology;
pub mod udp;
pub mod wait;
pub mod wg;

pub use cmd::{require_bin, run, run_args};
pub use docker::{
    bridge_subnet, import_busybox_image, import_host_image, import_nginx_image, start_dockerd,
    start_dockerd_with, BridgeSubnet, DockerNet, Dockerd, HostImage,
};
pub use impair::{block_udp, loss, IptRule};
pub use lab::Lab;
pub use netns::Netns;
pub use process::{Proc, Signal, Spawn};
pub use registry::{start_registry, Registry};
pub use topology::{two_hosts, Carrier, Host, Internet, Nat, Router, TwoHosts};
pub use wait::{wait_for, wait_for_file, wait_for_value};
pub use wg::{start_wg, KeyPair, PeerConfig, WgDump, WgIface, WgImpl, WgPeer};
