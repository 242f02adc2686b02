//! A Linux TUN device driven by tokio.
//!
//! [`Tun`] owns the file descriptor of one layer-3 TUN interface: every
//! [`recv`](Tun::recv) yields one IP packet (IPv4 or IPv6, no link-layer or
//! packet-info header) that the kernel routed into the interface, and every
//! [`send`](Tun::send) hands one IP packet to the kernel as if it had arrived
//! on the interface.
//!
//! The interface is **not persistent**: the kernel removes it, together with
//! its addresses and routes, when the last file descriptor attached to it is
//! closed, i.e. when the [`Tun`] is dropped (or the process exits, however it
//! exits). warren relies on this to clean up; it never sets `TUNSETPERSIST`.
//!
//! Configuring the interface (MTU, addresses, routes, up) is the job of
//! [`crate::netlink`].
//!
//! [`Tun::create_with_offload`] opens the device with a `virtio_net_hdr`
//! in front of every packet (`IFF_VNET_HDR`) and TCP segmentation offload
//! enabled (`TUNSETOFFLOAD`): reads may then return TCP "super-packets" of
//! up to 64 KiB for the caller to segment, and writes may hand the kernel
//! coalesced segments — see [`crate::offload`] for the header's contract.
//!
//! No TUN crate is used: they pull in more than we need (device
//! configuration, cross-platform layers, their own async wrappers), and we
//! need full control over the `TUNSETIFF` flags and offloads. All flags
//! live in `TUN_FLAGS` and `OFFLOADS`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The clone device every TUN interface is created through.
const CLONE_DEVICE: &str = "/dev/net/tun";

/// Longest interface name the kernel accepts, in bytes (`IFNAMSIZ` minus
/// the terminating NUL).
pub const MAX_NAME_LEN: usize = libc::IFNAMSIZ - 1;

/// The `TUNSETIFF` flags, the one place they are chosen.
///
/// - `IFF_TUN`: layer 3, each read/write is one IP packet.
/// - `IFF_NO_PI`: no 4-byte packet-info header in front of each packet.
///
/// Not set on purpose: `IFF_TUN_EXCL`, so that a TUN device created
/// beforehand (e.g. `ip tuntap add ... user warren` to run unprivileged) can
/// be attached to. Such a persistent device outlives the [`Tun`].
///
/// [`Tun::create_with_offload`] adds `IFF_VNET_HDR`, which changes the
/// packet format of `recv`/`send`.
const TUN_FLAGS: libc::c_short = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;

/// Offloads asked for with a vnet header: checksum offload (required for the
/// others) and TCP segmentation for IPv4 and IPv6. UDP segmentation
/// (`TUN_F_USO4/6`) is not asked for: the segmenter refuses it.
const OFFLOADS: libc::c_uint = libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6;

/// Errors from [`Tun::create`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TunError {
    /// The requested interface name is not one the kernel would accept.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `/dev/net/tun` could not be opened (missing, or no permission).
    #[error("opening {CLONE_DEVICE}: {0}")]
    Open(#[source] io::Error),
    /// The kernel refused to create or attach the interface (`EPERM`
    /// without `CAP_NET_ADMIN`, `EBUSY` if the name is a TUN in use,
    /// `EINVAL` if the name belongs to another kind of interface).
    #[error("creating TUN interface {name} (TUNSETIFF): {source}")]
    Create {
        /// The name as given.
        name: String,
        /// The error from `ioctl`.
        #[source]
        source: io::Error,
    },
    /// Not called from within a tokio runtime.
    #[error("creating TUN interface {name}: no tokio runtime on this thread")]
    NoRuntime {
        /// The name as given.
        name: String,
    },
    /// The file descriptor could not be registered with tokio's reactor.
    #[error("registering TUN interface {name} with tokio: {source}")]
    Register {
        /// The kernel's name of the interface.
        name: String,
        /// The error from the reactor.
        #[source]
        source: io::Error,
    },
}

