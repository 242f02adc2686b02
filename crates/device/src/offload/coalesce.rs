//! IP packets → TUN writes: merge in-order TCP segments of one flow into a
//! super-packet the kernel takes in one `write()` (software GRO).
//!
//! # What merges
//!
//! [`Coalescer::coalesce`] takes a batch of decrypted IP packets in arrival
//! order. A TCP packet joins the *open* group of its flow (same IP version,
//! addresses and ports) when all of these hold, the kernel's own GRO rules
//! (`tcp_gro_receive`, `inet_gro_receive`) or stricter:
//!
//! * it carries payload, its flags are exactly ACK or ACK|PSH, and the
//!   group's last member had no PSH (PSH may only end a super-packet);
//! * its sequence number is the group's first plus the payload so far;
//! * its payload is at most the first member's (the `gso_size`), and every
//!   member before it was exactly that long (only the last may be short);
//! * IPv4: no options, not a fragment, same TOS, DF and TTL, total length
//!   equal to the packet's length, and without DF an ID one more than the
//!   previous member's; IPv6: no extension header, same first
//!   4 bytes (version, traffic class, flow label) and hop limit, payload
//!   length matching;
//! * TCP: same header length and identical ack number, window, urgent
//!   pointer and options bytes (timestamps included, as the kernel asks);
//! * the merged packet stays within [`MAX_SUPER_PACKET`] bytes;
//! * its TCP checksum (and IPv4 header checksum) verify, as does the first
//!   member's: the kernel will not check a `NEEDS_CSUM` packet again.
//!
//! Any other TCP packet of the flow closes the flow's open group (and, if
//! it could start one, opens a new one), so a flow's packets leave in the
//! order they came; packets of other flows and non-TCP packets pass
//! through in place. Different flows may be reordered relative to each
//! other only in that a group is written at its first member's position.
//!
//! # Output
//!
//! Each output is a 10-byte [`VnetHdr`] followed by a packet, ready for one
//! `write()`. A packet that merged with nothing is copied unchanged behind
//! an all-zero header. A super-packet is the first member's headers with
//! every member's payload appended, the IPv4 total length (or IPv6 payload
//! length) and IPv4 header checksum rewritten, PSH set if its last member
//! had it, the TCP checksum field set to the folded pseudo-header sum, and
//! the header `{ flags: NEEDS_CSUM, gso_type: TCPV4/TCPV6, hdr_len: IP + TCP
//! headers, gso_size: first payload length, csum_start: IP header length,
//! csum_offset: 16 }` (see the [module docs](super) for why NEEDS_CSUM).
//! Segmenting it again with [`segment()`](super::segment()) gives back the
//! members byte for byte, except that, with DF set, IPv4 IDs become the
//! first's plus *i* (and the IPv4 header checksum follows): DF packets'
//! IDs carry no meaning (RFC 6864), and the kernel's GRO drops them too.

use super::checksum;
use super::packet::{
    be16, be32, byte, fill_ipv4_checksum, parse_tcp, put16, tcp_pseudo_sum, IpVersion, TCP_ACK,
    TCP_CHECKSUM_OFFSET, TCP_FLAGS_OFFSET, TCP_PSH,
};
use super::vnet_hdr::VnetHdr;
use super::{OffloadError, MAX_SUPER_PACKET};
use std::ops::Range;

/// The IPv4 don't-fragment bit, in the byte at offset 6.
const IPV4_DF: u8 = 0x40;

/// "No next member" in [`Coalescer::next`].
const END: usize = usize::MAX;

/// Merges in-order TCP segments of a batch of packets into super-packets.
///
/// Holds only scratch space, reused from batch to batch: after the first
/// few batches [`Coalescer::coalesce`] allocates nothing. Finding a
/// packet's flow scans the groups still open, newest first: cheap for the
/// usual handful of bulk flows, quadratic only in the number of flows that
/// are open at once within one batch.
#[derive(Debug, Default)]
pub struct Coalescer {
    /// One per output, in output order.
    groups: Vec<Group>,
    /// Per packet: the index of the next member of its group, or [`END`].
    next: Vec<usize>,
    /// Indexes into `groups` of the groups that may still grow.
    open: Vec<usize>,
    /// The ranges returned by the last call.
    ranges: Vec<Range<usize>>,
}

