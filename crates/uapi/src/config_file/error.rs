//! Why a configuration file was refused, and on which line.

/// A configuration file that cannot be used, with the 1-based line at fault.
///
/// Displays as one line: `line 7: bad `ListenPort` value: expected …`.
/// Never carries a key's value, which may be secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ConfigError {
    /// The line at fault (for a peer missing its public key, the `[Peer]`
    /// line that opened it).
    pub line: usize,
    /// What is wrong there.
    pub kind: ConfigErrorKind,
}

/// What is wrong with a configuration file line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// Malformed: neither a section header, `Key = Value`, a comment nor
    /// blank.
    #[error("expected `[Interface]`, `[Peer]`, `Key = Value`, a comment or a blank line")]
    Malformed,
    /// Malformed: a section other than `[Interface]` or `[Peer]`.
    #[error("unknown section `[{0}]`: expected [Interface] or [Peer]")]
    UnknownSection(String),
    /// Invalid: a second `[Interface]` section.
    #[error("a second [Interface] section")]
    DuplicateInterface,
    /// Invalid: a key before the first section header.
    #[error("`{0}` is outside any [Interface] or [Peer] section")]
    OutsideSection(String),
    /// Invalid: a key neither wg(8) nor wg-quick defines for this section.
    #[error("unknown key `{key}` in [{section}]")]
    UnknownKey {
        /// The key as written, cut to 64 bytes.
        key: String,
        /// The section it appeared in.
        section: &'static str,
    },
    /// Invalid: a known key in the other kind of section.
    #[error("`{key}` belongs in [{belongs}], not [{section}]")]
    WrongSection {
        /// The key.
        key: &'static str,
        /// The section it appeared in.
        section: &'static str,
        /// The section it belongs in.
        belongs: &'static str,
    },
    /// Unsupported: a wg-quick key (`DNS`, `Table`, `PostUp`, …) that the
    /// warren device does not implement.
    #[error("`{0}` is a wg-quick setting not supported by warren device")]
    Unsupported(&'static str),
    /// Invalid: a key given twice in one section (only `Address` and
    /// `AllowedIPs` may repeat, adding to the list).
    #[error("`{0}` given twice in one section")]
    Duplicate(&'static str),
    /// Invalid: a known key with a value that does not parse.
    #[error("bad `{key}` value: expected {expected}")]
    InvalidValue {
        /// The key.
        key: &'static str,
        /// What the value should look like.
        expected: &'static str,
    },
    /// Unsupported: an `Endpoint` naming a host; warren does not resolve
    /// names.
    #[error(
        "`Endpoint` host `{0}` is a name, and warren device does not resolve names: \
         use an IP address, like 192.0.2.1:51820 or [2001:db8::1]:51820"
    )]
    HostName(String),
    /// Invalid: a `[Peer]` section without `PublicKey`.
    #[error("this [Peer] section has no `PublicKey`")]
    MissingPublicKey,
}

/// `text` cut to at most 64 bytes on a character boundary, for echoing.
pub(super) fn echo(text: &str) -> String {
    let mut end = text.len().min(64);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}
