use super::*;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

// Throwaway keys made with `wg genkey` / `wg pubkey` for these tests.
const PRIVATE: &str = "cOGO2eS9NHMRIvHvCOl0P8nbAlS8l0RyfQ1WZILmBXg=";
const PEER: &str = "kZrYy36oJRRREjGwdhO93Ydmz3iTyQ/gmGx7GFgSwAQ=";
const PSK: &str = "ANxnwEbeWA7FKFQrBeg5pe6rcjeXz4AWeHjMOX8lZE8=";

fn key(b64: &str) -> Key {
    Key::from_base64(b64).expect("test key")
}

fn net(text: &str) -> IpNetwork {
    crate::value::prefix(text).expect("test prefix")
}

fn err(line: usize, kind: ConfigErrorKind) -> Result<ConfigFile, ConfigError> {
    Err(ConfigError { line, kind })
}

#[test]
fn parses_a_wg_quick_file() {
    let text = format!(
        "# a comment\n\
         [Interface]\n\
         PrivateKey = {PRIVATE}\n\
         ListenPort=51820   # trailing comment\n\
         fwmark = 0x10\n\
         Address = 10.0.0.2/24, fd00::2/64\n\
         Address = 192.0.2.7\n\
         MTU = 1420\n\
         \n\
         [peer]\n\
         PublicKey = {PEER}\n\
         PresharedKey = {PSK}\n\
         AllowedIPs = 10.0.0.5/24, ::/0\n\
         AllowedIPs = 192.0.2.9\n\
         Endpoint = [2001:db8::1]:51820\n\
         PersistentKeepalive = 25\r\n\
         \n\
         [Peer]\n\
         publickey = {PSK}\n\
         AllowedIPs =\n\
         PersistentKeepalive = off\n"
    );
    let file = parse_config_file(&text).expect("valid");

    let mut first = PeerChange::new(key(PEER));
    first.preshared_key = Some(key(PSK));
    first.endpoint = Some(SocketAddr::from((
        "2001:db8::1".parse::<Ipv6Addr>().expect("ip"),
        51820,
    )));
    first.persistent_keepalive_interval = Some(25);
    first.replace_allowed_ips = true;
    first.allowed_ips = vec![net("10.0.0.0/24"), net("::/0"), net("192.0.2.9/32")];
    let mut second = PeerChange::new(key(PSK));
    second.persistent_keepalive_interval = Some(0);
    second.replace_allowed_ips = true;

    let expected = ConfigFile {
        set: SetRequest {
            private_key: Some(Some(key(PRIVATE))),
            listen_port: Some(51820),
            fwmark: Some(16),
            replace_peers: true,
            peers: vec![first, second],
        },
        addresses: vec![
            InterfaceAddress {
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                prefix_len: 24,
            },
            InterfaceAddress {
                addr: "fd00::2".parse().expect("ip"),
                prefix_len: 64,
            },
            InterfaceAddress {
                addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
                prefix_len: 32,
            },
        ],
        mtu: Some(1420),
    };
    assert_eq!(file, expected);
    assert_eq!(file.addresses[0].to_string(), "10.0.0.2/24");
    assert_eq!(file.addresses[0].network(), net("10.0.0.0/24"));
}

#[test]
fn setconf_semantics_and_special_values() {
    let file = parse_config_file("").expect("empty file");
    assert!(file.set.replace_peers && file.set.peers.is_empty());

    let zero = Key::ZERO.to_base64();
    let text = format!("[Interface]\nPrivateKey = {zero}\nFwMark = off\n");
    let file = parse_config_file(&text).expect("valid");
    assert_eq!(file.set.private_key, Some(None), "zero key removes");
    assert_eq!(file.set.fwmark, Some(0));

    let text = "[Interface]\nFwMark = 4294967295\n[Interface]\n";
    assert_eq!(
        parse_config_file(text),
        err(3, ConfigErrorKind::DuplicateInterface)
    );
}

