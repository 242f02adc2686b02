//! The relay core fed datagrams from strangers (no session exists): it
//! never panics, never forwards, creates no session, and never answers with
//! as many bytes as it was sent.
//!
//! Input: a sequence of `[source (1 byte), time step (1 byte), length (1
//! byte), datagram]` records.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use warren_relay_proto::{Config, ControlKey, Relay};

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut relay = Relay::new(Config::default(), ControlKey([9; 32]), [1; 32], start);
    let mut now = start;
    let mut rest = data;
    while let [source, step, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_millis(u64::from(*step) * 500);
        relay.handle_timeout(now);
        let from = SocketAddr::from(([198, 51, 100, source % 4], 4000));
        let mut bytes = datagram.to_vec();
        let elapsed = now - start;
        let forwarded = relay.handle_datagram(now, wall + elapsed, from, &mut bytes);
        assert!(!matches!(forwarded, Ok(Some(_))));
        while let Some(reply) = relay.poll_transmit() {
            assert!(reply.payload.len() < datagram.len());
        }
        assert_eq!(relay.session_count(), 0);
    }
});
