//! `/metrics` in the Prometheus text exposition format (version 0.0.4).
//!
//! Written by hand: a dozen counters and one labelled family do not justify
//! a metrics registry crate, and the format is a few lines of text.

use std::fmt::Write as _;
use warren_relay_proto::Counters;

/// Counters the I/O driver keeps (the core cannot see socket errors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Datagrams received on the relay socket.
    pub received_datagrams: u64,
    /// Bytes received on the relay socket.
    pub received_bytes: u64,
    /// Sends that failed (the datagram was lost).
    pub send_errors: u64,
}

/// A point-in-time view of everything `/metrics` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The core's counters.
    pub counters: Counters,
    /// The driver's counters.
    pub io: IoCounters,
    /// Sessions now.
    pub sessions: usize,
    /// The registration cap.
    pub max_sessions: usize,
}

impl Snapshot {
    /// The text `/metrics` serves.
    pub fn render(&self) -> String {
        let c = &self.counters;
        let mut out = String::with_capacity(4096);
        let gauges: [(&str, &str, u64); 2] = [
            ("sessions", "Registered nodes now.", self.sessions as u64),
            (
                "max_sessions",
                "The registration cap (--max-nodes).",
                self.max_sessions as u64,
            ),
        ];
        for (name, help, value) in gauges {
            metric(&mut out, name, "gauge", help, value);
        }
        let counters: [(&str, &str, u64); 14] = [
            (
                "received_datagrams_total",
                "Datagrams received.",
                self.io.received_datagrams,
            ),
            (
                "received_bytes_total",
                "Bytes received.",
                self.io.received_bytes,
            ),
            (
                "send_errors_total",
                "Datagrams the socket failed to send.",
                self.io.send_errors,
            ),
            (
                "challenges_total",
                "Challenges sent in answer to registration requests.",
                c.challenges,
            ),
            ("registrations_total", "Sessions created.", c.registrations),
            (
                "refreshes_total",
                "Registrations of keys that already had a session.",
                c.refreshes,
            ),
            (
                "moves_total",
                "Sessions moved to a new source address.",
                c.moves,
            ),
            (
                "sessions_expired_total",
                "Sessions ended by their ticket's expiry.",
                c.expired,
            ),
            (
                "sessions_idled_out_total",
                "Sessions ended by silence.",
                c.idled_out,
            ),
            (
                "revocations_total",
                "Keys the control plane revoked (removed nodes).",
                c.revocations,
            ),
            (
                "forwarded_frames_total",
                "Datagrams forwarded between nodes.",
                c.forwarded_frames,
            ),
            (
                "forwarded_bytes_total",
                "Bytes forwarded between nodes (whole frames).",
                c.forwarded_bytes,
            ),
            ("pongs_total", "Keepalive answers sent.", c.pongs),
            ("errors_sent_total", "Error frames sent.", c.errors_sent),
        ];
        for (name, help, value) in counters {
            metric(&mut out, name, "counter", help, value);
        }
        let _ = writeln!(
            out,
            "# HELP warren_relay_dropped_total Datagrams dropped, by reason.\n\
             # TYPE warren_relay_dropped_total counter"
        );
        for (reason, count) in c.drops.iter() {
            let _ = writeln!(
                out,
                "warren_relay_dropped_total{{reason=\"{reason}\"}} {count}"
            );
        }
        out
    }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP warren_relay_{name} {help}\n# TYPE warren_relay_{name} {kind}\nwarren_relay_{name} {value}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_relay_proto::DropReason;

    #[test]
    fn renders_every_counter_and_every_drop_reason() {
        let mut snapshot = Snapshot {
            sessions: 3,
            max_sessions: 10,
            ..Snapshot::default()
        };
        snapshot.counters.forwarded_bytes = 1234;
        snapshot.counters.drops.count(DropReason::RateLimited);
        let text = snapshot.render();
        assert!(text.contains("\nwarren_relay_sessions 3\n"), "{text}");
        assert!(text.contains("\nwarren_relay_forwarded_bytes_total 1234\n"));
        assert!(text.contains("warren_relay_dropped_total{reason=\"rate_limited\"} 1\n"));
        for reason in DropReason::ALL {
            assert!(text.contains(&format!("{{reason=\"{reason}\"}}")));
        }
        // Every sample line is `name[{labels}] value`.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(name.starts_with("warren_relay_"));
            value.parse::<u64>().unwrap();
        }
    }
}
