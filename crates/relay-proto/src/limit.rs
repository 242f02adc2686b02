//! Per-node rate limits: token buckets on bytes and packets, on virtual time.

use std::time::{Duration, Instant};

/// A node's allowance through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained bytes per second (whole frames, headers included).
    pub bytes_per_second: u64,
    /// Sustained frames per second.
    pub packets_per_second: u64,
    /// How much above the sustained rate a burst may go, as time at that rate.
    pub burst: Duration,
}

impl Default for RateLimit {
    /// 100 Mbit/s and 20 000 frames/s per node, with 100 ms bursts.
    ///
    /// The forwarding target for a 2-core relay is about 1.5 Gbit/s, so one
    /// node at its full allowance takes under a tenth of it: a flooding node
    /// cannot starve the others, while a home uplink is rarely faster. 20 000
    /// frames/s is 100 Mbit/s at ~600-byte frames, and caps small-packet
    /// floods (which cost the relay per packet, not per byte). A 100 ms burst
    /// absorbs TCP's bursts without letting a node double its rate.
    fn default() -> Self {
        RateLimit {
            bytes_per_second: 100_000_000 / 8,
            packets_per_second: 20_000,
            burst: Duration::from_millis(100),
        }
    }
}

const NANOS: u128 = 1_000_000_000;

/// A token bucket: `rate` tokens per second, holding at most `capacity`.
/// Tokens are kept in billionths so that refills are exact at any rate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bucket {
    rate: u128,
    capacity: u128,
    tokens: u128,
}

impl Bucket {
    fn new(rate: u64, burst: Duration, floor: u64) -> Self {
        let burst_tokens = (u128::from(rate) * burst.as_nanos() / NANOS).max(u128::from(floor));
        let capacity = burst_tokens * NANOS;
        Bucket {
            rate: u128::from(rate),
            capacity,
            tokens: capacity,
        }
    }

    fn refill(&mut self, elapsed: Duration) {
        let added = self.rate.saturating_mul(elapsed.as_nanos());
        self.tokens = self.tokens.saturating_add(added).min(self.capacity);
    }

    fn has(&self, cost: u64) -> bool {
        self.tokens >= u128::from(cost) * NANOS
    }

    fn take(&mut self, cost: u64) {
        self.tokens = self.tokens.saturating_sub(u128::from(cost) * NANOS);
    }
}

/// One node's byte and packet buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limiter {
    bytes: Bucket,
    packets: Bucket,
    last: Instant,
}

impl Limiter {
    /// Full buckets at `now`. A burst always allows at least one 64 KiB
    /// datagram and one packet, however low the rates are set.
    pub(crate) fn new(limit: &RateLimit, now: Instant) -> Self {
        Limiter {
            bytes: Bucket::new(limit.bytes_per_second, limit.burst, 65_535),
            packets: Bucket::new(limit.packets_per_second, limit.burst, 1),
            last: now,
        }
    }

    /// Whether a frame of `len` bytes may pass at `now`; if so it is charged.
    pub(crate) fn allow(&mut self, now: Instant, len: usize) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        self.bytes.refill(elapsed);
        self.packets.refill(elapsed);
        let len = len as u64;
        if self.bytes.has(len) && self.packets.has(1) {
            self.bytes.take(len);
            self.packets.take(1);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gets_the_burst_then_the_rate() {
        let limit = RateLimit {
            bytes_per_second: 1_000_000,
            packets_per_second: 1_000_000,
            burst: Duration::from_millis(100),
        };
        let start = Instant::now();
        let mut limiter = Limiter::new(&limit, start);
        let mut passed = 0u64;
        // One second of 1000-byte frames offered at 10x the rate.
        for i in 0..10_000u64 {
            let now = start + Duration::from_micros(i * 100);
            if limiter.allow(now, 1000) {
                passed += 1000;
            }
        }
        // 1 MB/s for a second plus a 100 kB burst, to within one frame.
        assert!((1_099_000..=1_101_000).contains(&passed), "{passed}");
    }

    #[test]
    fn packets_are_limited_independently_of_bytes() {
        let limit = RateLimit {
            bytes_per_second: u64::MAX / 4,
            packets_per_second: 100,
            burst: Duration::from_millis(100),
        };
        let start = Instant::now();
        let mut limiter = Limiter::new(&limit, start);
        let passed = (0..1000).filter(|_| limiter.allow(start, 1)).count();
        assert_eq!(passed, 10);
        assert!(limiter.allow(start + Duration::from_millis(10), 1));
        assert!(!limiter.allow(start + Duration::from_millis(10), 1));
    }
}
