//! Parsing one complete request into a [`Request`], all or nothing.

use super::{request_len, PeerChange, Request, SetRequest, MAX_REQUEST_LEN};
use crate::{value, Key, UapiError};

const EXPECT_KEY: &str = "64 hex digits";
const EXPECT_U16: &str = "a decimal number from 0 to 65535";
const EXPECT_U32: &str = "a decimal number from 0 to 4294967295";
const EXPECT_TRUE: &str = "`true`";
const EXPECT_ENDPOINT: &str = "an IP address and port, like 192.0.2.1:51820 or [2001:db8::1]:51820";
const EXPECT_PREFIX: &str = "an IP prefix, like 10.0.0.0/24 or fd00::/64";

/// Parses exactly one complete request: `get=1\n\n`, or `set=1\n`, its
/// `key=value` lines and a blank line (see [`request_len`]).
///
/// The whole request is checked before anything is returned, so an error
/// means nothing in it should be applied. Errors say where and why, and
/// [`UapiError::errno`] says what to answer.
pub fn parse_request(bytes: &[u8]) -> Result<Request, UapiError> {
    if bytes.len() > MAX_REQUEST_LEN {
        return Err(UapiError::TooLarge {
            limit: MAX_REQUEST_LEN,
        });
    }
    let len = request_len(bytes).ok_or(UapiError::Incomplete)?;
    if len != bytes.len() {
        return Err(UapiError::TrailingData);
    }
    // Only a lone "\n" is complete without ending in "\n\n": no operation.
    let body = bytes
        .strip_suffix(b"\n\n")
        .ok_or(UapiError::UnknownOperation)?;
    let mut lines = body.split(|&b| b == b'\n').zip(1..);
    match lines.next() {
        Some((b"get=1", _)) => match lines.next() {
            None => Ok(Request::Get),
            Some((_, line)) => Err(UapiError::GetWithArguments { line }),
        },
        Some((b"set=1", _)) => {
            let mut parser = SetParser::default();
            for (text, line) in lines {
                let text =
                    std::str::from_utf8(text).map_err(|_| UapiError::MalformedLine { line })?;
                let (key, value) = text
                    .split_once('=')
                    .ok_or(UapiError::MalformedLine { line })?;
                parser.handle_line(line, key, value)?;
            }
            Ok(Request::Set(parser.finish()))
        }
        _ => Err(UapiError::UnknownOperation),
    }
}

/// The keys a `set` request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    PrivateKey,
    ListenPort,
    Fwmark,
    ReplacePeers,
    PublicKey,
    Remove,
    UpdateOnly,
    PresharedKey,
    Endpoint,
    PersistentKeepaliveInterval,
    ReplaceAllowedIps,
    AllowedIp,
    ProtocolVersion,
}