/// `struct ifreq` as `TUNSETIFF` reads and writes it.
///
/// Only the name and the `ifr_flags` member of the union are used. The union
/// is 24 bytes on 64-bit Linux (`struct ifmap` is its largest member) and 16
/// on 32-bit; the padding makes ours 24 everywhere, so the kernel never
/// reads or writes past the struct (it copies `sizeof(struct ifreq)`).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _union_rest: [u8; IFREQ_UNION_REST],
}

/// Bytes of the `ifreq` union after `ifr_flags`.
const IFREQ_UNION_REST: usize = 24 - std::mem::size_of::<libc::c_short>();

/// A Linux TUN interface registered with tokio.
///
/// `recv` and `send` take `&self`, so one task can read while another writes
/// (share it with an `Arc`). Dropping it closes the file descriptor, which
/// removes the interface with its addresses and routes (see the module docs).
#[derive(Debug)]
pub struct Tun {
    fd: AsyncFd<File>,
    name: String,
    vnet_hdr: bool,
}

impl Tun {
    /// Creates the TUN interface `name` in the calling thread's network
    /// namespace, non-blocking and registered with the current tokio
    /// runtime.
    ///
    /// `name` must be 1 to 15 bytes without `/`, `:`, whitespace or NUL, and
    /// not `.` or `..`. A `%d` in it is replaced by the kernel with the
    /// first free number; [`name`](Tun::name) tells the result. The
    /// interface starts down, without addresses.
    ///
    /// Needs `CAP_NET_ADMIN` (or a persistent TUN of that name owned by the
    /// caller) and must be called from within a tokio runtime.
    pub fn create(name: &str) -> Result<Tun, TunError> {
        Tun::open(name, false)
    }

    /// Like [`create`](Tun::create), but every packet read or written is
    /// preceded by a 10-byte `virtio_net_hdr`, and the kernel may hand over
    /// TCP super-packets to segment (and accept coalesced ones): see the
    /// module docs. If the kernel refuses the offloads, the header is still
    /// there and every packet is a plain one (`gso_type` none).
    pub fn create_with_offload(name: &str) -> Result<Tun, TunError> {
        let tun = Tun::open(name, true)?;
        // SAFETY: TUNSETOFFLOAD takes its flags as the ioctl's integer
        // argument on an open TUN descriptor.
        let rc = unsafe {
            libc::ioctl(
                tun.fd.get_ref().as_raw_fd(),
                libc::TUNSETOFFLOAD,
                OFFLOADS as libc::c_ulong,
            )
        };
        if rc < 0 {
            tracing::info!(
                name = %tun.name,
                error = %io::Error::last_os_error(),
                "TUN offloads refused; packets go one by one"
            );
        }
        Ok(tun)
    }

    /// Whether packets carry a `virtio_net_hdr` (see [`Tun::create_with_offload`]).
    pub fn has_vnet_hdr(&self) -> bool {
        self.vnet_hdr
    }