#[test]
fn errors_name_the_line_and_the_problem() {
    use ConfigErrorKind as K;
    let peer = format!("[Peer]\nPublicKey = {PEER}");
    let invalid = |key, expected| K::InvalidValue { key, expected };
    let cases = [
        (
            "PrivateKey = x".to_owned(),
            1,
            K::OutsideSection("PrivateKey".into()),
        ),
        ("[Interface".to_owned(), 1, K::Malformed),
        ("[Interface]\nListenPort".to_owned(), 2, K::Malformed),
        ("[Wat]".to_owned(), 1, K::UnknownSection("Wat".into())),
        (
            "[Interface]\nDNS = 1.1.1.1".to_owned(),
            2,
            K::Unsupported("DNS"),
        ),
        (
            "[Interface]\npostup = echo hi".to_owned(),
            2,
            K::Unsupported("PostUp"),
        ),
        (
            "[Interface]\nSaveConfig = true".to_owned(),
            2,
            K::Unsupported("SaveConfig"),
        ),
        (
            "[Interface]\nTable = off".to_owned(),
            2,
            K::Unsupported("Table"),
        ),
        (
            "[Interface]\nFoo = 1".to_owned(),
            2,
            K::UnknownKey {
                key: "Foo".into(),
                section: "Interface",
            },
        ),
        (
            "[Interface]\nPublicKey = x".to_owned(),
            2,
            K::WrongSection {
                key: "PublicKey",
                section: "Interface",
                belongs: "Peer",
            },
        ),
        (
            format!("{peer}\nListenPort = 1"),
            3,
            K::WrongSection {
                key: "ListenPort",
                section: "Peer",
                belongs: "Interface",
            },
        ),
        (
            "[Interface]\nListenPort = 1\nlistenport = 2".to_owned(),
            3,
            K::Duplicate("ListenPort"),
        ),
        (
            format!("{peer}\nPublicKey = {PEER}"),
            3,
            K::Duplicate("PublicKey"),
        ),
        (
            "[Interface]\nPrivateKey = abc".to_owned(),
            2,
            invalid(
                "PrivateKey",
                "a base64 key of 44 characters, as `wg genkey` prints",
            ),
        ),
        (
            "[Interface]\nListenPort = 65536".to_owned(),
            2,
            invalid("ListenPort", "a port number from 0 to 65535"),
        ),
        (
            "[Interface]\nListenPort = wireguard".to_owned(),
            2,
            invalid("ListenPort", "a port number from 0 to 65535"),
        ),
        (
            "[Interface]\nFwMark = 0x".to_owned(),
            2,
            invalid(
                "FwMark",
                "`off` or a number from 0 to 4294967295 (decimal or 0x hex)",
            ),
        ),
        (
            "[Interface]\nFwMark = 0x100000000".to_owned(),
            2,
            invalid(
                "FwMark",
                "`off` or a number from 0 to 4294967295 (decimal or 0x hex)",
            ),
        ),
        (
            "[Interface]\nAddress = 10.0.0.1/33".to_owned(),
            2,
            invalid(
                "Address",
                "a comma-separated list of IP addresses, each optionally /prefix-length",
            ),
        ),
        (
            "[Interface]\nAddress =".to_owned(),
            2,
            invalid(
                "Address",
                "a comma-separated list of IP addresses, each optionally /prefix-length",
            ),
        ),
        (
            "[Interface]\nMTU = big".to_owned(),
            2,
            invalid("MTU", "a decimal number"),
        ),
        (
            format!("{peer}\nAllowedIPs = 10.0.0.0/8,,::/0"),
            3,
            invalid(
                "AllowedIPs",
                "a comma-separated list of IP prefixes, like 10.0.0.0/24, fd00::/64",
            ),
        ),
        (
            format!("{peer}\nPersistentKeepalive = never"),
            3,
            invalid(
                "PersistentKeepalive",
                "`off` or a number of seconds from 0 to 65535",
            ),
        ),
        (
            format!("{peer}\nEndpoint = ::1:51820"),
            3,
            invalid(
                "Endpoint",
                "an IP address and port, like 192.0.2.1:51820 or [2001:db8::1]:51820",
            ),
        ),
        (
            format!("{peer}\nEndpoint = 192.0.2.1"),
            3,
            invalid(
                "Endpoint",
                "an IP address and port, like 192.0.2.1:51820 or [2001:db8::1]:51820",
            ),
        ),
        (
            format!("{peer}\nEndpoint = vpn.example.com:51820"),
            3,
            K::HostName("vpn.example.com".into()),
        ),
        (
            "[Peer]\nAllowedIPs = 10.0.0.0/8\n[Interface]".to_owned(),
            1,
            K::MissingPublicKey,
        ),
        (
            format!("{peer}\n\n[Peer]\nEndpoint = 192.0.2.1:1\n"),
            4,
            K::MissingPublicKey,
        ),
    ];
    for (text, line, kind) in cases {
        assert_eq!(parse_config_file(&text), err(line, kind), "{text:?}");
    }
}

#[test]
fn error_messages_read_as_one_line() {
    let text = "[Interface]\nPostUp = iptables -A FORWARD";
    let message = parse_config_file(text)
        .expect_err("unsupported")
        .to_string();
    assert_eq!(
        message,
        "line 2: `PostUp` is a wg-quick setting not supported by warren device"
    );
    let text = format!("[Peer]\nPublicKey = {PEER}\nEndpoint = vpn.example.com:51820");
    let message = parse_config_file(&text).expect_err("host").to_string();
    assert!(message.starts_with("line 3: `Endpoint` host `vpn.example.com` is a name"));
    assert!(!message.contains('\n'));
}

#[test]
fn errors_never_echo_key_values() {
    let secret = &PRIVATE[..43];
    let text = format!("[Interface]\nPrivateKey = {secret}");
    let message = parse_config_file(&text).expect_err("short key").to_string();
    assert!(!message.contains(&secret[..8]), "{message}");
}

