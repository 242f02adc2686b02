//! wg(8) and wg-quick configuration files.
//!
//! ```text
//! [Interface]
//! PrivateKey = <base64>
//! ListenPort = 51820
//! FwMark = off                  # or a number, decimal or 0x hex
//! Address = 10.0.0.2/24, fd00::2/64   # wg-quick
//! MTU = 1420                    # wg-quick
//!
//! [Peer]
//! PublicKey = <base64>
//! PresharedKey = <base64>
//! AllowedIPs = 10.0.0.0/24, fd00::/64
//! Endpoint = 192.0.2.1:51820    # an IP literal: names are not resolved
//! PersistentKeepalive = 25      # or off
//! ```
//!
//! Keys and section names are case-insensitive, `#` starts a comment, and
//! whitespace around `=` and list items is ignored. The result replaces the
//! device's whole configuration, as `wg setconf` does: `replace_peers` and
//! every peer's `replace_allowed_ips` are set.

mod error;
#[cfg(test)]
mod tests;
mod values;

pub use error::{ConfigError, ConfigErrorKind};

use crate::{Key, PeerChange, SetRequest};
use ip_network::IpNetwork;
use std::fmt;
use std::net::IpAddr;

/// A parsed configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    /// The wg(8) part, as the UAPI request `wg setconf` would send.
    pub set: SetRequest,
    /// wg-quick `Address =` entries, in order.
    pub addresses: Vec<InterfaceAddress>,
    /// wg-quick `MTU =`.
    pub mtu: Option<u32>,
}

/// An address to put on the interface, with its subnet's prefix length:
/// `10.0.0.2/24` is the address 10.0.0.2 on 10.0.0.0/24, so unlike allowed
/// IPs its host bits matter and are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterfaceAddress {
    /// The address itself.
    pub addr: IpAddr,
    /// The subnet's prefix length (32 or 128 when none was written).
    pub prefix_len: u8,
}

impl InterfaceAddress {
    /// The subnet the address is on: `10.0.0.2/24` gives `10.0.0.0/24`.
    pub fn network(&self) -> IpNetwork {
        // `prefix_len` was checked against the family when parsed; should a
        // caller build a bad one, fall back to the host route.
        crate::value::network(self.addr, self.prefix_len)
            .unwrap_or_else(|| IpNetwork::from(self.addr))
    }
}

impl fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Parses a wg(8)/wg-quick configuration file. The first problem found is
/// returned with its line; nothing is returned from a file with errors.
pub fn parse_config_file(text: &str) -> Result<ConfigFile, ConfigError> {
    let mut parser = Parser::default();
    for (raw, line) in text.lines().zip(1..) {
        parser.handle_line(line, raw)?;
    }
    parser.finish()
}

/// A known key, and the section it belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    PrivateKey,
    ListenPort,
    FwMark,
    Address,
    Mtu,
    PublicKey,
    PresharedKey,
    AllowedIps,
    Endpoint,
    PersistentKeepalive,
}

const INTERFACE: &str = "Interface";
const PEER: &str = "Peer";

/// wg-quick keys the warren device does not implement.
const UNSUPPORTED: [&str; 7] = [
    "DNS",
    "Table",
    "PreUp",
    "PostUp",
    "PreDown",
    "PostDown",
    "SaveConfig",
];

impl Field {
    const ALL: [Field; 10] = [
        Field::PrivateKey,
        Field::ListenPort,
        Field::FwMark,
        Field::Address,
        Field::Mtu,
        Field::PublicKey,
        Field::PresharedKey,
        Field::AllowedIps,
        Field::Endpoint,
        Field::PersistentKeepalive,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::PrivateKey => "PrivateKey",
            Field::ListenPort => "ListenPort",
            Field::FwMark => "FwMark",
            Field::Address => "Address",
            Field::Mtu => "MTU",
            Field::PublicKey => "PublicKey",
            Field::PresharedKey => "PresharedKey",
            Field::AllowedIps => "AllowedIPs",
            Field::Endpoint => "Endpoint",
            Field::PersistentKeepalive => "PersistentKeepalive",
        }
    }

    fn section(self) -> &'static str {
        match self {
            Field::PrivateKey | Field::ListenPort | Field::FwMark | Field::Address | Field::Mtu => {
                INTERFACE
            }
            _ => PEER,
        }
    }

    /// Keys that may repeat, each adding to a list.
    fn repeats(self) -> bool {
        matches!(self, Field::Address | Field::AllowedIps)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }

    fn lookup(key: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|field| field.name().eq_ignore_ascii_case(key))
    }
}

