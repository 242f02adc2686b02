//! Values of configuration file keys, as wg(8) and wg-quick read them.

use super::{ConfigErrorKind, ConfigFileDraft, Field, InterfaceAddress, PeerDraft};
use crate::{value, Key};
use ip_network::IpNetwork;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

const EXPECT_KEY: &str = "a base64 key of 44 characters, as `wg genkey` prints";
const EXPECT_PORT: &str = "a port number from 0 to 65535";
const EXPECT_FWMARK: &str = "`off` or a number from 0 to 4294967295 (decimal or 0x hex)";
const EXPECT_ADDRESSES: &str =
    "a comma-separated list of IP addresses, each optionally /prefix-length";
const EXPECT_MTU: &str = "a decimal number";
const EXPECT_ALLOWED_IPS: &str =
    "a comma-separated list of IP prefixes, like 10.0.0.0/24, fd00::/64";
const EXPECT_ENDPOINT: &str = "an IP address and port, like 192.0.2.1:51820 or [2001:db8::1]:51820";
const EXPECT_KEEPALIVE: &str = "`off` or a number of seconds from 0 to 65535";

impl ConfigFileDraft {
    pub(super) fn interface_value(
        &mut self,
        field: Field,
        value: &str,
    ) -> Result<(), ConfigErrorKind> {
        let invalid = |expected| ConfigErrorKind::InvalidValue {
            key: field.name(),
            expected,
        };
        match field {
            Field::PrivateKey => {
                let key = Key::from_base64(value).map_err(|_| invalid(EXPECT_KEY))?;
                self.set.private_key = Some((!key.is_zero()).then_some(key));
            }
            Field::ListenPort => {
                self.set.listen_port = Some(value::decimal(value).ok_or(invalid(EXPECT_PORT))?);
            }
            Field::FwMark => self.set.fwmark = Some(fwmark(value).ok_or(invalid(EXPECT_FWMARK))?),
            Field::Address => {
                for item in value.split(',') {
                    let address = address(item.trim()).ok_or(invalid(EXPECT_ADDRESSES))?;
                    self.addresses.push(address);
                }
            }
            Field::Mtu => self.mtu = Some(value::decimal(value).ok_or(invalid(EXPECT_MTU))?),
            _ => return Err(misrouted(field)),
        }
        Ok(())
    }
}

impl PeerDraft {
    pub(super) fn value(&mut self, field: Field, value: &str) -> Result<(), ConfigErrorKind> {
        let invalid = |expected| ConfigErrorKind::InvalidValue {
            key: field.name(),
            expected,
        };
        let change = &mut self.change;
        match field {
            Field::PublicKey => {
                self.public_key = Some(Key::from_base64(value).map_err(|_| invalid(EXPECT_KEY))?);
            }
            Field::PresharedKey => {
                let key = Key::from_base64(value).map_err(|_| invalid(EXPECT_KEY))?;
                change.preshared_key = Some(key);
            }
            Field::AllowedIps => {
                // `AllowedIPs =` with nothing after it is allowed: no IPs.
                if !value.is_empty() {
                    for item in value.split(',') {
                        let net = allowed_ip(item.trim()).ok_or(invalid(EXPECT_ALLOWED_IPS))?;
                        change.allowed_ips.push(net);
                    }
                }
            }
            Field::Endpoint => change.endpoint = Some(endpoint(value)?),
            Field::PersistentKeepalive => {
                let secs = off_or(value, value::decimal).ok_or(invalid(EXPECT_KEEPALIVE))?;
                change.persistent_keepalive_interval = Some(secs);
            }
            _ => return Err(misrouted(field)),
        }
        Ok(())
    }
}

/// A field handed to the wrong section's handler: a bug here, reported as
/// a wrong-section error rather than a panic.
fn misrouted(field: Field) -> ConfigErrorKind {
    ConfigErrorKind::WrongSection {
        key: field.name(),
        section: "?",
        belongs: field.section(),
    }
}

/// `off` (any case) as 0, else `parse(value)`.
fn off_or<T: Default>(value: &str, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    if value.eq_ignore_ascii_case("off") {
        Some(T::default())
    } else {
        parse(value)
    }
}

/// `off`, a decimal number or `0x` hex, as wg(8) reads `FwMark`.
fn fwmark(value: &str) -> Option<u32> {
    off_or(value, |text| match text.strip_prefix("0x") {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()
        }
        Some(_) => None,
        None => value::decimal(text),
    })
}

/// `ADDR` or `ADDR/LEN`, host bits kept; a bare address is a host route.
fn address(item: &str) -> Option<InterfaceAddress> {
    let (addr, prefix_len) = ip_and_len(item)?;
    value::network(addr, prefix_len)?;
    Some(InterfaceAddress { addr, prefix_len })
}

/// `ADDR/LEN` or a bare `ADDR` (a host route, as wg(8) reads it), host bits
/// cleared like every allowed IP.
fn allowed_ip(item: &str) -> Option<IpNetwork> {
    let (addr, prefix_len) = ip_and_len(item)?;
    value::network(addr, prefix_len)
}

fn ip_and_len(item: &str) -> Option<(IpAddr, u8)> {
    match item.split_once('/') {
        Some((addr, len)) => {
            if len.len() > 1 && len.starts_with('0') {
                return None;
            }
            Some((
                IpAddr::from_str(addr.trim()).ok()?,
                value::decimal(len.trim())?,
            ))
        }
        None => {
            let addr = IpAddr::from_str(item).ok()?;
            let full = if addr.is_ipv4() { 32 } else { 128 };
            Some((addr, full))
        }
    }
}

/// An IP literal and port; a host name gets its own error, since wg(8)
/// would resolve it and warren does not.
fn endpoint(value: &str) -> Result<SocketAddr, ConfigErrorKind> {
    if let Some(addr) = value::endpoint(value) {
        return Ok(addr);
    }
    if let Some((host, port)) = value.rsplit_once(':') {
        let is_name = !host.is_empty()
            && host.bytes().any(|b| b.is_ascii_alphabetic())
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if is_name && value::decimal::<u16>(port).is_some() {
            return Err(ConfigErrorKind::HostName(super::error::echo(host)));
        }
    }
    Err(ConfigErrorKind::InvalidValue {
        key: Field::Endpoint.name(),
        expected: EXPECT_ENDPOINT,
    })
}
