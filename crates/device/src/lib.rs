//! warren's userspace WireGuard interface.
//!
//! [`Device`] is the I/O shell around the sans-IO [`warren_mesh::Node`]: it
//! owns a TUN interface ([`tun`]) configured through rtnetlink
//! ([`netlink`]), one UDP socket (`warren-udp`), and a UAPI socket
//! ([`uapi_server`]) so that `wg show` and `wg set` work against it. All
//! decisions — routing, sessions, timers, roaming — are the node's.

mod batch;
pub mod configure;
mod device;
mod handle;
pub mod local_addresses;
pub mod netlink;
pub mod offload;
pub mod paths;
pub mod routes;
mod running;
pub mod stats;
pub mod tun;
pub mod uapi_server;

pub use device::{Device, DeviceError, DeviceOptions, DEFAULT_MTU};
pub use handle::{DeviceHandle, HandleError};
pub use running::RunningDevice;
