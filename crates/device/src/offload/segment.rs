//! TUN read → IP packets: finish the checksum the kernel left partial and
//! cut TCP super-packets into MSS-sized segments (software GSO).
//!
//! # Output layout
//!
//! [`segment()`] writes segment *i* at `out[i * stride..]`. Every segment but
//! the last has the same length (headers + `gso_size`), so the result,
//! [`Segments`], is four numbers rather than a list of lengths: no
//! allocation, nothing for the caller to keep, and [`Segments::ranges`]
//! yields each segment's range in `out`. A fixed stride lets the caller
//! keep one buffer of `n × stride` bytes for the life of the device and
//! hand each segment to encryption in place.
//!
//! # Sizing
//!
//! A super-packet carries at most [`MAX_SUPER_PACKET`] bytes, so it yields
//! at most `ceil((65535 − headers) / gso_size)` segments (48 at an MSS of
//! 1380, 45 at the 1440 of a 1500-byte MTU). `out` must hold
//! `(count − 1) × stride + last_len` bytes; `MAX_SUPER_PACKET / gso_size + 1`
//! strides always suffice, and the error [`OffloadError::OutputTooSmall`]
//! says exactly how many bytes were needed. The stride must be at least the
//! longest segment (the interface MTU is the natural choice, since the
//! kernel derives `gso_size` from it).

use super::checksum;
use super::packet::{
    be16, be32, byte, fill_ipv4_checksum, fill_tcp_checksum, parse_tcp, put16, put32, IpVersion,
    TcpHeaders, TCP_CHECKSUM_OFFSET, TCP_CWR, TCP_FIN, TCP_FLAGS_OFFSET, TCP_PSH,
};
use super::vnet_hdr::VnetHdr;
use super::{Malformed, OffloadError, Unsupported, MAX_SUPER_PACKET};
use std::ops::Range;

/// Where [`segment()`] put its packets: segment *i* occupies
/// `out[i * stride..i * stride + len_i]`, with every `len_i` equal to
/// [`Segments::full_len`] except the last, [`Segments::last_len`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segments {
    count: usize,
    stride: usize,
    full_len: usize,
    last_len: usize,
}

impl Segments {
    /// Number of segments (at least 1).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Always false: a successful [`segment()`] yields at least one packet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The stride the segments were written at.
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// Length of every segment but the last.
    pub fn full_len(&self) -> usize {
        self.full_len
    }

    /// Length of the last segment.
    pub fn last_len(&self) -> usize {
        self.last_len
    }

    /// The range of segment `i` in `out`, if there is such a segment.
    pub fn range(&self, i: usize) -> Option<Range<usize>> {
        (i < self.count).then(|| self.range_unchecked(i))
    }

    /// Every segment's range in `out`, in order.
    pub fn ranges(&self) -> impl ExactSizeIterator<Item = Range<usize>> {
        let segments = *self;
        (0..self.count).map(move |i| segments.range_unchecked(i))
    }

    /// The range segment `i` would have (`i` below `count`).
    fn range_unchecked(&self, i: usize) -> Range<usize> {
        let len = if i + 1 == self.count {
            self.last_len
        } else {
            self.full_len
        };
        let start = i * self.stride;
        start..start + len
    }
}

