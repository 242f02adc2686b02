//! Outgoing datagrams collected from one burst of TUN reads, grouped for
//! UDP GSO: runs of equal-sized datagrams to one destination go to the
//! kernel in a single send.

use std::net::SocketAddr;
use std::ops::Range;
use warren_udp::gso_runs;

/// Encrypted datagrams laid out back to back in one buffer.
pub struct TxBatch {
    buf: Vec<u8>,
    entries: Vec<(SocketAddr, usize)>,
    used: usize,
    slot_size: usize,
}

/// A run of datagrams to send in one call: `segment_size`-byte datagrams
/// (the last may be shorter) in `range` of the batch's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendGroup {
    /// Where the datagrams go.
    pub dst: SocketAddr,
    /// Their bytes within [`TxBatch::bytes`].
    pub range: Range<usize>,
    /// Size of each datagram but the last.
    pub segment_size: usize,
}

impl TxBatch {
    /// A batch that holds `datagrams` datagrams of up to `slot_size` bytes.
    pub fn new(datagrams: usize, slot_size: usize) -> TxBatch {
        TxBatch {
            buf: vec![0; datagrams * slot_size],
            entries: Vec::with_capacity(datagrams),
            used: 0,
            slot_size,
        }
    }

    /// Where the next datagram is to be written, or `None` when full.
    pub fn slot(&mut self) -> Option<&mut [u8]> {
        let end = self.used + self.slot_size;
        self.buf.get_mut(self.used..end)
    }

    /// Records that `len` bytes for `dst` were written at the slot.
    pub fn push(&mut self, dst: SocketAddr, len: usize) {
        let len = len.min(self.slot_size);
        self.entries.push((dst, len));
        self.used += len;
    }

    /// The buffer the groups' ranges refer to.
    pub fn bytes(&self) -> &[u8] {
        self.buf.get(..self.used).unwrap_or_default()
    }

    /// The datagrams, grouped for GSO ([`warren_udp::gso_runs`]), in the
    /// order they were pushed.
    pub fn groups(&self) -> impl Iterator<Item = SendGroup> + '_ {
        let mut offset = 0;
        gso_runs(self.entries.iter().copied()).map(move |run| {
            let range = offset..offset + run.bytes;
            offset = range.end;
            SendGroup {
                dst: run.dst,
                range,
                segment_size: run.segment_size,
            }
        })
    }

    /// Empties the batch for the next burst.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_udp::{MAX_GSO_BYTES, MAX_GSO_SEGMENTS};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn batch_of(entries: &[(u16, usize)]) -> TxBatch {
        let mut batch = TxBatch::new(100, 1500);
        for (port, len) in entries {
            batch.slot().unwrap();
            batch.push(addr(*port), *len);
        }
        batch
    }

    #[test]
    fn equal_sizes_to_one_destination_form_one_group_ended_by_a_shorter_one() {
        let batch = batch_of(&[(1, 1452), (1, 1452), (1, 1452), (1, 800), (1, 1452)]);
        let groups: Vec<SendGroup> = batch.groups().collect();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].range, 0..3 * 1452 + 800);
        assert_eq!(groups[0].segment_size, 1452);
        assert_eq!(groups[1].range, 3 * 1452 + 800..4 * 1452 + 800);
    }

    #[test]
    fn destinations_and_larger_datagrams_split_groups() {
        let batch = batch_of(&[(1, 100), (2, 100), (2, 200), (2, 200)]);
        let groups: Vec<SendGroup> = batch.groups().collect();
        let shape: Vec<(u16, usize, usize)> = groups
            .iter()
            .map(|g| (g.dst.port(), g.range.len(), g.segment_size))
            .collect();
        assert_eq!(shape, vec![(1, 100, 100), (2, 100, 100), (2, 400, 200)]);
    }

    #[test]
    fn groups_respect_the_kernel_segment_and_byte_limits() {
        let entries: Vec<(u16, usize)> = (0..100).map(|_| (1, 1452)).collect();
        let batch = batch_of(&entries);
        let groups: Vec<SendGroup> = batch.groups().collect();
        assert!(groups.len() >= 3);
        for group in &groups {
            assert!(group.range.len() <= MAX_GSO_BYTES);
            assert!(group.range.len().div_ceil(group.segment_size) <= MAX_GSO_SEGMENTS);
        }
        let total: usize = groups.iter().map(|g| g.range.len()).sum();
        assert_eq!(total, 100 * 1452);
    }

    #[test]
    fn a_full_batch_has_no_slot() {
        let mut batch = TxBatch::new(2, 10);
        batch.slot().unwrap();
        batch.push(addr(1), 10);
        batch.slot().unwrap();
        batch.push(addr(1), 10);
        assert!(batch.slot().is_none());
        batch.clear();
        assert!(batch.slot().is_some());
    }
}
