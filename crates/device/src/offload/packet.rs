//! Bounds-checked views of IPv4/IPv6 + TCP headers, shared by segmentation
//! and coalescing. Offsets returned by [`parse_tcp`] are checked against the
//! packet, so callers may slice with them after comparing lengths.

use super::{Malformed, OffloadError, Unsupported};

/// IP protocol number of TCP.
pub(crate) const IPPROTO_TCP: u8 = 6;
/// Offset of the checksum field in a TCP header.
pub(crate) const TCP_CHECKSUM_OFFSET: usize = 16;
/// Offset of the flags byte in a TCP header.
pub(crate) const TCP_FLAGS_OFFSET: usize = 13;

pub(crate) const TCP_FIN: u8 = 0x01;
pub(crate) const TCP_PSH: u8 = 0x08;
pub(crate) const TCP_ACK: u8 = 0x10;
pub(crate) const TCP_CWR: u8 = 0x80;

/// IPv4 flags/fragment-offset word: MF and the 13-bit offset.
const IPV4_MF_AND_OFFSET: u16 = 0x3fff;

/// IPv6 next-header values that are extension headers (RFC 8200 and the
/// IANA registry), refused rather than walked.
const IPV6_EXTENSION_HEADERS: [u8; 11] = [0, 43, 44, 50, 51, 60, 135, 139, 140, 253, 254];

/// IP version of a parsed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IpVersion {
    V4,
    V6,
}

impl IpVersion {
    /// Where the source address starts, and its length (the destination
    /// follows it).
    pub(crate) fn addresses(self) -> (usize, usize) {
        match self {
            IpVersion::V4 => (12, 4),
            IpVersion::V6 => (8, 16),
        }
    }
}

/// Lengths of a packet's IP and TCP headers, both verified to lie inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TcpHeaders {
    pub(crate) version: IpVersion,
    /// IP header length (IPv4 with options; 40 for IPv6).
    pub(crate) ip_len: usize,
    /// TCP header length (with options).
    pub(crate) tcp_len: usize,
}

impl TcpHeaders {
    /// IP + TCP header length: where the payload starts.
    pub(crate) fn len(&self) -> usize {
        self.ip_len + self.tcp_len
    }
}

/// Parses the IP and TCP headers of `packet`, refusing anything a
/// segmenter cannot copy to every segment: truncation, an IHL or data
/// offset out of range, IPv4 fragments, another protocol, IPv6 extension
/// headers. Length fields of the IP header are *not* checked here.
pub(crate) fn parse_tcp(packet: &[u8]) -> Result<TcpHeaders, OffloadError> {
    let first = *packet.first().ok_or(Malformed::TruncatedIpHeader)?;
    let (version, ip_len, protocol) = match first >> 4 {
        4 => {
            if packet.len() < 20 {
                return Err(Malformed::TruncatedIpHeader.into());
            }
            let ip_len = usize::from(first & 0x0f) * 4;
            if ip_len < 20 || ip_len > packet.len() {
                return Err(Malformed::Ipv4HeaderLength(ip_len).into());
            }
            if be16(packet, 6).unwrap_or(0) & IPV4_MF_AND_OFFSET != 0 {
                return Err(Malformed::Fragment.into());
            }
            (IpVersion::V4, ip_len, byte(packet, 9))
        }
        6 => {
            if packet.len() < 40 {
                return Err(Malformed::TruncatedIpHeader.into());
            }
            let next = byte(packet, 6);
            if IPV6_EXTENSION_HEADERS.contains(&next) {
                return Err(Unsupported::Ipv6ExtensionHeader(next).into());
            }
            (IpVersion::V6, 40, next)
        }
        other => return Err(Malformed::IpVersion(other).into()),
    };
    if protocol != IPPROTO_TCP {
        return Err(Malformed::NotTcp(protocol).into());
    }
    if packet.len() < ip_len + 20 {
        return Err(Malformed::TruncatedTcpHeader.into());
    }
    let tcp_len = usize::from(byte(packet, ip_len + 12) >> 4) * 4;
    if tcp_len < 20 || ip_len + tcp_len > packet.len() {
        return Err(Malformed::TcpHeaderLength(tcp_len).into());
    }
    Ok(TcpHeaders {
        version,
        ip_len,
        tcp_len,
    })
}

/// The byte at `at`, or 0 past the end (callers check lengths first; this
/// keeps a mistake from panicking).
pub(crate) fn byte(packet: &[u8], at: usize) -> u8 {
    packet.get(at).copied().unwrap_or(0)
}

