//! Strict parsers for the values both formats share: numbers, IP prefixes
//! and endpoints. Each returns `None` on bad input; callers add context.

use ip_network::IpNetwork;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A decimal number of ASCII digits only, like Go's `strconv.ParseUint(s,
/// 10, _)`: no sign, no spaces, no underscores; leading zeros are fine.
pub(crate) fn decimal<T: FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `ADDR/BITS` as an IP prefix, with host bits cleared: `10.0.0.5/24` is
/// `10.0.0.0/24`, as wireguard-go's allowed-IPs table stores it. Like Go's
/// `netip.ParsePrefix`, `BITS` is decimal without leading zeros and IPv6
/// zones are refused.
pub(crate) fn prefix(text: &str) -> Option<IpNetwork> {
    let (addr, bits) = text.split_once('/')?;
    if bits.len() > 1 && bits.starts_with('0') {
        return None;
    }
    network(IpAddr::from_str(addr).ok()?, decimal(bits)?)
}

/// `addr/bits` with host bits cleared; `None` if `bits` is too long.
pub(crate) fn network(addr: IpAddr, bits: u8) -> Option<IpNetwork> {
    IpNetwork::new_truncate(addr, bits).ok()
}

/// An IP literal and port: `192.0.2.1:51820` or `[2001:db8::1]:51820`
/// (a numeric IPv6 scope, `[fe80::1%2]:51820`, is kept).
pub(crate) fn endpoint(text: &str) -> Option<SocketAddr> {
    SocketAddr::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_is_strict() {
        assert_eq!(decimal::<u16>("51820"), Some(51820));
        assert_eq!(decimal::<u16>("0051820"), Some(51820));
        for bad in ["", "+1", "-1", " 1", "1 ", "1_0", "65536", "0x10"] {
            assert_eq!(decimal::<u16>(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn prefixes_are_normalised() {
        let net = |s: &str| prefix(s).map(|n| n.to_string());
        assert_eq!(net("10.0.0.5/24").as_deref(), Some("10.0.0.0/24"));
        assert_eq!(net("10.0.0.5/32").as_deref(), Some("10.0.0.5/32"));
        assert_eq!(net("0.0.0.0/0").as_deref(), Some("0.0.0.0/0"));
        assert_eq!(net("fd00::1/64").as_deref(), Some("fd00::/64"));
        assert_eq!(net("::/0").as_deref(), Some("::/0"));
        assert_eq!(
            net("::ffff:10.0.0.1/128").as_deref(),
            Some("::ffff:10.0.0.1/128")
        );
        for bad in [
            "10.0.0.1",
            "10.0.0.1/33",
            "fd00::/129",
            "10.0.0.1/024",
            "10.0.0.1/+24",
            "10.0.0.1/",
            "/24",
            "010.0.0.1/32",
            "fe80::1%eth0/64",
            "10.0.0.1 /32",
        ] {
            assert_eq!(net(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn endpoints() {
        assert!(endpoint("192.0.2.1:51820").is_some());
        assert!(endpoint("[::1]:51820").is_some());
        let scoped = endpoint("[fe80::1%2]:51820").map(|a| a.to_string());
        assert_eq!(scoped.as_deref(), Some("[fe80::1%2]:51820"));
        for bad in [
            "::1:51820",
            "192.0.2.1",
            "example.com:51820",
            "192.0.2.1:65536",
            "",
        ] {
            assert_eq!(endpoint(bad), None, "{bad:?}");
        }
    }
}