/// A flow: IP version, source and destination address, ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FlowKey {
    version: IpVersion,
    addrs: [u8; 32],
    ports: [u8; 4],
}

/// A packet that may join or start a group.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    key: FlowKey,
    ip_len: usize,
    tcp_len: usize,
    seq: u32,
    payload_len: usize,
    psh: bool,
}

impl Candidate {
    fn headers_len(&self) -> usize {
        self.ip_len + self.tcp_len
    }
}

/// What the coalescer makes of one packet.
enum Class {
    /// Not TCP (or not parseable): passes through, belongs to no flow.
    Other,
    /// TCP that cannot merge: passes through and closes its flow's group.
    Barrier(FlowKey),
    /// May merge.
    Candidate(Candidate),
}

/// One output: a packet alone, or a super-packet of several.
#[derive(Debug, Clone, Copy)]
struct Group {
    first: usize,
    last: usize,
    members: usize,
    /// The first member, if it could start a merge.
    head: Option<Candidate>,
    /// Payload bytes of all members.
    payload_len: usize,
    /// IP length of the (merged) packet.
    len: usize,
    /// The last member had PSH, or was short: nothing may follow.
    ended: bool,
    psh: bool,
    head_verified: bool,
}

impl Coalescer {
    /// An empty coalescer.
    pub fn new() -> Coalescer {
        Coalescer::default()
    }

    /// Coalesces `packets` (IP packets in arrival order) into `out` and
    /// returns the range of each output in `out`: a [`VnetHdr`] then a
    /// packet, ready for one TUN `write()` each, in order.
    ///
    /// `out` needs at most `Σ (10 + packet length)` bytes (less when
    /// packets merge); a shorter one is refused with
    /// [`OffloadError::OutputTooSmall`] before anything is written. No
    /// other error: packets that are not mergeable TCP (including garbage)
    /// pass through unchanged.
    pub fn coalesce<P: AsRef<[u8]>>(
        &mut self,
        packets: &[P],
        out: &mut [u8],
    ) -> Result<&[Range<usize>], OffloadError> {
        self.plan(packets);
        let needed: usize = self.groups.iter().map(|g| VnetHdr::LEN + g.len).sum();
        if needed > out.len() {
            self.ranges.clear();
            return Err(OffloadError::OutputTooSmall {
                needed,
                available: out.len(),
            });
        }
        self.write(packets, out);
        Ok(&self.ranges)
    }

    /// Assigns every packet to a group, without copying anything.
    fn plan<P: AsRef<[u8]>>(&mut self, packets: &[P]) {
        self.groups.clear();
        self.open.clear();
        self.ranges.clear();
        self.next.clear();
        self.next.resize(packets.len(), END);
        for (i, packet) in packets.iter().enumerate() {
            let packet = packet.as_ref();
            match classify(packet) {
                Class::Other => self.start(i, packet.len(), None),
                Class::Barrier(key) => {
                    self.close(&key);
                    self.start(i, packet.len(), None);
                }
                Class::Candidate(c) => {
                    if self.try_merge(packets, i, packet, &c) {
                        continue;
                    }
                    self.close(&c.key);
                    self.start(i, packet.len(), Some(c));
                }
            }
        }
    }

    /// Appends packet `i` to its flow's open group if it may; true if it did.
    /// A packet that fails its checksum is started as a group of its own
    /// that nothing joins.
    fn try_merge<P: AsRef<[u8]>>(
        &mut self,
        packets: &[P],
        i: usize,
        packet: &[u8],
        c: &Candidate,
    ) -> bool {
        let Some(slot) = self.find_open(&c.key) else {
            return false;
        };
        let Some(&gi) = self.open.get(slot) else {
            return false;
        };
        let Some(group) = self.groups.get(gi).copied() else {
            return false;
        };
        let Some(head) = group.head else {
            return false;
        };
        let first = packets.get(group.first).map_or(&[][..], AsRef::as_ref);
        if !can_merge(&group, &head, first, c, packet) {
            return false;
        }
        if !group.head_verified && !verifies(first, &head) {
            // The first member stays alone; this packet starts afresh.
            return false;
        }
        if !verifies(packet, c) {
            self.open.swap_remove(slot);
            self.start(i, packet.len(), None);
            return true;
        }
        if let Some(next) = self.next.get_mut(group.last) {
            *next = i;
        }
        let ended = c.psh || c.payload_len < head.payload_len;
        if let Some(g) = self.groups.get_mut(gi) {
            g.last = i;
            g.members += 1;
            g.payload_len += c.payload_len;
            g.len += c.payload_len;
            g.ended = ended;
            g.psh = c.psh;
            g.head_verified = true;
        }
        if ended {
            self.open.swap_remove(slot);
        }
        true
    }