/// Turns what one TUN read returned (`hdr`, then `packet`) into
/// ready-to-encrypt IP packets in `out` (see the module docs for the
/// layout and sizing).
///
/// * `gso_type` NONE: one packet, a copy of `packet`; with
///   [`VnetHdr::F_NEEDS_CSUM`] its checksum is completed as
///   [`complete_checksum`] does.
/// * TCPV4/TCPV6 (with or without the ECN bit): the payload after the real
///   IP + TCP headers is cut into `gso_size` pieces. Each segment gets a
///   copy of the headers with the IPv4 total length (or IPv6 payload
///   length), the IPv4 ID plus *i*, a fresh IPv4 header checksum, the TCP
///   sequence number advanced by the bytes before it, FIN and PSH only on
///   the last segment, CWR only on the first, and a full TCP checksum. The
///   super-packet's own length fields and checksums are ignored. `hdr_len`
///   is checked to cover at least the real headers (the kernel may report
///   more: it is `skb_headlen`, a hint) and `csum_start`/`csum_offset`,
///   when `F_NEEDS_CSUM` is set, must name the TCP checksum field.
/// * UDP GSO and unknown types are [`Unsupported`]; anything else
///   inconsistent is [`Malformed`]. A packet with nothing after its
///   headers yields one header-only segment.
///
/// Never panics; on error, `out` holds nothing meaningful.
pub fn segment(
    hdr: &VnetHdr,
    packet: &[u8],
    out: &mut [u8],
    stride: usize,
) -> Result<Segments, OffloadError> {
    match hdr.gso_type & !VnetHdr::GSO_ECN {
        VnetHdr::GSO_NONE if hdr.gso_type == VnetHdr::GSO_NONE => {
            segment_none(hdr, packet, out, stride)
        }
        VnetHdr::GSO_TCPV4 => segment_tcp(hdr, packet, out, stride, IpVersion::V4),
        VnetHdr::GSO_TCPV6 => segment_tcp(hdr, packet, out, stride, IpVersion::V6),
        VnetHdr::GSO_UDP | VnetHdr::GSO_UDP_L4 => Err(Unsupported::UdpGso.into()),
        _ => Err(Unsupported::GsoType(hdr.gso_type).into()),
    }
}

/// Completes, in place, the checksum of a non-GSO packet read with
/// [`VnetHdr::F_NEEDS_CSUM`]: the 16-bit field at `csum_start +
/// csum_offset` holds the pseudo-header sum, and the final checksum is the
/// complement of the fold of everything from `csum_start` to the end, that
/// field included. As the kernel's `skb_checksum_help` does, a result of 0
/// is stored as 0xffff (for UDP, 0 would mean "no checksum"). Does nothing
/// without the flag; refuses offsets outside the packet.
pub fn complete_checksum(hdr: &VnetHdr, packet: &mut [u8]) -> Result<(), OffloadError> {
    if !hdr.needs_csum() {
        return Ok(());
    }
    let at = checksum_field(hdr, packet.len())?;
    let start = usize::from(hdr.csum_start);
    let covered = packet.get(start..).unwrap_or(&[]);
    let check = match checksum::checksum(covered, 0) {
        0 => 0xffff,
        check => check,
    };
    put16(packet, at, check);
    Ok(())
}

/// Where the checksum field of a `F_NEEDS_CSUM` packet lies, if it fits.
fn checksum_field(hdr: &VnetHdr, packet_len: usize) -> Result<usize, OffloadError> {
    let start = usize::from(hdr.csum_start);
    let offset = usize::from(hdr.csum_offset);
    let at = start + offset;
    if at + 2 > packet_len {
        return Err(Malformed::ChecksumOffsets { start, offset }.into());
    }
    Ok(at)
}

fn segment_none(
    hdr: &VnetHdr,
    packet: &[u8],
    out: &mut [u8],
    stride: usize,
) -> Result<Segments, OffloadError> {
    let len = packet.len();
    if hdr.needs_csum() {
        checksum_field(hdr, len)?;
    }
    if len > stride {
        return Err(OffloadError::StrideTooSmall {
            segment_len: len,
            stride,
        });
    }
    let Some(slot) = out.get_mut(..len) else {
        return Err(OffloadError::OutputTooSmall {
            needed: len,
            available: out.len(),
        });
    };
    slot.copy_from_slice(packet);
    complete_checksum(hdr, slot)?;
    Ok(Segments {
        count: 1,
        stride,
        full_len: len,
        last_len: len,
    })
}

/// Checks a TCP super-packet against its vnet header; returns its headers.
fn validate_tcp(
    hdr: &VnetHdr,
    packet: &[u8],
    version: IpVersion,
) -> Result<TcpHeaders, OffloadError> {
    if hdr.gso_size == 0 {
        return Err(Malformed::GsoSizeZero.into());
    }
    let headers = parse_tcp(packet)?;
    if headers.version != version {
        return Err(Malformed::GsoTypeMismatch.into());
    }
    let hdr_len = usize::from(hdr.hdr_len);
    if hdr_len < headers.len() || hdr_len > packet.len() {
        return Err(Malformed::HdrLen {
            hdr_len,
            headers: headers.len(),
            packet: packet.len(),
        }
        .into());
    }
    if hdr.needs_csum()
        && (usize::from(hdr.csum_start) != headers.ip_len
            || usize::from(hdr.csum_offset) != TCP_CHECKSUM_OFFSET)
    {
        return Err(Malformed::ChecksumOffsets {
            start: usize::from(hdr.csum_start),
            offset: usize::from(hdr.csum_offset),
        }
        .into());
    }
    Ok(headers)
}

