//! `Frame::decode` on arbitrary bytes: never panics, and whatever it accepts
//! encodes back to exactly the same bytes (one encoding per frame).
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_wire::{is_warren_frame, Frame};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::decode(data) else {
        return;
    };
    assert!(is_warren_frame(data));
    assert_eq!(frame.encoded_len(), data.len());
    assert_eq!(frame.to_vec(), data);
});
