//! The GSO-run rule: which consecutive datagrams can leave in one UDP GSO
//! send. The device's transmit batch, the relay's forwarding and
//! [`Outgoing::gso_size`](crate::Outgoing::gso_size) all cut by it.
//!
//! A run is consecutive datagrams to one destination, every one the size
//! of the first except the last, which may be shorter (so a shorter
//! datagram ends its run), at most [`MAX_GSO_SEGMENTS`] datagrams and
//! [`MAX_GSO_BYTES`] bytes: what the kernel splits back into the same
//! datagrams with `UDP_SEGMENT` set to the first one's size. An empty
//! datagram is a run of its own (a GSO send would lose it).

use crate::{MAX_GSO_BYTES, MAX_GSO_SEGMENTS};
use std::iter::Peekable;
use std::ops::Range;

/// One run of datagrams that can leave in one GSO send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GsoRun<D> {
    /// Where every datagram of the run goes.
    pub dst: D,
    /// The run's datagrams: their positions in the input.
    pub datagrams: Range<usize>,
    /// The first datagram's size: every one but the last has it, the last
    /// is no longer (the `UDP_SEGMENT` size).
    pub segment_size: usize,
    /// The run's bytes, all datagrams together.
    pub bytes: usize,
}

/// Cuts `datagrams`, each `(destination, length)` in sending order, into
/// GSO runs (see the module docs). Every datagram is in exactly one run,
/// and the runs come in input order. Allocates nothing.
pub fn gso_runs<D, I>(datagrams: I) -> GsoRuns<I::IntoIter>
where
    D: PartialEq,
    I: IntoIterator<Item = (D, usize)>,
{
    GsoRuns {
        datagrams: datagrams.into_iter().peekable(),
        next: 0,
    }
}

/// The iterator [`gso_runs`] returns.
pub struct GsoRuns<I: Iterator> {
    datagrams: Peekable<I>,
    /// The position of the next datagram in the input.
    next: usize,
}

impl<D: PartialEq, I: Iterator<Item = (D, usize)>> Iterator for GsoRuns<I> {
    type Item = GsoRun<D>;

    fn next(&mut self) -> Option<GsoRun<D>> {
        let (dst, size) = self.datagrams.next()?;
        let start = self.next;
        let (mut count, mut bytes, mut last) = (1, size, size);
        while let Some((next_dst, len)) = self.datagrams.peek() {
            let joins = *next_dst == dst
                && last == size
                && (1..=size).contains(len)
                && count < MAX_GSO_SEGMENTS
                && bytes + len <= MAX_GSO_BYTES;
            if !joins {
                break;
            }
            (count, bytes, last) = (count + 1, bytes + len, *len);
            self.datagrams.next();
        }
        self.next = start + count;
        Some(GsoRun {
            dst,
            datagrams: start..self.next,
            segment_size: size,
            bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `(destination, number of datagrams, segment size, bytes)` per run.
    fn cut(datagrams: &[(u8, usize)]) -> Vec<(u8, usize, usize, usize)> {
        gso_runs(datagrams.iter().copied())
            .map(|run| (run.dst, run.datagrams.len(), run.segment_size, run.bytes))
            .collect()
    }

    #[test]
    fn equal_sizes_to_one_destination_are_one_run_ended_by_a_shorter_one() {
        let datagrams = [(1, 1452), (1, 1452), (1, 1452), (1, 800), (1, 1452)];
        assert_eq!(
            cut(&datagrams),
            vec![(1, 4, 1452, 3 * 1452 + 800), (1, 1, 1452, 1452)]
        );
    }

    #[test]
    fn destinations_and_larger_datagrams_start_runs() {
        let datagrams = [(1, 100), (2, 100), (2, 200), (2, 200), (1, 200)];
        assert_eq!(
            cut(&datagrams),
            vec![
                (1, 1, 100, 100),
                (2, 1, 100, 100),
                (2, 2, 200, 400),
                (1, 1, 200, 200)
            ]
        );
    }

    #[test]
    fn runs_stop_at_the_kernel_segment_and_byte_caps() {
        let small = vec![(1, 500); MAX_GSO_SEGMENTS + 1];
        assert_eq!(
            cut(&small),
            vec![
                (1, MAX_GSO_SEGMENTS, 500, MAX_GSO_SEGMENTS * 500),
                (1, 1, 500, 500)
            ]
        );
        // 1400-byte datagrams: the 64 KiB UDP length caps a run at 46.
        let big = vec![(1, 1400); 50];
        let fit = MAX_GSO_BYTES / 1400;
        assert_eq!(
            cut(&big),
            vec![
                (1, fit, 1400, fit * 1400),
                (1, 50 - fit, 1400, (50 - fit) * 1400)
            ]
        );
    }

    #[test]
    fn empty_datagrams_are_runs_of_their_own() {
        let datagrams = [(1, 100), (1, 0), (1, 0), (1, 100)];
        assert_eq!(
            cut(&datagrams),
            vec![
                (1, 1, 100, 100),
                (1, 1, 0, 0),
                (1, 1, 0, 0),
                (1, 1, 100, 100)
            ]
        );
        assert_eq!(cut(&[]), vec![]);
    }

    proptest! {
        /// The runs cover the input in order, and each obeys the rule and
        /// the caps; a run ends only where the next datagram could not
        /// join it.
        #[test]
        fn runs_cover_the_input_in_order_and_obey_the_rule(
            // Stretches of equal datagrams (up to 80: past the segment cap,
            // and past the byte cap for large ones), in any mix.
            stretches in proptest::collection::vec(
                (
                    0u8..3,
                    prop_oneof![Just(0usize), 1usize..3, Just(1400), Just(1452), 1usize..2000],
                    1usize..80,
                ),
                0..12,
            )
        ) {
            let datagrams: Vec<(u8, usize)> = stretches
                .iter()
                .flat_map(|(dst, len, repeat)| std::iter::repeat_n((*dst, *len), *repeat))
                .collect();
            let runs: Vec<GsoRun<u8>> = gso_runs(datagrams.iter().copied()).collect();
            let mut expected_start = 0;
            for (i, run) in runs.iter().enumerate() {
                prop_assert_eq!(run.datagrams.start, expected_start);
                prop_assert!(!run.datagrams.is_empty());
                expected_start = run.datagrams.end;
                let members = &datagrams[run.datagrams.clone()];
                let (first, rest) = members.split_first().unwrap();
                prop_assert_eq!(run.segment_size, first.1);
                prop_assert_eq!(run.bytes, members.iter().map(|d| d.1).sum::<usize>());
                prop_assert!(members.iter().all(|d| d.0 == run.dst));
                if let Some((last, middle)) = rest.split_last() {
                    prop_assert!(middle.iter().all(|d| d.1 == run.segment_size));
                    prop_assert!(last.1 <= run.segment_size && last.1 > 0);
                    prop_assert!(members.len() <= MAX_GSO_SEGMENTS);
                    prop_assert!(run.bytes <= MAX_GSO_BYTES);
                }
                // Maximal: the next datagram could not have joined.
                if let (Some(next), Some(_)) = (datagrams.get(run.datagrams.end), runs.get(i + 1)) {
                    let last = members.last().unwrap().1;
                    let could_join = next.0 == run.dst
                        && last == run.segment_size
                        && next.1 > 0
                        && next.1 <= run.segment_size
                        && members.len() < MAX_GSO_SEGMENTS
                        && run.bytes + next.1 <= MAX_GSO_BYTES;
                    prop_assert!(!could_join, "run {} stopped early", i);
                }
            }
            prop_assert_eq!(expected_start, datagrams.len());
        }
    }
}