fn segment_tcp(
    hdr: &VnetHdr,
    packet: &[u8],
    out: &mut [u8],
    stride: usize,
    version: IpVersion,
) -> Result<Segments, OffloadError> {
    let headers = validate_tcp(hdr, packet, version)?;
    let (head, payload) = packet.split_at(headers.len());
    let gso_size = usize::from(hdr.gso_size);
    let count = payload.len().div_ceil(gso_size).max(1);
    let last_payload = payload.len() - (count - 1) * gso_size;
    let full_len = head.len() + gso_size.min(payload.len());
    let last_len = head.len() + last_payload;
    if full_len > MAX_SUPER_PACKET {
        return Err(Malformed::SegmentTooLong(full_len).into());
    }
    if full_len > stride {
        return Err(OffloadError::StrideTooSmall {
            segment_len: full_len,
            stride,
        });
    }
    let needed = (count - 1) * stride + last_len;
    if needed > out.len() {
        return Err(OffloadError::OutputTooSmall {
            needed,
            available: out.len(),
        });
    }

    let ip_len = headers.ip_len;
    let flags_at = ip_len + TCP_FLAGS_OFFSET;
    let first_seq = be32(packet, ip_len + 4).unwrap_or(0);
    let first_id = be16(packet, 4).unwrap_or(0);
    let first_flags = byte(packet, flags_at);
    let segments = Segments {
        count,
        stride,
        full_len,
        last_len,
    };
    for ((i, range), piece) in segments.ranges().enumerate().zip(payload.chunks(gso_size)) {
        let Some(seg) = out.get_mut(range) else {
            break; // unreachable: `needed` was checked above
        };
        let (seg_head, seg_payload) = seg.split_at_mut(head.len());
        seg_head.copy_from_slice(head);
        seg_payload.copy_from_slice(piece);
        write_segment_headers(
            seg,
            &headers,
            i,
            count,
            first_id,
            first_seq,
            first_flags,
            gso_size,
        );
    }
    if payload.is_empty() {
        // One header-only segment: `chunks` yielded nothing.
        if let Some(seg) = out.get_mut(..head.len()) {
            seg.copy_from_slice(head);
            write_segment_headers(
                seg,
                &headers,
                0,
                1,
                first_id,
                first_seq,
                first_flags,
                gso_size,
            );
        }
    }
    Ok(segments)
}

/// Rewrites the copied headers of segment `i` of `count` and fills both
/// checksums.
#[allow(clippy::too_many_arguments)]
fn write_segment_headers(
    seg: &mut [u8],
    headers: &TcpHeaders,
    i: usize,
    count: usize,
    first_id: u16,
    first_seq: u32,
    first_flags: u8,
    gso_size: usize,
) {
    let len = seg.len();
    let ip_len = headers.ip_len;
    match headers.version {
        IpVersion::V4 => {
            put16(seg, 2, len as u16);
            put16(seg, 4, first_id.wrapping_add(i as u16));
        }
        IpVersion::V6 => put16(seg, 4, (len - ip_len) as u16),
    }
    put32(
        seg,
        ip_len + 4,
        first_seq.wrapping_add((i * gso_size) as u32),
    );
    let mut flags = first_flags;
    if i + 1 != count {
        flags &= !(TCP_FIN | TCP_PSH);
    }
    if i != 0 {
        flags &= !TCP_CWR;
    }
    if let Some(slot) = seg.get_mut(ip_len + TCP_FLAGS_OFFSET) {
        *slot = flags;
    }
    if headers.version == IpVersion::V4 {
        fill_ipv4_checksum(seg, ip_len);
    }
    fill_tcp_checksum(seg, headers.version, ip_len);
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
