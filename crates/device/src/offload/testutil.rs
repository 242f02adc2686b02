//! Test helpers: a tiny IPv4/IPv6 TCP packet builder with correct
//! checksums, a word-by-word reference checksum, and verifiers.

use super::packet::{parse_tcp, tcp_pseudo_sum, IpVersion, TCP_ACK, TCP_CHECKSUM_OFFSET};
use super::vnet_hdr::VnetHdr;

/// The RFC 1071 checksum one 16-bit word at a time: the slow reference the
/// fast one is compared with.
pub(crate) fn reference_checksum(bytes: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    for pair in bytes.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        let lo = pair.get(1).map_or(0, |b| u64::from(*b));
        sum += hi | lo;
    }
    while sum > 0xffff {
        sum = (sum >> 16) + (sum & 0xffff);
    }
    !(sum as u16)
}

/// Builds one IPv4 or IPv6 TCP packet with correct lengths and checksums.
#[derive(Debug, Clone)]
pub(crate) struct TcpBuilder {
    pub v6: bool,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub id: u16,
    pub ttl: u8,
    pub tos: u8,
    pub df: bool,
    pub ip_options: usize,
    pub tcp_options: usize,
    pub payload: Vec<u8>,
}

impl TcpBuilder {
    pub fn v4() -> TcpBuilder {
        let mut src = [0; 16];
        let mut dst = [0; 16];
        src[..4].copy_from_slice(&[10, 0, 0, 1]);
        dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        TcpBuilder {
            v6: false,
            src,
            dst,
            sport: 40000,
            dport: 5201,
            seq: 1000,
            ack: 77,
            flags: TCP_ACK,
            window: 512,
            id: 4242,
            ttl: 64,
            tos: 0,
            df: true,
            ip_options: 0,
            tcp_options: 0,
            payload: Vec::new(),
        }
    }

    pub fn v6() -> TcpBuilder {
        let mut src = [0; 16];
        let mut dst = [0; 16];
        src[..2].copy_from_slice(&[0xfd, 0x7a]);
        src[15] = 1;
        dst[..2].copy_from_slice(&[0xfd, 0x7a]);
        dst[15] = 2;
        TcpBuilder {
            v6: true,
            src,
            dst,
            ..TcpBuilder::v4()
        }
    }

    pub fn ip_options(mut self, bytes: usize) -> TcpBuilder {
        self.ip_options = bytes;
        self
    }

    pub fn tcp_options(mut self, bytes: usize) -> TcpBuilder {
        self.tcp_options = bytes;
        self
    }

    pub fn payload(mut self, payload: Vec<u8>) -> TcpBuilder {
        self.payload = payload;
        self
    }

    pub fn seq(mut self, seq: u32) -> TcpBuilder {
        self.seq = seq;
        self
    }

    pub fn flags(mut self, flags: u8) -> TcpBuilder {
        self.flags = flags;
        self
    }

    pub fn ip_len(&self) -> usize {
        if self.v6 {
            40
        } else {
            20 + self.ip_options
        }
    }

    pub fn headers_len(&self) -> usize {
        self.ip_len() + 20 + self.tcp_options
    }

    /// The packet with every field as set and both checksums correct.
    pub fn build(&self) -> Vec<u8> {
        let mut p = self.build_unchecked();
        let ip_len = self.ip_len();
        if !self.v6 {
            let check = reference_checksum(&p[..ip_len], 0);
            p[10..12].copy_from_slice(&check.to_be_bytes());
        }
        let version = if self.v6 {
            IpVersion::V6
        } else {
            IpVersion::V4
        };
        let pseudo = tcp_pseudo_sum(&p, version, p.len() - ip_len);
        let check = super::checksum::checksum(&p[ip_len..], pseudo);
        let at = ip_len + TCP_CHECKSUM_OFFSET;
        p[at..at + 2].copy_from_slice(&check.to_be_bytes());
        p
    }

