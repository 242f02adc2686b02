//! The disco codec on arbitrary bytes, as an envelope and as an opened
//! message: never panics; an accepted envelope splits the input exactly
//! at its header; an accepted message re-encodes to one that decodes the
//! same, and to exactly the input unless a candidate was IPv4-mapped
//! (decoded as plain IPv4, which encodes shorter).
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_wire::disco::{claimed_sender, is_disco, Envelope, Message, HEADER_LEN, TAG_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode(data) {
        assert!(is_disco(data));
        assert_eq!(claimed_sender(data), Some(envelope.header.sender));
        assert_eq!(&envelope.header.to_bytes()[..], envelope.header_bytes);
        assert_eq!(envelope.header_bytes.len(), HEADER_LEN);
        assert!(envelope.sealed.len() >= TAG_LEN);
        assert_eq!(HEADER_LEN + envelope.sealed.len(), data.len());
    }
    if let Ok(message) = Message::decode(data) {
        let mut bytes = Vec::new();
        message.encode(&mut bytes);
        assert_eq!(bytes.len(), message.encoded_len());
        assert_eq!(Message::decode(&bytes).as_ref(), Ok(&message));
        assert!(bytes.len() <= data.len());
        if bytes.len() == data.len() {
            assert_eq!(bytes, data);
        }
    }
});
