//! `struct virtio_net_hdr` (`include/uapi/linux/virtio_net.h`), the 10-byte
//! header in front of every packet on a TUN opened with `IFF_VNET_HDR`.
//!
//! ```text
//! offset  size  field        (16-bit fields in host byte order, see below)
//!   0      1    flags        F_NEEDS_CSUM = 1, F_DATA_VALID = 2
//!   1      1    gso_type     NONE = 0, TCPV4 = 1, UDP = 3, TCPV6 = 4, | ECN = 0x80
//!   2      2    hdr_len      bytes of headers (a hint from the kernel)
//!   4      2    gso_size     payload bytes per segment
//!   6      2    csum_start   where checksumming starts
//!   8      2    csum_offset  where, from csum_start, the checksum goes
//! ```
//!
//! The legacy header is host-endian (`tun16_to_cpu`) unless
//! `TUNSETVNETLE`/`TUNSETVNETBE` is set; warren sets neither.

use super::{Malformed, OffloadError};

/// A decoded `virtio_net_hdr`. The all-zero value ([`Default`]) means "a
/// plain packet, checksums complete".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct VnetHdr {
    /// [`VnetHdr::F_NEEDS_CSUM`] and/or [`VnetHdr::F_DATA_VALID`].
    pub flags: u8,
    /// One of the `GSO_*` types, optionally with [`VnetHdr::GSO_ECN`].
    pub gso_type: u8,
    /// Length of the headers in front of the payload. From the kernel this
    /// is only a hint (`skb_headlen`): it may exceed the real headers on a
    /// forwarding path.
    pub hdr_len: u16,
    /// Payload bytes per segment (the MSS) under a GSO type.
    pub gso_size: u16,
    /// Offset, from the start of the IP packet, where checksumming starts.
    pub csum_start: u16,
    /// Offset, from `csum_start`, of the 16-bit checksum field.
    pub csum_offset: u16,
}

impl VnetHdr {
    /// Size of the header on the wire.
    pub const LEN: usize = 10;
    /// The checksum from `csum_start` on is not complete: the field at
    /// `csum_start + csum_offset` holds the pseudo-header sum.
    pub const F_NEEDS_CSUM: u8 = 1;
    /// The checksum has been verified (reads only; tun ignores it on writes).
    pub const F_DATA_VALID: u8 = 2;
    /// Not a GSO packet.
    pub const GSO_NONE: u8 = 0;
    /// TCP over IPv4 super-packet.
    pub const GSO_TCPV4: u8 = 1;
    /// UDP fragmentation offload (UFO): refused.
    pub const GSO_UDP: u8 = 3;
    /// TCP over IPv6 super-packet.
    pub const GSO_TCPV6: u8 = 4;
    /// UDP segmentation offload (USO): refused.
    pub const GSO_UDP_L4: u8 = 5;
    /// Flag bit: the TCP header has CWR set (ECN).
    pub const GSO_ECN: u8 = 0x80;

    /// Reads the header from the first [`VnetHdr::LEN`] bytes of `bytes`
    /// (what follows is the packet). No field is judged here; [`segment`]
    /// does that.
    ///
    /// [`segment`]: super::segment()
    pub fn decode(bytes: &[u8]) -> Result<VnetHdr, OffloadError> {
        let Some(&[flags, gso_type, h0, h1, g0, g1, s0, s1, o0, o1]) = bytes.first_chunk::<10>()
        else {
            return Err(Malformed::TruncatedVnetHdr.into());
        };
        Ok(VnetHdr {
            flags,
            gso_type,
            hdr_len: u16::from_ne_bytes([h0, h1]),
            gso_size: u16::from_ne_bytes([g0, g1]),
            csum_start: u16::from_ne_bytes([s0, s1]),
            csum_offset: u16::from_ne_bytes([o0, o1]),
        })
    }

    /// Writes the header in the layout [`VnetHdr::decode`] reads.
    pub fn encode(&self, out: &mut [u8; 10]) {
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }

    /// The encoded header as an array.
    pub fn to_bytes(&self) -> [u8; 10] {
        let mut out = [0u8; 10];
        self.encode(&mut out);
        out
    }

    /// Whether [`VnetHdr::F_NEEDS_CSUM`] is set.
    pub fn needs_csum(&self) -> bool {
        self.flags & Self::F_NEEDS_CSUM != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_matches_the_kernel_struct_on_this_host() {
        let hdr = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 0x0102,
            gso_size: 0x0304,
            csum_start: 0x0506,
            csum_offset: 0x0708,
        };
        let bytes = hdr.to_bytes();
        assert_eq!(bytes[..2], [1, 1]);
        assert_eq!(bytes[2..4], 0x0102u16.to_ne_bytes());
        assert_eq!(bytes[8..10], 0x0708u16.to_ne_bytes());
        if cfg!(target_endian = "little") {
            assert_eq!(bytes, [1, 1, 2, 1, 4, 3, 6, 5, 8, 7]);
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = VnetHdr::default().to_bytes();
        for len in 0..VnetHdr::LEN {
            assert_eq!(
                VnetHdr::decode(&bytes[..len]),
                Err(Malformed::TruncatedVnetHdr.into())
            );
        }
    }

    proptest! {
        #[test]
        fn round_trips(flags: u8, gso_type: u8, hdr_len: u16, gso_size: u16, csum_start: u16, csum_offset: u16, tail in proptest::collection::vec(any::<u8>(), 0..8)) {
            let hdr = VnetHdr { flags, gso_type, hdr_len, gso_size, csum_start, csum_offset };
            let mut bytes = hdr.to_bytes().to_vec();
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(VnetHdr::decode(&bytes), Ok(hdr));
        }
    }
}