/// The big-endian `u16` at `at`, if it lies inside `packet`.
pub(crate) fn be16(packet: &[u8], at: usize) -> Option<u16> {
    let bytes = packet.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

/// The big-endian `u32` at `at`, if it lies inside `packet`.
pub(crate) fn be32(packet: &[u8], at: usize) -> Option<u32> {
    let bytes = packet.get(at..at.checked_add(4)?)?.first_chunk::<4>()?;
    Some(u32::from_be_bytes(*bytes))
}

/// Writes `value` big-endian at `at`; does nothing past the end (callers
/// check lengths first).
pub(crate) fn put16(packet: &mut [u8], at: usize, value: u16) {
    if let Some(slot) = packet.get_mut(at..at.saturating_add(2)) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

/// Writes `value` big-endian at `at`; does nothing past the end.
pub(crate) fn put32(packet: &mut [u8], at: usize, value: u32) {
    if let Some(slot) = packet.get_mut(at..at.saturating_add(4)) {
        slot.copy_from_slice(&value.to_be_bytes());
    }
}

/// The unfolded TCP pseudo-header sum for `packet` (addresses read from its
/// IP header) with the given TCP length.
pub(crate) fn tcp_pseudo_sum(packet: &[u8], version: IpVersion, tcp_total_len: usize) -> u64 {
    let (at, len) = version.addresses();
    let src = packet.get(at..at + len).unwrap_or(&[]);
    let dst = packet.get(at + len..at + 2 * len).unwrap_or(&[]);
    super::checksum::pseudo_header_sum(src, dst, IPPROTO_TCP, tcp_total_len as u32)
}

/// Recomputes the IPv4 header checksum over the first `ip_len` bytes.
pub(crate) fn fill_ipv4_checksum(packet: &mut [u8], ip_len: usize) {
    put16(packet, 10, 0);
    let check = super::checksum::checksum(packet.get(..ip_len).unwrap_or(&[]), 0);
    put16(packet, 10, check);
}

/// Computes and stores the full TCP checksum of `packet` (IP header of
/// `ip_len` bytes, then TCP header and payload to the end).
pub(crate) fn fill_tcp_checksum(packet: &mut [u8], version: IpVersion, ip_len: usize) {
    let tcp_total = packet.len().saturating_sub(ip_len);
    let at = ip_len + TCP_CHECKSUM_OFFSET;
    put16(packet, at, 0);
    let pseudo = tcp_pseudo_sum(packet, version, tcp_total);
    let check = super::checksum::checksum(packet.get(ip_len..).unwrap_or(&[]), pseudo);
    put16(packet, at, check);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::testutil::TcpBuilder;

    #[test]
    fn parses_both_versions_with_options() {
        let v4 = TcpBuilder::v4().ip_options(8).tcp_options(12).build();
        let parsed = parse_tcp(&v4).unwrap();
        assert_eq!(
            (parsed.version, parsed.ip_len, parsed.tcp_len),
            (IpVersion::V4, 28, 32)
        );
        let v6 = TcpBuilder::v6().payload(vec![1; 10]).build();
        let parsed = parse_tcp(&v6).unwrap();
        assert_eq!(
            (parsed.version, parsed.ip_len, parsed.tcp_len),
            (IpVersion::V6, 40, 20)
        );
    }

    #[test]
    fn every_truncation_of_the_headers_is_refused() {
        for builder in [
            TcpBuilder::v4().ip_options(4).tcp_options(8),
            TcpBuilder::v6().tcp_options(4),
        ] {
            let packet = builder.build();
            let headers = parse_tcp(&packet).unwrap().len();
            assert_eq!(headers, packet.len());
            for len in 0..headers {
                assert!(parse_tcp(&packet[..len]).is_err(), "length {len}");
            }
        }
    }

    #[test]
    fn refuses_fragments_other_protocols_and_extension_headers() {
        let mut fragment = TcpBuilder::v4().build();
        fragment[6] |= 0x20;
        assert_eq!(parse_tcp(&fragment), Err(Malformed::Fragment.into()));
        let mut udp = TcpBuilder::v4().build();
        udp[9] = 17;
        assert_eq!(parse_tcp(&udp), Err(Malformed::NotTcp(17).into()));
        let mut hop_by_hop = TcpBuilder::v6().build();
        hop_by_hop[6] = 0;
        assert_eq!(
            parse_tcp(&hop_by_hop),
            Err(Unsupported::Ipv6ExtensionHeader(0).into())
        );
        let mut short_ihl = TcpBuilder::v4().build();
        short_ihl[0] = 0x44;
        assert_eq!(
            parse_tcp(&short_ihl),
            Err(Malformed::Ipv4HeaderLength(16).into())
        );
        let mut short_doff = TcpBuilder::v4().build();
        short_doff[32] = 0x40;
        assert_eq!(
            parse_tcp(&short_doff),
            Err(Malformed::TcpHeaderLength(16).into())
        );
    }
}