/// Renders `file` as a configuration file (a test-only inverse of the
/// parser; warren writes no configuration files).
fn render(file: &ConfigFile) -> String {
    let mut out = String::from("[Interface]\n");
    let set = &file.set;
    if let Some(key) = &set.private_key {
        out += &format!("PrivateKey = {}\n", key.unwrap_or(Key::ZERO).to_base64());
    }
    if let Some(port) = set.listen_port {
        out += &format!("ListenPort = {port}\n");
    }
    if let Some(mark) = set.fwmark {
        out += &format!("FwMark = {mark:#x}\n");
    }
    for address in &file.addresses {
        out += &format!("Address = {address}\n");
    }
    if let Some(mtu) = file.mtu {
        out += &format!("MTU = {mtu}\n");
    }
    for peer in &set.peers {
        out += &format!("\n[Peer]\nPublicKey = {}\n", peer.public_key.to_base64());
        if let Some(psk) = &peer.preshared_key {
            out += &format!("PresharedKey = {}\n", psk.to_base64());
        }
        let ips: Vec<String> = peer.allowed_ips.iter().map(|n| n.to_string()).collect();
        out += &format!("AllowedIPs = {}\n", ips.join(", "));
        if let Some(endpoint) = peer.endpoint {
            out += &format!("Endpoint = {endpoint}\n");
        }
        if let Some(secs) = peer.persistent_keepalive_interval {
            out += &format!("PersistentKeepalive = {secs}\n");
        }
    }
    out
}

fn arb_key() -> impl Strategy<Value = Key> {
    any::<[u8; 32]>()
        .prop_map(Key)
        .prop_filter("all-zero means none", |k| !k.is_zero())
}

fn arb_ip() -> impl Strategy<Value = (IpAddr, u8)> {
    prop_oneof![
        (any::<Ipv4Addr>(), 0u8..=32).prop_map(|(ip, len)| (IpAddr::V4(ip), len)),
        (any::<Ipv6Addr>(), 0u8..=128).prop_map(|(ip, len)| (IpAddr::V6(ip), len)),
    ]
}

fn arb_peer() -> impl Strategy<Value = PeerChange> {
    (
        arb_key(),
        proptest::option::of(arb_key()),
        proptest::collection::vec(arb_ip(), 0..4),
        proptest::option::of((arb_ip(), any::<u16>())),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(|(public_key, psk, ips, endpoint, keepalive)| {
            let mut peer = PeerChange::new(public_key);
            peer.preshared_key = psk;
            peer.replace_allowed_ips = true;
            peer.allowed_ips = ips
                .into_iter()
                .filter_map(|(ip, len)| crate::value::network(ip, len))
                .collect();
            peer.endpoint = endpoint.map(|((ip, _), port)| SocketAddr::new(ip, port));
            peer.persistent_keepalive_interval = keepalive;
            peer
        })
}

fn arb_config_file() -> impl Strategy<Value = ConfigFile> {
    (
        proptest::option::of(proptest::option::of(arb_key())),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u32>()),
        proptest::collection::vec(arb_ip(), 0..3),
        proptest::option::of(any::<u32>()),
        proptest::collection::vec(arb_peer(), 0..4),
    )
        .prop_map(
            |(private_key, listen_port, fwmark, addrs, mtu, peers)| ConfigFile {
                set: SetRequest {
                    private_key,
                    listen_port,
                    fwmark,
                    replace_peers: true,
                    peers,
                },
                addresses: addrs
                    .into_iter()
                    .map(|(addr, prefix_len)| InterfaceAddress { addr, prefix_len })
                    .collect(),
                mtu,
            },
        )
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse_config_file(&text);
    }

    #[test]
    fn plausible_lines_never_panic(lines in proptest::collection::vec(
        prop_oneof![
            Just("[Interface]".to_owned()),
            Just("[Peer]".to_owned()),
            Just(format!("PublicKey = {PEER}")),
            "(PrivateKey|ListenPort|FwMark|Address|MTU|PublicKey|PresharedKey|AllowedIPs|Endpoint|PersistentKeepalive|DNS) ?= ?[0-9a-fx:./\\[\\], #=]{0,16}",
            "\\PC{0,20}",
        ],
        0..12,
    )) {
        // Whatever is accepted is a request the UAPI codec carries intact.
        if let Ok(file) = parse_config_file(&lines.join("\n")) {
            let text = crate::format_set_request(&file.set);
            prop_assert_eq!(
                crate::parse_request(text.as_bytes()),
                Ok(crate::Request::Set(file.set))
            );
        }
    }

    #[test]
    fn rendered_files_parse_back_equal(file in arb_config_file()) {
        let text = render(&file);
        prop_assert_eq!(parse_config_file(&text), Ok(file));
    }
}