#[derive(Default)]
struct Parser {
    file: ConfigFileDraft,
    section: Option<Section>,
    seen_interface: bool,
}

#[derive(Default)]
struct ConfigFileDraft {
    set: SetRequest,
    addresses: Vec<InterfaceAddress>,
    mtu: Option<u32>,
}

enum Section {
    Interface { seen: u16 },
    Peer(PeerDraft),
}

struct PeerDraft {
    /// The `[Peer]` line, where a missing public key is reported.
    header_line: usize,
    public_key: Option<Key>,
    /// Everything but the public key, which `change` holds a placeholder for.
    change: PeerChange,
    seen: u16,
}

impl Parser {
    fn handle_line(&mut self, line: usize, raw: &str) -> Result<(), ConfigError> {
        let at = |kind| ConfigError { line, kind };
        let text = raw.split('#').next().unwrap_or_default().trim();
        if text.is_empty() {
            return Ok(());
        }
        if let Some(header) = text.strip_prefix('[') {
            let name = header
                .strip_suffix(']')
                .ok_or(at(ConfigErrorKind::Malformed))?
                .trim();
            return self.open_section(line, name);
        }
        self.handle_key_value(text).map_err(at)
    }

    fn handle_key_value(&mut self, text: &str) -> Result<(), ConfigErrorKind> {
        let (key, value) = text.split_once('=').ok_or(ConfigErrorKind::Malformed)?;
        let (key, value) = (key.trim(), value.trim());
        let Some(section) = &mut self.section else {
            return Err(ConfigErrorKind::OutsideSection(error::echo(key)));
        };
        let section_name = match section {
            Section::Interface { .. } => INTERFACE,
            Section::Peer(_) => PEER,
        };
        if let Some(name) = UNSUPPORTED.iter().find(|n| n.eq_ignore_ascii_case(key)) {
            return Err(ConfigErrorKind::Unsupported(name));
        }
        let field = Field::lookup(key).ok_or_else(|| ConfigErrorKind::UnknownKey {
            key: error::echo(key),
            section: section_name,
        })?;
        if field.section() != section_name {
            return Err(ConfigErrorKind::WrongSection {
                key: field.name(),
                section: section_name,
                belongs: field.section(),
            });
        }
        let seen = match section {
            Section::Interface { seen } => seen,
            Section::Peer(peer) => &mut peer.seen,
        };
        if *seen & field.bit() != 0 && !field.repeats() {
            return Err(ConfigErrorKind::Duplicate(field.name()));
        }
        *seen |= field.bit();
        match section {
            Section::Interface { .. } => self.file.interface_value(field, value),
            Section::Peer(peer) => peer.value(field, value),
        }
    }

    fn open_section(&mut self, line: usize, name: &str) -> Result<(), ConfigError> {
        let at = |kind| ConfigError { line, kind };
        let is_interface = name.eq_ignore_ascii_case(INTERFACE);
        if !is_interface && !name.eq_ignore_ascii_case(PEER) {
            return Err(at(ConfigErrorKind::UnknownSection(error::echo(name))));
        }
        self.close_section()?;
        self.section = Some(if is_interface {
            if self.seen_interface {
                return Err(at(ConfigErrorKind::DuplicateInterface));
            }
            self.seen_interface = true;
            Section::Interface { seen: 0 }
        } else {
            Section::Peer(PeerDraft {
                header_line: line,
                public_key: None,
                change: PeerChange::new(Key::ZERO),
                seen: 0,
            })
        });
        Ok(())
    }

    /// Ends the current section, adding a finished peer to the request.
    fn close_section(&mut self) -> Result<(), ConfigError> {
        if let Some(Section::Peer(peer)) = self.section.take() {
            let Some(public_key) = peer.public_key else {
                return Err(ConfigError {
                    line: peer.header_line,
                    kind: ConfigErrorKind::MissingPublicKey,
                });
            };
            let mut change = peer.change;
            change.public_key = public_key;
            change.replace_allowed_ips = true;
            self.file.set.peers.push(change);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<ConfigFile, ConfigError> {
        self.close_section()?;
        let mut set = self.file.set;
        set.replace_peers = true;
        Ok(ConfigFile {
            set,
            addresses: self.file.addresses,
            mtu: self.file.mtu,
        })
    }
}
