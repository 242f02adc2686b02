//! `parse_config_file` on arbitrary text: never panics, and whatever it
//! accepts is a request the UAPI codec carries intact.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_uapi::{format_set_request, parse_config_file, parse_request, Request};

fuzz_target!(|text: &str| {
    let Ok(file) = parse_config_file(text) else {
        return;
    };
    let request = format_set_request(&file.set);
    assert_eq!(
        parse_request(request.as_bytes()),
        Ok(Request::Set(file.set))
    );
});
