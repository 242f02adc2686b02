//! `sendmsg`/`recvmsg` with UDP segmentation offload control messages.
//!
//! UDP GSO (`UDP_SEGMENT`, Linux 4.18) hands the kernel one buffer holding
//! many equal-sized datagrams for one destination: one syscall instead of
//! one per datagram. UDP GRO (`UDP_GRO`, Linux 5.0) is the receive side: the
//! kernel may deliver several datagrams from one source, back to back, in a
//! single read, with their size in a control message. Neither has a safe
//! wrapper in std, tokio or socket2, hence these two small functions.

use socket2::SockAddr;
use std::io;
use std::mem::size_of;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Room for one control message carrying an `int` (8-byte aligned).
#[repr(C, align(8))]
pub(crate) struct ControlBuffer(pub(crate) [u8; 64]);

impl ControlBuffer {
    /// An empty buffer.
    pub(crate) const fn new() -> Self {
        ControlBuffer([0; 64])
    }
}

/// One datagram or GRO batch as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// Where the datagrams came from.
    pub from: SocketAddr,
    /// Size of each datagram in the buffer (the last may be shorter);
    /// equal to `len` when the kernel did not coalesce.
    pub segment_size: usize,
}

/// Sends `buf` to `dst`; with `segment_size`, as datagrams of that size
/// (the last may be shorter) in one call.
pub fn send(fd: RawFd, buf: &[u8], dst: &SockAddr, segment_size: Option<u16>) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut control = ControlBuffer::new();
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = dst.as_ptr() as *mut libc::c_void;
    msg.msg_namelen = dst.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(size) = segment_size {
        // SAFETY: `control` outlives the sendmsg call below.
        unsafe { set_segment_size(&mut msg, &mut control, size) };
    }
    // SAFETY: msg points at live buffers (iov, name, control) for the call.
    let sent = unsafe { libc::sendmsg(fd, &msg, 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

/// Points `msg`'s control data at `control`, holding one `UDP_SEGMENT`
/// message: the kernel splits the payload into datagrams of `size` bytes.
///
/// # Safety
/// `control` must stay alive and unmoved until `msg` has been sent.
pub(crate) unsafe fn set_segment_size(
    msg: &mut libc::msghdr,
    control: &mut ControlBuffer,
    size: u16,
) {
    msg.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
    // SAFETY: msg_control points at `control`, which is aligned and larger
    // than CMSG_SPACE(2), so CMSG_FIRSTHDR returns a valid, writable header.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<u16>(), size);
    }
}

/// Receives one datagram, or a GRO batch of datagrams from one source.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = ControlBuffer::new();
    // SAFETY: try_init hands us storage for a socket address and its length;
    // the closure passes both to recvmsg(2), which fills them, and sets the
    // length to what the kernel wrote.
    let ((len, segment_size), from) = unsafe {
        SockAddr::try_init(|name, name_len| {
            // An all-zero msghdr is a valid empty message.
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_name = name.cast();
            msg.msg_namelen = *name_len;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.0.as_mut_ptr().cast();
            msg.msg_controllen = control.0.len();
            let len = libc::recvmsg(fd, &mut msg, 0);
            if len < 0 {
                return Err(io::Error::last_os_error());
            }
            *name_len = msg.msg_namelen;
            Ok((len as usize, gro_segment_size(&msg).unwrap_or(len as usize)))
        })?
    };
    let from = from.as_socket().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
    })?;
    Ok(Received {
        len,
        from,
        segment_size,
    })
}

/// The `UDP_GRO` segment size among a received message's control messages.
///
/// # Safety
/// `msg` must be a message recvmsg(2) filled in, with its control buffer alive.
pub(crate) unsafe fn gro_segment_size(msg: &libc::msghdr) -> Option<usize> {
    // SAFETY (caller): the control messages are well-formed, and
    // CMSG_FIRSTHDR/NXTHDR stay inside msg_controllen.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_UDP && (*cmsg).cmsg_type == libc::UDP_GRO {
                let size = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>());
                return usize::try_from(size).ok().filter(|size| *size > 0);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}