    /// Starts a group with packet `i`; open if it can be merged into.
    fn start(&mut self, i: usize, len: usize, head: Option<Candidate>) {
        if head.is_some_and(|h| !h.psh) {
            self.open.push(self.groups.len());
        }
        self.groups.push(Group {
            first: i,
            last: i,
            members: 1,
            head,
            payload_len: head.map_or(0, |h| h.payload_len),
            len,
            ended: head.is_some_and(|h| h.psh),
            psh: head.is_some_and(|h| h.psh),
            head_verified: false,
        });
    }

    /// Position in `open` of the open group of `key`, if any.
    fn find_open(&self, key: &FlowKey) -> Option<usize> {
        self.open.iter().rposition(|&gi| {
            self.groups
                .get(gi)
                .and_then(|g| g.head)
                .is_some_and(|h| h.key == *key)
        })
    }

    /// Closes the open group of `key`, if any.
    fn close(&mut self, key: &FlowKey) {
        if let Some(slot) = self.find_open(key) {
            self.open.swap_remove(slot);
        }
    }

    /// Copies every group into `out` (sized by the caller's check) and
    /// records its range.
    fn write<P: AsRef<[u8]>>(&mut self, packets: &[P], out: &mut [u8]) {
        let mut pos = 0;
        for group in &self.groups {
            let range = pos..pos + VnetHdr::LEN + group.len;
            pos = range.end;
            let Some(dst) = out.get_mut(range.clone()) else {
                break; // unreachable: `coalesce` checked the total
            };
            let (hdr_bytes, body) = dst.split_at_mut(VnetHdr::LEN);
            let first = packets.get(group.first).map_or(&[][..], AsRef::as_ref);
            let hdr = match group.head {
                Some(head) if group.members > 1 => {
                    self.write_merged(packets, group, &head, first, body)
                }
                _ => {
                    copy(body, 0, first);
                    VnetHdr::default()
                }
            };
            if let Some(hdr_bytes) = hdr_bytes.first_chunk_mut::<10>() {
                hdr.encode(hdr_bytes);
            }
            self.ranges.push(range);
        }
    }

    /// Writes a super-packet into `body` (exactly `group.len` bytes) and
    /// returns its vnet header.
    fn write_merged<P: AsRef<[u8]>>(
        &self,
        packets: &[P],
        group: &Group,
        head: &Candidate,
        first: &[u8],
        body: &mut [u8],
    ) -> VnetHdr {
        let headers = head.headers_len();
        let mut at = copy(body, 0, first);
        let mut member = self.next.get(group.first).copied().unwrap_or(END);
        while member != END {
            let packet = packets.get(member).map_or(&[][..], AsRef::as_ref);
            at = copy(body, at, packet.get(headers..).unwrap_or(&[]));
            member = self.next.get(member).copied().unwrap_or(END);
        }
        let len = body.len();
        let ip_len = head.ip_len;
        let gso_type = match head.key.version {
            IpVersion::V4 => {
                put16(body, 2, len as u16);
                fill_ipv4_checksum(body, ip_len);
                VnetHdr::GSO_TCPV4
            }
            IpVersion::V6 => {
                put16(body, 4, (len - ip_len) as u16);
                VnetHdr::GSO_TCPV6
            }
        };
        if group.psh {
            if let Some(flags) = body.get_mut(ip_len + TCP_FLAGS_OFFSET) {
                *flags |= TCP_PSH;
            }
        }
        let pseudo = tcp_pseudo_sum(body, head.key.version, len - ip_len);
        put16(body, ip_len + TCP_CHECKSUM_OFFSET, checksum::fold(pseudo));
        VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type,
            hdr_len: headers as u16,
            gso_size: head.payload_len as u16,
            csum_start: ip_len as u16,
            csum_offset: TCP_CHECKSUM_OFFSET as u16,
        }
    }
}