    fn open(name: &str, vnet_hdr: bool) -> Result<Tun, TunError> {
        let flags = if vnet_hdr {
            TUN_FLAGS | libc::IFF_VNET_HDR as libc::c_short
        } else {
            TUN_FLAGS
        };
        let mut req = IfReq {
            name: encode_name(name)?,
            flags,
            _union_rest: [0; IFREQ_UNION_REST],
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(TunError::NoRuntime {
                name: name.to_owned(),
            });
        }

        // std opens with O_CLOEXEC; O_NONBLOCK because tokio waits for
        // readiness and reads/writes must then not block.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(CLONE_DEVICE)
            .map_err(TunError::Open)?;

        // SAFETY: `file` is an open descriptor of /dev/net/tun, and
        // TUNSETIFF reads and writes one `struct ifreq`, which `req` is laid
        // out as (see `IfReq`) and outlives the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(TunError::Create {
                name: name.to_owned(),
                source: io::Error::last_os_error(),
            });
        }
        let name = decode_name(&req.name);

        // SAFETY: the `File` is moved into the `AsyncFd`, which owns it
        // until it is dropped; nothing closes or replaces its descriptor
        // meanwhile (only `&File` is ever handed out), so the descriptor
        // stays open and the same for the registration's lifetime.
        let fd = unsafe {
            AsyncFd::register_with_interest(file, Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(|e| TunError::Register {
            name: name.clone(),
            source: e.into(),
        })?;
        tracing::debug!(%name, vnet_hdr, "created TUN interface");
        Ok(Tun { fd, name, vnet_hdr })
    }

    /// The interface name the kernel gave the device.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for one IP packet routed into the interface and copies it into
    /// `buf`, returning its length.
    ///
    /// `buf` should hold at least the interface MTU; the kernel silently
    /// truncates a longer packet to `buf.len()`.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            // `try_io` clears the readiness when the read says WouldBlock,
            // so the next `readable()` waits for a new edge.
            match guard.try_io(|fd| read_packet(fd.get_ref(), buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Reads one IP packet if tokio knows the device to be readable, without
    /// waiting; `WouldBlock` otherwise.
    ///
    /// Meant for draining a batch after [`recv`](Tun::recv) returned:
    /// readiness is only learnt by awaiting, so on its own this may report
    /// `WouldBlock` although a packet is queued.
    pub fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.fd
            .try_io(Interest::READABLE, |file| read_packet(file, buf))
    }

    /// Hands one IP packet to the kernel as if it arrived on the interface,
    /// waiting while the device is not writable. Returns `packet.len()`.
    ///
    /// The kernel checks the packet: a write of something that is not an
    /// IPv4 or IPv6 packet fails with `EINVAL`.
    pub async fn send(&self, packet: &[u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| write_packet(fd.get_ref(), packet)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes one IP packet if tokio knows the device to be writable,
    /// without waiting; `WouldBlock` otherwise (see
    /// [`try_recv`](Tun::try_recv)).
    pub fn try_send(&self, packet: &[u8]) -> io::Result<usize> {
        self.fd
            .try_io(Interest::WRITABLE, |file| write_packet(file, packet))
    }
}

impl AsFd for Tun {
    /// The TUN file descriptor, for ioctls such as offload settings.
    /// Reading or writing it directly bypasses tokio's readiness tracking.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.get_ref().as_fd()
    }
}

/// One `read(2)` of a packet, retried on `EINTR`.
fn read_packet(mut file: &File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// One `write(2)` of a packet, retried on `EINTR`.
fn write_packet(mut file: &File, packet: &[u8]) -> io::Result<usize> {
    loop {
        match file.write(packet) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Checks `name` the way the kernel's `dev_valid_name` does and returns it
/// NUL-padded for `ifr_name`.
fn encode_name(name: &str) -> Result<[u8; libc::IFNAMSIZ], TunError> {
    let invalid = |reason| TunError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid("longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(invalid("\".\" and \"..\" are reserved"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace())
    {
        return Err(invalid("contains '/', ':', NUL or whitespace"));
    }
    let mut out = [0u8; libc::IFNAMSIZ];
    // The length check above leaves room for the terminating NUL.
    for (dst, src) in out.iter_mut().zip(name.bytes()) {
        *dst = src;
    }
    Ok(out)
}

/// The NUL-terminated name the kernel wrote back into `ifr_name`.
fn decode_name(raw: &[u8; libc::IFNAMSIZ]) -> String {
    let len = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(raw.get(..len).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn ifreq_is_as_large_as_the_kernels() {
        // 16-byte name + 24-byte union on 64-bit Linux.
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }

    #[test]
    fn accepts_usual_names() {
        for name in ["warren0", "wt0", "a", "x%d", "abcdefghijklmno"] {
            let raw = encode_name(name).expect(name);
            assert_eq!(decode_name(&raw), name);
        }
    }

    #[test]
    fn rejects_bad_names() {
        for name in [
            "",
            "abcdefghijklmnop",
            "a/b",
            "a b",
            "a\tb",
            "a\nb",
            "a:b",
            ".",
            "..",
            "a\0b",
            "ééééééééé",
        ] {
            match encode_name(name) {
                Err(TunError::InvalidName { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_name_error_says_why() {
        let err = encode_name("a/b").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid interface name \"a/b\": contains '/', ':', NUL or whitespace")
        );
    }
}
