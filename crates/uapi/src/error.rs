//! Why a UAPI request was refused, and the errno to answer with.

use crate::errno;

/// A UAPI request that cannot be applied. Nothing in it has been applied:
/// requests are parsed whole before anything is returned.
///
/// Line numbers count from 1, the `set=1`/`get=1` line. No variant carries
/// a value from the request, since values may be private keys; unknown keys
/// are echoed cut to [`UapiError::MAX_ECHO`] bytes.
///
/// [`UapiError::errno`] gives the status to answer with. Framing errors
/// (the bytes are not the protocol at all) answer `-EPROTO`; everything else
/// is a well-framed request asking for something invalid and answers
/// `-EINVAL`, as wireguard-go does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UapiError {
    /// Malformed: the request is longer than the limit the server enforces.
    #[error("malformed request: longer than {limit} bytes")]
    TooLarge {
        /// The limit, [`crate::MAX_REQUEST_LEN`].
        limit: usize,
    },
    /// Malformed: no blank line ends the request.
    #[error("malformed request: not terminated by a blank line")]
    Incomplete,
    /// Malformed: bytes follow the blank line that ends the request.
    #[error("malformed request: data after the terminating blank line")]
    TrailingData,
    /// Malformed: the first line is neither `get=1` nor `set=1`.
    #[error("malformed request: line 1 is not `get=1` or `set=1`")]
    UnknownOperation,
    /// Malformed: a line is not UTF-8 text of the form `key=value`.
    #[error("malformed request: line {line} is not a UTF-8 `key=value` line")]
    MalformedLine {
        /// The offending line.
        line: usize,
    },
    /// Invalid: `get=1` is followed by something other than the blank line.
    #[error("invalid request: line {line}: `get=1` takes no arguments")]
    GetWithArguments {
        /// The first line after `get=1`.
        line: usize,
    },
    /// Invalid: a key this protocol does not define.
    #[error("invalid request: line {line}: unknown key `{key}`")]
    UnknownKey {
        /// The offending line.
        line: usize,
        /// The key as sent, cut to [`UapiError::MAX_ECHO`] bytes.
        key: String,
    },
    /// Invalid: a known key whose value does not parse.
    #[error("invalid request: line {line}: bad `{key}` value: expected {expected}")]
    InvalidValue {
        /// The offending line.
        line: usize,
        /// The key.
        key: &'static str,
        /// What the value should have looked like.
        expected: &'static str,
    },
    /// Invalid: an interface key (`private_key`, `listen_port`, `fwmark`,
    /// `replace_peers`) after the first `public_key=`.
    #[error("invalid request: line {line}: interface key `{key}` after the first `public_key`")]
    InterfaceKeyAfterPeer {
        /// The offending line.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// Invalid: a peer key before any `public_key=` says which peer it is for.
    #[error("invalid request: line {line}: peer key `{key}` before any `public_key`")]
    PeerKeyBeforePublicKey {
        /// The offending line.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// Invalid: a key given twice for the interface, or for one peer.
    /// (`allowed_ip` may repeat; a peer's `public_key` may open more than one
    /// section, applied in order.)
    #[error("invalid request: line {line}: `{key}` given twice")]
    DuplicateKey {
        /// The second occurrence.
        line: usize,
        /// The key.
        key: &'static str,
    },
    /// Invalid: keys in an order whose meaning the request cannot express,
    /// such as `replace_allowed_ips` after an `allowed_ip` it would undo.
    #[error("invalid request: line {line}: `{key}` must come before `{before}`")]
    OutOfOrder {
        /// The offending line.
        line: usize,
        /// The key that came too late.
        key: &'static str,
        /// The key it must precede.
        before: &'static str,
    },
    /// Invalid: a peer both removed and changed. Only `update_only` and
    /// `protocol_version` may accompany `remove=true`.
    #[error("invalid request: line {line}: `remove=true` combined with `{key}` for the same peer")]
    RemoveWithChanges {
        /// The line that completes the combination.
        line: usize,
        /// The change that conflicts with `remove`.
        key: &'static str,
    },
    /// Invalid: `protocol_version` other than 1.
    #[error("invalid request: line {line}: unsupported protocol_version (only 1 exists)")]
    UnsupportedProtocolVersion {
        /// The offending line.
        line: usize,
    },
}

impl UapiError {
    /// Longest prefix of an unknown key echoed in [`UapiError::UnknownKey`].
    pub const MAX_ECHO: usize = 64;

    /// The value to answer with after `errno=` (see [`crate::format_errno`]):
    /// negative, as wireguard-go sends it and wg(8) expects.
    pub fn errno(&self) -> i32 {
        match self {
            UapiError::TooLarge { .. } => errno::MESSAGE_TOO_LONG,
            UapiError::Incomplete
            | UapiError::TrailingData
            | UapiError::UnknownOperation
            | UapiError::MalformedLine { .. } => errno::PROTOCOL_ERROR,
            UapiError::GetWithArguments { .. }
            | UapiError::UnknownKey { .. }
            | UapiError::InvalidValue { .. }
            | UapiError::InterfaceKeyAfterPeer { .. }
            | UapiError::PeerKeyBeforePublicKey { .. }
            | UapiError::DuplicateKey { .. }
            | UapiError::OutOfOrder { .. }
            | UapiError::RemoveWithChanges { .. }
            | UapiError::UnsupportedProtocolVersion { .. } => errno::INVALID_ARGUMENT,
        }
    }

    /// An [`UapiError::UnknownKey`] echoing at most [`Self::MAX_ECHO`] bytes.
    pub(crate) fn unknown_key(line: usize, key: &str) -> Self {
        let mut end = key.len().min(Self::MAX_ECHO);
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        UapiError::UnknownKey {
            line,
            key: key.get(..end).unwrap_or_default().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        assert_eq!(UapiError::Incomplete.errno(), -71);
        assert_eq!(UapiError::MalformedLine { line: 2 }.errno(), -71);
        assert_eq!(UapiError::unknown_key(2, "x").errno(), -22);
        assert_eq!(UapiError::TooLarge { limit: 1 }.errno(), -90);
    }

    #[test]
    fn unknown_key_echo_is_bounded_and_cut_on_a_char_boundary() {
        let long = "é".repeat(100);
        let UapiError::UnknownKey { key, .. } = UapiError::unknown_key(3, &long) else {
            panic!("wrong variant");
        };
        assert_eq!(key, "é".repeat(32));
    }

    #[test]
    fn messages_are_one_line() {
        let err = UapiError::InvalidValue {
            line: 3,
            key: "listen_port",
            expected: "a decimal number from 0 to 65535",
        };
        assert_eq!(
            err.to_string(),
            "invalid request: line 3: bad `listen_port` value: expected a decimal number from 0 to 65535"
        );
    }
}