/// Copies `src` into `dst` at `at`; returns the end (stops short rather
/// than panic if it would not fit, which the sizing rules out).
fn copy(dst: &mut [u8], at: usize, src: &[u8]) -> usize {
    if let Some(slot) = dst.get_mut(at..at + src.len()) {
        slot.copy_from_slice(src);
    }
    at + src.len()
}

fn classify(packet: &[u8]) -> Class {
    let Ok(headers) = parse_tcp(packet) else {
        return Class::Other;
    };
    let version = headers.version;
    let (at, len) = version.addresses();
    let mut addrs = [0u8; 32];
    if let Some(src) = packet.get(at..at + 2 * len) {
        copy(&mut addrs, 0, src);
    }
    let mut ports = [0u8; 4];
    if let Some(src) = packet.get(headers.ip_len..headers.ip_len + 4) {
        copy(&mut ports, 0, src);
    }
    let key = FlowKey {
        version,
        addrs,
        ports,
    };
    let length_field_ok = match version {
        IpVersion::V4 => usize::from(be16(packet, 2).unwrap_or(0)) == packet.len(),
        IpVersion::V6 => usize::from(be16(packet, 4).unwrap_or(0)) + 40 == packet.len(),
    };
    let flags = byte(packet, headers.ip_len + TCP_FLAGS_OFFSET);
    let payload_len = packet.len() - headers.len();
    let mergeable = packet.len() <= MAX_SUPER_PACKET
        && length_field_ok
        && (version == IpVersion::V6 || headers.ip_len == 20)
        && (flags == TCP_ACK || flags == TCP_ACK | TCP_PSH)
        && payload_len > 0;
    if !mergeable {
        return Class::Barrier(key);
    }
    Class::Candidate(Candidate {
        key,
        ip_len: headers.ip_len,
        tcp_len: headers.tcp_len,
        seq: be32(packet, headers.ip_len + 4).unwrap_or(0),
        payload_len,
        psh: flags & TCP_PSH != 0,
    })
}

/// Whether `c` (the bytes `packet`) may be appended to `group`, whose first
/// member `head` is `first`. Checksums are checked separately.
fn can_merge(group: &Group, head: &Candidate, first: &[u8], c: &Candidate, packet: &[u8]) -> bool {
    if group.ended
        || c.ip_len != head.ip_len
        || c.tcp_len != head.tcp_len
        || c.payload_len > head.payload_len
        || c.seq != head.seq.wrapping_add(group.payload_len as u32)
        || group.len + c.payload_len > MAX_SUPER_PACKET
    {
        return false;
    }
    let same = |range: Range<usize>| match (first.get(range.clone()), packet.get(range)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    };
    let ip_same = match head.key.version {
        // Version/IHL and TOS; flags (DF; MF and offset are zero); TTL.
        // Without DF the ID may matter downstream (fragment reassembly), and
        // re-segmenting numbers segments first ID + i: so the IDs must
        // already count up by one, as the kernel's GRO asks.
        IpVersion::V4 => {
            same(0..2)
                && same(6..7)
                && same(8..9)
                && (byte(first, 6) & IPV4_DF != 0
                    || be16(packet, 4)
                        == be16(first, 4).map(|id| id.wrapping_add(group.members as u16)))
        }
        // Version, traffic class, flow label; hop limit.
        IpVersion::V6 => same(0..4) && same(7..8),
    };
    let t = head.ip_len;
    let flags_same = byte(first, t + TCP_FLAGS_OFFSET) & !TCP_PSH
        == byte(packet, t + TCP_FLAGS_OFFSET) & !TCP_PSH;
    // Ack number and data offset; window; urgent pointer and options.
    ip_same
        && flags_same
        && same(t + 8..t + 13)
        && same(t + 14..t + 16)
        && same(t + 18..t + head.tcp_len)
}

/// Whether `packet`'s IPv4 header checksum (if IPv4) and TCP checksum hold.
fn verifies(packet: &[u8], c: &Candidate) -> bool {
    if c.key.version == IpVersion::V4
        && checksum::checksum(packet.get(..c.ip_len).unwrap_or(&[]), 0) != 0
    {
        return false;
    }
    let tcp = packet.get(c.ip_len..).unwrap_or(&[]);
    let pseudo = tcp_pseudo_sum(packet, c.key.version, tcp.len());
    checksum::checksum(tcp, pseudo) == 0
}

#[cfg(test)]
#[path = "coalesce_tests.rs"]
mod tests;
