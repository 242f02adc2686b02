//! TCP segmentation and coalescing for a TUN device opened with
//! `IFF_VNET_HDR` and TSO/checksum offloads: pure functions on byte slices,
//! no I/O and no allocation per packet.
//!
//! # The `virtio_net_hdr` contract
//!
//! With `IFF_VNET_HDR`, every `read()` from the TUN starts with a 10-byte
//! [`VnetHdr`] (`struct virtio_net_hdr`) and every `write()` must start with
//! one. Once `TUNSETOFFLOAD` grants `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`,
//! the kernel stops finishing TCP work for us:
//!
//! * **Reads** may carry a TCP *super-packet* of up to 64 KiB
//!   (`gso_type` [`VnetHdr::GSO_TCPV4`] or [`VnetHdr::GSO_TCPV6`]): one IP
//!   header, one TCP header, and a payload that must go out as `gso_size`
//!   pieces. The TCP checksum field holds only the pseudo-header sum
//!   (`flags` [`VnetHdr::F_NEEDS_CSUM`], `csum_start` = IP header length,
//!   `csum_offset` = 16). A non-GSO packet may also carry `F_NEEDS_CSUM`
//!   (TCP or UDP alike): its checksum is completed over `csum_start..`.
//!   [`segment()`] turns either into ready-to-encrypt IP packets.
//! * **Writes** may hand the kernel one super-packet for many in-order TCP
//!   segments of one flow, which then crosses the stack as one skb.
//!   [`Coalescer`] builds those from a batch of decrypted packets.
//!
//! **Byte order.** The legacy header's 16-bit fields are in the *host's*
//! byte order (the kernel's `tun16_to_cpu`: little-endian on x86 and ARM)
//! unless `TUNSETVNETLE`/`TUNSETVNETBE` changes it. warren sets neither,
//! so [`VnetHdr::decode`] and [`VnetHdr::encode`] use native endianness.
//! (The IP and TCP headers behind it are, as always, big-endian.)
//!
//! # Coalesced writes: `NEEDS_CSUM`, not `DATA_VALID`
//!
//! A coalesced super-packet is written with `F_NEEDS_CSUM`, `csum_start` at
//! the TCP header, `csum_offset` 16, and the TCP checksum field set to the
//! folded pseudo-header sum (over the super-packet's TCP length), exactly as
//! the kernel hands out its own TSO super-packets. Why:
//!
//! * The tun write path (`tun_get_user` → `tun_vnet_hdr_to_skb` →
//!   `virtio_net_hdr_to_skb` in `include/linux/virtio_net.h`) reads only
//!   `F_NEEDS_CSUM` (→ `skb_partial_csum_set`, i.e. `CHECKSUM_PARTIAL`);
//!   `F_DATA_VALID` is consumed by the virtio-net *driver*
//!   (`virtio_net_handle_csum_offload`), never by tun. A `DATA_VALID` write
//!   would arrive as `CHECKSUM_NONE` and the stack would verify the whole
//!   64 KiB in software, against a checksum we would first have had to
//!   compute over the merged payload.
//! * For TCPV4/TCPV6 GSO the same function rejects `CHECKSUM_PARTIAL` with
//!   `csum_offset != offsetof(struct tcphdr, check)` (16), so that field is
//!   fixed.
//! * `CHECKSUM_PARTIAL` counts as verified on receive
//!   (`skb_csum_unnecessary`), and on a forwarding path GSO fills each
//!   segment's checksum from the pseudo-header sum left in the field.
//! * wireguard-go's `tun/offload_linux.go` (`applyTCPCoalesceAccounting`)
//!   writes the same header for the same reason.
//!
//! Because the kernel then never checks the merged bytes, the coalescer
//! verifies every segment's TCP checksum (and IPv4 header checksum) before
//! merging it, as the kernel's own GRO does: a corrupt segment is passed
//! through unmerged and the stack drops it.
//!
//! # Modules
//!
//! * [`vnet_hdr`]: the header codec and its constants.
//! * [`checksum`]: the Internet checksum, 8 bytes at a time.
//! * [`segment()`]: TUN read → IP packets (GSO).
//! * [`coalesce`]: IP packets → TUN writes (GRO).

pub mod checksum;
pub mod coalesce;
mod packet;
pub mod segment;
pub mod vnet_hdr;

#[cfg(test)]
mod testutil;

