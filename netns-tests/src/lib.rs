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
//! - [`docker`]: one Docker daemon per simulated worker.
//!
//! Hard rules (see shared/LAB.md): nothing is added to the root namespace,
//! every address used belongs to a lab namespace, and processes are only
//! ever signalled by pid.

pub mod cmd;
pub mod docker;
pub mod impair;
pub mod lab;
pub mod netns;
pub mod process;
pub mod sweep;
pub mod tcp;
pub mod topology;
pub mod udp;
pub mod wg;

pub use cmd::{require_bin, run, run_args};
pub use docker::{import_busybox_image, start_dockerd, Dockerd};
pub use impair::{block_udp, loss, IptRule};
pub use lab::Lab;
pub use netns::Netns;
pub use process::{wait_for, wait_for_file, wait_for_value, Proc, Signal, Spawn};
pub use topology::{two_hosts, Carrier, Host, Internet, Nat, Router, TwoHosts};
pub use wg::{start_wg, KeyPair, PeerConfig, WgDump, WgIface, WgImpl, WgPeer};
