//! Wall-clock time, for what is stored or sent as unix seconds (token and
//! ticket expiries, join times, report ages). Timers use `Instant`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the unix epoch now (0 if the clock is before it).
pub fn unix_now() -> u64 {
    unix_seconds(SystemTime::now())
}

/// `time` as seconds since the unix epoch (0 before it).
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds_count_from_the_epoch_and_never_go_negative() {
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(2500)), 2);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(1)), 0);
        assert!(unix_now() > 1_700_000_000);
    }
}