impl Field {
    const ALL: [Field; 13] = [
        Field::PrivateKey,
        Field::ListenPort,
        Field::Fwmark,
        Field::ReplacePeers,
        Field::PublicKey,
        Field::Remove,
        Field::UpdateOnly,
        Field::PresharedKey,
        Field::Endpoint,
        Field::PersistentKeepaliveInterval,
        Field::ReplaceAllowedIps,
        Field::AllowedIp,
        Field::ProtocolVersion,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::PrivateKey => "private_key",
            Field::ListenPort => "listen_port",
            Field::Fwmark => "fwmark",
            Field::ReplacePeers => "replace_peers",
            Field::PublicKey => "public_key",
            Field::Remove => "remove",
            Field::UpdateOnly => "update_only",
            Field::PresharedKey => "preshared_key",
            Field::Endpoint => "endpoint",
            Field::PersistentKeepaliveInterval => "persistent_keepalive_interval",
            Field::ReplaceAllowedIps => "replace_allowed_ips",
            Field::AllowedIp => "allowed_ip",
            Field::ProtocolVersion => "protocol_version",
        }
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.name() == name)
    }

    fn is_interface_key(self) -> bool {
        matches!(
            self,
            Field::PrivateKey | Field::ListenPort | Field::Fwmark | Field::ReplacePeers
        )
    }

    /// Peer keys that change the peer, which `remove=true` cannot accompany.
    fn is_peer_change(self) -> bool {
        matches!(
            self,
            Field::PresharedKey
                | Field::Endpoint
                | Field::PersistentKeepaliveInterval
                | Field::ReplaceAllowedIps
                | Field::AllowedIp
        )
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

/// Keys seen so far in one scope (the interface, or one peer section).
#[derive(Default)]
struct Seen(u16);

impl Seen {
    /// Records `field` at `line`, refusing a second occurrence.
    fn once(&mut self, field: Field, line: usize) -> Result<(), UapiError> {
        if self.has(field) {
            return Err(UapiError::DuplicateKey {
                line,
                key: field.name(),
            });
        }
        self.0 |= field.bit();
        Ok(())
    }

    fn has(&self, field: Field) -> bool {
        self.0 & field.bit() != 0
    }
}

#[derive(Default)]
struct SetParser {
    request: SetRequest,
    seen: Seen,
    peer: Option<PeerSection>,
}

struct PeerSection {
    change: PeerChange,
    seen: Seen,
    /// The first key that changes the peer, if any (for `remove` conflicts).
    first_change: Option<&'static str>,
}

impl SetParser {
    fn handle_line(&mut self, line: usize, key: &str, value: &str) -> Result<(), UapiError> {
        let field = Field::from_name(key).ok_or_else(|| UapiError::unknown_key(line, key))?;
        if field == Field::PublicKey {
            let public_key = parse_key(line, field, value)?;
            if let Some(done) = self.peer.take() {
                self.request.peers.push(done.change);
            }
            self.peer = Some(PeerSection {
                change: PeerChange::new(public_key),
                seen: Seen::default(),
                first_change: None,
            });
            return Ok(());
        }
        match (&mut self.peer, field.is_interface_key()) {
            (None, true) => self.handle_interface_key(line, field, value),
            (Some(_), true) => Err(UapiError::InterfaceKeyAfterPeer {
                line,
                key: field.name(),
            }),
            (None, false) => Err(UapiError::PeerKeyBeforePublicKey {
                line,
                key: field.name(),
            }),
            (Some(peer), false) => peer.handle_key(line, field, value),
        }
    }

    fn handle_interface_key(
        &mut self,
        line: usize,
        field: Field,
        value: &str,
    ) -> Result<(), UapiError> {
        self.seen.once(field, line)?;
        let request = &mut self.request;
        match field {
            Field::PrivateKey => {
                let key = parse_key(line, field, value)?;
                request.private_key = Some((!key.is_zero()).then_some(key));
            }
            Field::ListenPort => {
                request.listen_port = Some(parse_decimal(line, field, value, EXPECT_U16)?);
            }
            Field::Fwmark => {
                request.fwmark = Some(parse_decimal(line, field, value, EXPECT_U32)?);
            }
            Field::ReplacePeers => request.replace_peers = parse_true(line, field, value)?,
            _ => unreachable_field(line, field)?,
        }
        Ok(())
    }

    fn finish(mut self) -> SetRequest {
        if let Some(done) = self.peer.take() {
            self.request.peers.push(done.change);
        }
        self.request
    }
}

impl PeerSection {
    fn handle_key(&mut self, line: usize, field: Field, value: &str) -> Result<(), UapiError> {
        if field != Field::AllowedIp {
            self.seen.once(field, line)?;
        }
        if field.is_peer_change() {
            if self.change.remove {
                return Err(UapiError::RemoveWithChanges {
                    line,
                    key: field.name(),
                });
            }
            self.first_change.get_or_insert(field.name());
        }
        let change = &mut self.change;
        match field {
            Field::Remove => {
                change.remove = parse_true(line, field, value)?;
                if let Some(key) = self.first_change {
                    return Err(UapiError::RemoveWithChanges { line, key });
                }
            }
            Field::UpdateOnly => change.update_only = parse_true(line, field, value)?,
            Field::PresharedKey => change.preshared_key = Some(parse_key(line, field, value)?),
            Field::Endpoint => {
                let addr = value::endpoint(value).ok_or(UapiError::InvalidValue {
                    line,
                    key: field.name(),
                    expected: EXPECT_ENDPOINT,
                })?;
                change.endpoint = Some(addr);
            }
            Field::PersistentKeepaliveInterval => {
                let secs = parse_decimal(line, field, value, EXPECT_U16)?;
                change.persistent_keepalive_interval = Some(secs);
            }
            Field::ReplaceAllowedIps => {
                if !change.allowed_ips.is_empty() {
                    return Err(UapiError::OutOfOrder {
                        line,
                        key: field.name(),
                        before: Field::AllowedIp.name(),
                    });
                }
                change.replace_allowed_ips = parse_true(line, field, value)?;
            }
            Field::AllowedIp => {
                let net = value::prefix(value).ok_or(UapiError::InvalidValue {
                    line,
                    key: field.name(),
                    expected: EXPECT_PREFIX,
                })?;
                change.allowed_ips.push(net);
            }
            Field::ProtocolVersion => {
                if value != "1" {
                    return Err(UapiError::UnsupportedProtocolVersion { line });
                }
            }
            _ => unreachable_field(line, field)?,
        }
        Ok(())
    }
}

/// A field routed to the wrong handler: a bug here, reported as unknown
/// rather than a panic.
fn unreachable_field(line: usize, field: Field) -> Result<(), UapiError> {
    Err(UapiError::unknown_key(line, field.name()))
}

fn parse_key(line: usize, field: Field, value: &str) -> Result<Key, UapiError> {
    Key::from_hex(value).map_err(|_| UapiError::InvalidValue {
        line,
        key: field.name(),
        expected: EXPECT_KEY,
    })
}

fn parse_decimal<T: std::str::FromStr>(
    line: usize,
    field: Field,
    value: &str,
    expected: &'static str,
) -> Result<T, UapiError> {
    value::decimal(value).ok_or(UapiError::InvalidValue {
        line,
        key: field.name(),
        expected,
    })
}

/// Flags take only `true`, as in wireguard-go.
fn parse_true(line: usize, field: Field, value: &str) -> Result<bool, UapiError> {
    if value == "true" {
        Ok(true)
    } else {
        Err(UapiError::InvalidValue {
            line,
            key: field.name(),
            expected: EXPECT_TRUE,
        })
    }
}
