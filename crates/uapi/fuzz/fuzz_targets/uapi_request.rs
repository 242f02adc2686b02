//! `parse_request` on arbitrary bytes: never panics, agrees with
//! `request_len`, and whatever it accepts renders back to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_uapi::{format_set_request, parse_request, request_len, Request};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = parse_request(data) else {
        return;
    };
    assert_eq!(request_len(data), Some(data.len()));
    if let Request::Set(set) = request {
        let text = format_set_request(&set);
        assert_eq!(parse_request(text.as_bytes()), Ok(Request::Set(set)));
    }
});
