//! How the commands write the values people read in their tables: absent
//! values, yes/no, times since and until, round-trip times, byte counts. One
//! spelling each, so that `warren mesh` and `warren status` say the same
//! thing the same way (and the end-to-end tests can grep for it).

use std::fmt::Display;

/// The value, or `-` when there is none.
pub fn or_dash<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

/// `yes` or `no`.
pub fn yes_no(value: bool) -> &'static str {
    if value {
        "yes"
    } else {
        "no"
    }
}

/// `12s ago`: how long ago something happened, in seconds.
pub fn ago(secs: u64) -> String {
    format!("{secs}s ago")
}

/// `12s ago`, or `never` for what has not happened yet (a handshake).
pub fn ago_or_never(secs: Option<u64>) -> String {
    secs.map_or_else(|| "never".to_owned(), ago)
}

/// `in 59m`, `3h ago`, `now`: unix time `at` seen from `now`, in one unit,
/// rounded down.
pub fn relative(at: u64, now: u64) -> String {
    let (span, future) = if at >= now {
        (at - now, true)
    } else {
        (now - at, false)
    };
    let text = match span {
        0 => return "now".to_owned(),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// `1.25 ms`: milliseconds, to two decimals.
pub fn ms(millis: f64) -> String {
    format!("{millis:.2} ms")
}

/// A round-trip time in milliseconds (`1.25 ms`), or `-` when none was
/// measured.
pub fn rtt(ms: Option<f64>) -> String {
    or_dash(ms.map(self::ms))
}

/// `100 B`, `3.0 MiB`: a byte count in the largest binary unit (up to GiB)
/// that keeps it at 1 or more, to one decimal.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_values_are_a_dash() {
        assert_eq!(or_dash(Some("198.51.100.7:4000")), "198.51.100.7:4000");
        assert_eq!(or_dash(Some(3)), "3");
        assert_eq!(or_dash(None::<&str>), "-");
        assert_eq!([yes_no(true), yes_no(false)], ["yes", "no"]);
    }

    #[test]
    fn times_since_are_in_seconds_and_a_missing_handshake_is_never() {
        assert_eq!(
            [ago(0), ago(12), ago(3600)],
            ["0s ago", "12s ago", "3600s ago"]
        );
        assert_eq!(
            [ago_or_never(Some(7)), ago_or_never(None)],
            ["7s ago", "never"]
        );
    }

    #[test]
    fn relative_times_use_one_unit_rounded_down() {
        let cases = [
            ((100, 100), "now"),
            ((159, 100), "in 59s"),
            ((4600, 1120), "in 58m"),
            ((1000, 1120), "2m ago"),
            ((0, 7200), "2h ago"),
            ((100, 200_000), "2d ago"),
        ];
        for ((at, now), text) in cases {
            assert_eq!(relative(at, now), text, "{at} seen from {now}");
        }
    }

    #[test]
    fn round_trip_times_have_two_decimals() {
        assert_eq!(
            [ms(1.25), ms(0.5), ms(12.345_6)],
            ["1.25 ms", "0.50 ms", "12.35 ms"]
        );
        assert_eq!([rtt(Some(0.5)), rtt(None)], ["0.50 ms", "-"]);
    }

    #[test]
    fn byte_counts_use_the_largest_unit_that_fits() {
        let cases = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (3 << 20, "3.0 MiB"),
            ((5 << 30) + 1, "5.0 GiB"),
            // GiB is the largest unit.
            (2048 << 30, "2048.0 GiB"),
        ];
        for (n, text) in cases {
            assert_eq!(bytes(n), text, "{n} bytes");
        }
    }
}