    /// Like the kernel's TSO super-packet: the TCP checksum field holds the
    /// folded pseudo-header sum, and the vnet header asks for segments of
    /// `gso_size`.
    pub fn super_packet(&self, gso_size: u16) -> (VnetHdr, Vec<u8>) {
        let mut p = self.build();
        let ip_len = self.ip_len();
        let version = if self.v6 {
            IpVersion::V6
        } else {
            IpVersion::V4
        };
        let pseudo = super::checksum::fold(tcp_pseudo_sum(&p, version, p.len() - ip_len));
        let at = ip_len + TCP_CHECKSUM_OFFSET;
        p[at..at + 2].copy_from_slice(&pseudo.to_be_bytes());
        let hdr = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: if self.v6 {
                VnetHdr::GSO_TCPV6
            } else {
                VnetHdr::GSO_TCPV4
            },
            hdr_len: self.headers_len() as u16,
            gso_size,
            csum_start: ip_len as u16,
            csum_offset: TCP_CHECKSUM_OFFSET as u16,
        };
        (hdr, p)
    }

    fn build_unchecked(&self) -> Vec<u8> {
        let ip_len = self.ip_len();
        let tcp_len = 20 + self.tcp_options;
        let total = ip_len + tcp_len + self.payload.len();
        let mut p = vec![0u8; total];
        if self.v6 {
            p[0] = 0x60 | (self.tos >> 4);
            p[1] = self.tos << 4;
            p[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
            p[6] = 6;
            p[7] = self.ttl;
            p[8..24].copy_from_slice(&self.src);
            p[24..40].copy_from_slice(&self.dst);
        } else {
            p[0] = 0x40 | (ip_len / 4) as u8;
            p[1] = self.tos;
            p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            p[4..6].copy_from_slice(&self.id.to_be_bytes());
            p[6] = if self.df { 0x40 } else { 0 };
            p[8] = self.ttl;
            p[9] = 6;
            p[12..16].copy_from_slice(&self.src[..4]);
            p[16..20].copy_from_slice(&self.dst[..4]);
            p[20..ip_len].fill(1); // NOP options
        }
        let t = &mut p[ip_len..];
        t[0..2].copy_from_slice(&self.sport.to_be_bytes());
        t[2..4].copy_from_slice(&self.dport.to_be_bytes());
        t[4..8].copy_from_slice(&self.seq.to_be_bytes());
        t[8..12].copy_from_slice(&self.ack.to_be_bytes());
        t[12] = ((tcp_len / 4) as u8) << 4;
        t[13] = self.flags;
        t[14..16].copy_from_slice(&self.window.to_be_bytes());
        for (i, b) in t[20..tcp_len].iter_mut().enumerate() {
            *b = 1 + (i % 7) as u8; // arbitrary option bytes
        }
        t[tcp_len..].copy_from_slice(&self.payload);
        p
    }
}

/// Whether `packet` has a correct IPv4 header checksum (if IPv4), length
/// fields matching its length, and a correct TCP checksum.
pub(crate) fn verifies(packet: &[u8]) -> bool {
    let Ok(headers) = parse_tcp(packet) else {
        return false;
    };
    let lengths_ok = match headers.version {
        IpVersion::V4 => {
            reference_checksum(&packet[..headers.ip_len], 0) == 0
                && usize::from(u16::from_be_bytes([packet[2], packet[3]])) == packet.len()
        }
        IpVersion::V6 => {
            usize::from(u16::from_be_bytes([packet[4], packet[5]])) == packet.len() - 40
        }
    };
    let pseudo = tcp_pseudo_sum(packet, headers.version, packet.len() - headers.ip_len);
    lengths_ok && super::checksum::checksum(&packet[headers.ip_len..], pseudo) == 0
}

/// TCP sequence number, flags and payload of a parsed packet.
pub(crate) fn tcp_fields(packet: &[u8]) -> (u32, u8, &[u8]) {
    let h = parse_tcp(packet).expect("a TCP packet");
    let t = &packet[h.ip_len..];
    (
        u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        t[13],
        &packet[h.len()..],
    )
}
