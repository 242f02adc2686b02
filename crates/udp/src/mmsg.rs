//! `recvmmsg`/`sendmmsg`: many messages in one system call.
//!
//! GRO and GSO batch the datagrams of one flow; these batch across flows
//! and across senders that cannot use GSO (a relay hears many nodes, most
//! of them sending one datagram per call). Each message may itself be a GRO
//! or GSO run, so the two multiply.

use crate::msg::{gro_segment_size, set_segment_size, ControlBuffer, Received};
use crate::runs::gso_runs;
use socket2::{SockAddr, SockAddrStorage};
use std::io::{self, IoSlice};
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Most messages one `recvmmsg` or `sendmmsg` call moves.
pub const BATCH: usize = 32;

/// One message for [`send`]: a datagram, or a run of datagrams that
/// leaves in one GSO send.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Where to.
    pub dst: SocketAddr,
    /// One slice per datagram. Several slices make a GSO run when every
    /// one but the last has the first one's size and the last is no longer
    /// (see [`Outgoing::gso_size`]); otherwise each is sent on its own.
    pub datagrams: &'a [IoSlice<'a>],
}

impl Outgoing<'_> {
    /// The `UDP_SEGMENT` size when the datagrams (two or more) form one
    /// run the kernel can send in one call ([`gso_runs`]' rule: at most
    /// [`MAX_GSO_SEGMENTS`](crate::MAX_GSO_SEGMENTS) equal-sized datagrams,
    /// the last may be shorter, in at most
    /// [`MAX_GSO_BYTES`](crate::MAX_GSO_BYTES)).
    pub fn gso_size(&self) -> Option<u16> {
        let run = gso_runs(self.datagrams.iter().map(|d| ((), d.len()))).next()?;
        let whole = run.datagrams.len() == self.datagrams.len() && self.datagrams.len() > 1;
        u16::try_from(run.segment_size).ok().filter(|_| whole)
    }
}

/// Receives up to [`BATCH`] messages into consecutive `slot`-byte slots of
/// `buf`, describing message `i` (in slot `i`) in `out[i]`. Returns how
/// many arrived; `WouldBlock` when none is waiting.
pub fn recv(fd: RawFd, buf: &mut [u8], slot: usize, out: &mut [Received]) -> io::Result<usize> {
    let count = out.len().min(buf.len() / slot.max(1)).min(BATCH);
    if count == 0 {
        return Ok(0);
    }
    // SAFETY: all-zero is valid for these plain C structs; the null
    // pointers are replaced below for the `count` messages passed in.
    let mut names: [libc::sockaddr_storage; BATCH] = unsafe { std::mem::zeroed() };
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let mut controls: [ControlBuffer; BATCH] = std::array::from_fn(|_| ControlBuffer::new());
    for (i, chunk) in buf.chunks_mut(slot).take(count).enumerate() {
        iovs[i] = libc::iovec {
            iov_base: chunk.as_mut_ptr().cast(),
            iov_len: chunk.len(),
        };
        let hdr = &mut msgs[i].msg_hdr;
        hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
        hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdr.msg_iov = &mut iovs[i];
        hdr.msg_iovlen = 1;
        hdr.msg_control = controls[i].0.as_mut_ptr().cast();
        hdr.msg_controllen = controls[i].0.len();
    }
    // SAFETY: every message points at live, disjoint buffers (a slot of
    // `buf`, a name, a control buffer) that outlive the call.
    let received = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            count as libc::c_uint,
            0,
            std::ptr::null_mut(),
        )
    };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    let received = received as usize;
    for (i, described) in out.iter_mut().take(received).enumerate() {
        let len = msgs[i].msg_len as usize;
        let mut storage = SockAddrStorage::zeroed();
        // SAFETY: sockaddr_storage is a sockaddr type of this platform, and
        // the kernel wrote `msg_namelen` valid bytes of it.
        let from = unsafe {
            *storage.view_as::<libc::sockaddr_storage>() = names[i];
            SockAddr::new(storage, msgs[i].msg_hdr.msg_namelen)
        };
        let from = from.as_socket().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
        })?;
        // SAFETY: recvmmsg filled this message, and its control buffer is alive.
        let segment_size = unsafe { gro_segment_size(&msgs[i].msg_hdr) }.unwrap_or(len);
        *described = Received {
            len,
            from,
            segment_size,
        };
    }
    Ok(received)
}

/// Sends up to [`BATCH`] of `outgoing` in one call, each message with
/// GSO when it holds more than one datagram (the caller has checked
/// [`Outgoing::gso_size`]). Returns how many messages the kernel took (at
/// least one); an error means the first one failed, and the caller decides
/// whether to skip it.
pub fn send(fd: RawFd, outgoing: &[Outgoing<'_>]) -> io::Result<usize> {
    let count = outgoing.len().min(BATCH);
    if count == 0 {
        return Ok(0);
    }
    let names: [Option<SockAddr>; BATCH] =
        std::array::from_fn(|i| outgoing.get(i).map(|out| SockAddr::from(out.dst)));
    // SAFETY: as in `recv`.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let mut controls: [ControlBuffer; BATCH] = std::array::from_fn(|_| ControlBuffer::new());
    for (i, out) in outgoing.iter().take(count).enumerate() {
        let hdr = &mut msgs[i].msg_hdr;
        if let Some(name) = &names[i] {
            hdr.msg_name = name.as_ptr() as *mut libc::c_void;
            hdr.msg_namelen = name.len();
        }
        // IoSlice is guaranteed ABI-compatible with iovec on Unix; the
        // kernel only reads through the pointer.
        hdr.msg_iov = out.datagrams.as_ptr() as *mut libc::iovec;
        hdr.msg_iovlen = out.datagrams.len();
        if let Some(size) = out.gso_size() {
            // SAFETY: `controls` outlives the sendmmsg call below.
            unsafe { set_segment_size(hdr, &mut controls[i], size) };
        }
    }
    // SAFETY: every message points at live buffers (datagrams, name,
    // control) that outlive the call; the kernel only reads them.
    let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), count as libc::c_uint, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}
