//! The `errno=N` status line that ends every UAPI response.
//!
//! wg(8) reads `N` and sets its own `errno` to `-N` before `perror`, so a
//! failure must be sent **negated**, as wireguard-go does: `errno=-22` makes
//! `wg set` print "Unable to modify interface: Invalid argument", while
//! `errno=22` (what boringtun's own device sends) prints "Unknown error -22".
//! The values are Linux's, the platform warren's device runs on.

/// Success.
pub const SUCCESS: i32 = 0;
/// `-EIO`: reading or writing the request failed.
pub const IO_ERROR: i32 = -5;
/// `-EINVAL`: a well-formed request asked for something invalid (unknown
/// key, malformed value, wrong order). wireguard-go's answer to bad input.
pub const INVALID_ARGUMENT: i32 = -22;
/// `-ENOANO`: wireguard-go's "unknown error" for failures it cannot classify.
pub const UNKNOWN: i32 = -55;
/// `-EPROTO`: the bytes do not follow the protocol's framing (a line without
/// `=`, a missing blank line, an unknown operation).
pub const PROTOCOL_ERROR: i32 = -71;
/// `-EMSGSIZE`: the request is longer than [`crate::MAX_REQUEST_LEN`].
pub const MESSAGE_TOO_LONG: i32 = -90;
/// `-EADDRINUSE`: applying `listen_port` or `fwmark` failed to rebind the
/// socket. wireguard-go uses it for both.
pub const ADDRESS_IN_USE: i32 = -98;

/// The status line a UAPI response ends with: `errno=N` and a blank line.
///
/// Pass [`SUCCESS`], one of the negated constants in this module, or
/// [`crate::UapiError::errno`].
pub fn format_errno(errno: i32) -> String {
    format!("errno={errno}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(format_errno(SUCCESS), "errno=0\n\n");
        assert_eq!(format_errno(INVALID_ARGUMENT), "errno=-22\n\n");
        assert_eq!(format_errno(PROTOCOL_ERROR), "errno=-71\n\n");
    }
}