pub use coalesce::Coalescer;
pub use segment::{complete_checksum, segment, Segments};
pub use vnet_hdr::VnetHdr;

/// The largest IP packet either direction produces or accepts as a
/// super-packet: the IPv4 total-length field's limit, and the kernel's
/// default `gso_max_size` (64 KiB) less the 1 byte no 16-bit field can say.
pub const MAX_SUPER_PACKET: usize = 65535;

/// Why a TUN packet could not be segmented (or a batch not coalesced).
///
/// Every error leaves the caller's buffers' meaning unchanged: nothing
/// returned from a failed call is a packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OffloadError {
    /// The header or packet contradicts itself or is cut short.
    #[error("malformed offload packet: {0}")]
    Malformed(#[from] Malformed),
    /// Well-formed, but asks for something warren does not do.
    #[error("unsupported offload packet: {0}")]
    Unsupported(#[from] Unsupported),
    /// The caller's output buffer cannot hold the result (caller misuse:
    /// size it as [`segment()`] and [`Coalescer::coalesce`] document).
    #[error("output buffer too small: {needed} bytes needed, {available} available")]
    OutputTooSmall {
        /// Bytes the output needs.
        needed: usize,
        /// Bytes the caller offered.
        available: usize,
    },
    /// A segment does not fit the caller's stride (caller misuse: the
    /// stride must be at least the interface MTU).
    #[error("segment of {segment_len} bytes does not fit a stride of {stride}")]
    StrideTooSmall {
        /// Length of the largest segment.
        segment_len: usize,
        /// The stride the caller chose.
        stride: usize,
    },
}

/// The ways a TUN packet can be malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// Fewer than 10 bytes: no `virtio_net_hdr`.
    #[error("shorter than a virtio_net_hdr")]
    TruncatedVnetHdr,
    /// The IP version nibble is neither 4 nor 6.
    #[error("IP version {0}")]
    IpVersion(u8),
    /// The IP header is cut short.
    #[error("truncated IP header")]
    TruncatedIpHeader,
    /// The IPv4 header length (IHL) is below 5 words or past the packet.
    #[error("IPv4 header length {0} out of range")]
    Ipv4HeaderLength(usize),
    /// An IPv4 fragment (MF set or a fragment offset) under TCP GSO.
    #[error("IPv4 fragment")]
    Fragment,
    /// `gso_type` says TCP but the IP header carries another protocol.
    #[error("IP protocol {0} under a TCP gso_type")]
    NotTcp(u8),
    /// `gso_type` says TCPV4 for an IPv6 packet or the reverse.
    #[error("gso_type does not match the IP version")]
    GsoTypeMismatch,
    /// The TCP header is cut short.
    #[error("truncated TCP header")]
    TruncatedTcpHeader,
    /// The TCP data offset is below 5 words or past the packet.
    #[error("TCP header length {0} out of range")]
    TcpHeaderLength(usize),
    /// `hdr_len` is shorter than the real IP + TCP headers, or longer than
    /// the packet.
    #[error("hdr_len {hdr_len} does not fit headers of {headers} bytes in {packet} bytes")]
    HdrLen {
        /// `hdr_len` from the vnet header.
        hdr_len: usize,
        /// IP + TCP header length parsed from the packet.
        headers: usize,
        /// Packet length.
        packet: usize,
    },
    /// `gso_size` is 0 under a GSO type.
    #[error("gso_size 0")]
    GsoSizeZero,
    /// A segment would be longer than an IP length field can say.
    #[error("segment of {0} bytes exceeds 65535")]
    SegmentTooLong(usize),
    /// `csum_start`/`csum_offset` point outside the packet, or (under TCP
    /// GSO) anywhere but the TCP checksum field.
    #[error("checksum at {start}+{offset} does not fit")]
    ChecksumOffsets {
        /// `csum_start`.
        start: usize,
        /// `csum_offset`.
        offset: usize,
    },
}

/// Well-formed requests warren refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    /// UDP fragmentation/segmentation offload (UFO/USO): never enabled.
    #[error("UDP GSO")]
    UdpGso,
    /// A `gso_type` (or flag bit) warren does not know.
    #[error("gso_type {0:#x}")]
    GsoType(u8),
    /// An IPv6 extension header before TCP: refused rather than walked.
    #[error("IPv6 extension header {0}")]
    Ipv6ExtensionHeader(u8),
}
