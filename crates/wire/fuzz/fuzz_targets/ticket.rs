//! `Ticket::decode` on arbitrary bytes: never panics, accepts only 104-byte
//! inputs, and re-encodes what it accepts to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_wire::Ticket;

fuzz_target!(|data: &[u8]| {
    let Ok(ticket) = Ticket::decode(data) else {
        return;
    };
    let mut bytes = Vec::new();
    ticket.encode(&mut bytes);
    assert_eq!(bytes, data);
});
