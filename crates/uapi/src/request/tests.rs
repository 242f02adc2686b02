use super::*;
use crate::UapiError;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

// Requests captured from wireguard-tools v1.0.20210914 (`/usr/bin/wg`)
// writing to a unix socket at /var/run/wireguard/IFACE.sock; keys are
// throwaway test keys made with `wg genkey`.
const PRIVATE: &str = "70e18ed9e4bd34731122f1ef08e9743fc9db0254bc9744727d0d566482e60578";
const PEER: &str = "919ad8cb7ea82514511231b07613bddd8766cf7893c90fe0986c7b185812c004";
const PSK: &str = "00dc67c046de580ec528542b05e839a5eeab723797cf80167878cc397f25644f";
const GONE: &str = "cb7b9ee46647140d32ef700831b83ac61835bacf1d9e21e873068de7d651592a";
const ZERO: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `wg set IF private-key k1 listen-port 51820 fwmark 0 peer P preshared-key
/// psk endpoint '[::1]:51821' persistent-keepalive 25 allowed-ips
/// 10.0.0.1/32,fd00::/64 peer GONE remove`
fn wg_set_capture() -> String {
    format!(
        "set=1\nprivate_key={PRIVATE}\nlisten_port=51820\nfwmark=0\n\
         public_key={PEER}\npreshared_key={PSK}\nendpoint=[::1]:51821\n\
         persistent_keepalive_interval=25\nreplace_allowed_ips=true\n\
         allowed_ip=10.0.0.1/32\nallowed_ip=fd00::/64\n\
         public_key={GONE}\nremove=true\n\n"
    )
}

/// `wg setconf IF cfg.conf` with `FwMark = 0x10`, `PersistentKeepalive =
/// off` and `AllowedIPs = 10.0.0.5/24, ::/0` (wg warns about the host bits
/// but sends them).
fn wg_setconf_capture() -> String {
    format!(
        "set=1\nprivate_key={PRIVATE}\nlisten_port=51820\nfwmark=16\nreplace_peers=true\n\
         public_key={PEER}\npreshared_key={PSK}\nendpoint=192.0.2.1:51820\n\
         persistent_keepalive_interval=0\nreplace_allowed_ips=true\n\
         allowed_ip=10.0.0.5/24\nallowed_ip=::/0\n\n"
    )
}

fn key(hex: &str) -> Key {
    Key::from_hex(hex).expect("test key")
}

fn net(text: &str) -> IpNetwork {
    crate::value::prefix(text).expect("test prefix")
}

fn parse_set(text: &str) -> Result<SetRequest, UapiError> {
    match parse_request(text.as_bytes())? {
        Request::Set(set) => Ok(set),
        Request::Get => panic!("parsed as get: {text:?}"),
    }
}

#[test]
fn parses_wg_set() {
    let set = parse_set(&wg_set_capture()).expect("valid");
    let mut peer = PeerChange::new(key(PEER));
    peer.preshared_key = Some(key(PSK));
    peer.endpoint = Some(SocketAddr::from((Ipv6Addr::LOCALHOST, 51821)));
    peer.persistent_keepalive_interval = Some(25);
    peer.replace_allowed_ips = true;
    peer.allowed_ips = vec![net("10.0.0.1/32"), net("fd00::/64")];
    let mut gone = PeerChange::new(key(GONE));
    gone.remove = true;
    let expected = SetRequest {
        private_key: Some(Some(key(PRIVATE))),
        listen_port: Some(51820),
        fwmark: Some(0),
        replace_peers: false,
        peers: vec![peer, gone],
    };
    assert_eq!(set, expected);
}

#[test]
fn parses_wg_setconf_normalising_host_bits() {
    let set = parse_set(&wg_setconf_capture()).expect("valid");
    assert!(set.replace_peers);
    assert_eq!(set.fwmark, Some(16));
    let [peer] = set.peers.as_slice() else {
        panic!("one peer expected: {set:?}");
    };
    assert_eq!(peer.persistent_keepalive_interval, Some(0));
    assert_eq!(peer.allowed_ips, vec![net("10.0.0.0/24"), net("::/0")]);
    assert_eq!(
        peer.endpoint,
        Some(SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 51820)))
    );
}

#[test]
fn parses_small_wg_set_requests() {
    // `wg set IF peer P allowed-ips "" persistent-keepalive 0`
    let text = format!(
        "set=1\npublic_key={PEER}\npersistent_keepalive_interval=0\nreplace_allowed_ips=true\n\n"
    );
    let set = parse_set(&text).expect("valid");
    let mut peer = PeerChange::new(key(PEER));
    peer.persistent_keepalive_interval = Some(0);
    peer.replace_allowed_ips = true;
    assert_eq!(set.peers, vec![peer]);

    // `wg set IF private-key /dev/null fwmark off listen-port 0`
    let text = format!("set=1\nprivate_key={ZERO}\nlisten_port=0\nfwmark=0\n\n");
    let set = parse_set(&text).expect("valid");
    assert_eq!(set.private_key, Some(None), "all-zero key removes");
    assert_eq!((set.listen_port, set.fwmark), (Some(0), Some(0)));

    assert_eq!(parse_set("set=1\n\n"), Ok(SetRequest::default()));
}

#[test]
fn zero_preshared_key_is_kept_as_zero() {
    let text = format!("set=1\npublic_key={PEER}\npreshared_key={ZERO}\n\n");
    let set = parse_set(&text).expect("valid");
    assert_eq!(set.peers[0].preshared_key, Some(Key::ZERO));
}

#[test]
fn accepts_peer_extras_wireguard_go_accepts() {
    let text = format!(
        "set=1\npublic_key={PEER}\nprotocol_version=1\nupdate_only=true\n\
         endpoint=[fe80::1%2]:51820\npublic_key={PEER}\nupdate_only=true\nremove=true\n\n"
    );
    let set = parse_set(&text).expect("valid");
    assert_eq!(set.peers.len(), 2, "same key twice: two sections in order");
    assert!(set.peers[0].update_only && !set.peers[0].remove);
    assert!(set.peers[1].update_only && set.peers[1].remove);
}

#[test]
fn get() {
    assert_eq!(parse_request(b"get=1\n\n"), Ok(Request::Get));
    assert_eq!(parse_request(GET_REQUEST.as_bytes()), Ok(Request::Get));
    assert_eq!(
        parse_request(b"get=1\nlisten_port=1\n\n"),
        Err(UapiError::GetWithArguments { line: 2 })
    );
}

#[test]
fn framing_errors() {
    let cases: [(&[u8], UapiError); 10] = [
        (b"", UapiError::Incomplete),
        (b"get=1\n", UapiError::Incomplete),
        (b"set=1\nlisten_port=1\n", UapiError::Incomplete),
        (b"get=1\n\nget=1\n\n", UapiError::TrailingData),
        (b"\n", UapiError::UnknownOperation),
        (b"get=2\n\n", UapiError::UnknownOperation),
        (b"GET=1\n\n", UapiError::UnknownOperation),
        (b"set=1 \n\n", UapiError::UnknownOperation),
        (
            b"set=1\nlisten_port\n\n",
            UapiError::MalformedLine { line: 2 },
        ),
        (
            b"set=1\nlisten_port=\xff\n\n",
            UapiError::MalformedLine { line: 2 },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_request(input), Err(expected.clone()), "{input:?}");
        assert_eq!(expected.errno(), crate::errno::PROTOCOL_ERROR);
    }
    let mut huge = b"set=1\n".to_vec();
    huge.resize(MAX_REQUEST_LEN + 1, b'x');
    assert_eq!(
        parse_request(&huge),
        Err(UapiError::TooLarge {
            limit: MAX_REQUEST_LEN
        })
    );
}

#[test]
fn invalid_requests() {
    let invalid = |line, key, expected| UapiError::InvalidValue {
        line,
        key,
        expected,
    };
    let peer = format!("public_key={PEER}");
    let cases = [
        ("bogus=1".to_owned(), UapiError::unknown_key(2, "bogus")),
        ("=1".to_owned(), UapiError::unknown_key(2, "")),
        (
            "listen_port=65536".to_owned(),
            invalid(2, "listen_port", "a decimal number from 0 to 65535"),
        ),
        (
            "listen_port=+1".to_owned(),
            invalid(2, "listen_port", "a decimal number from 0 to 65535"),
        ),
        (
            "fwmark=-1".to_owned(),
            invalid(2, "fwmark", "a decimal number from 0 to 4294967295"),
        ),
        (
            "fwmark=".to_owned(),
            invalid(2, "fwmark", "a decimal number from 0 to 4294967295"),
        ),
        (
            "private_key=abc".to_owned(),
            invalid(2, "private_key", "64 hex digits"),
        ),
        (
            "replace_peers=false".to_owned(),
            invalid(2, "replace_peers", "`true`"),
        ),
        (
            "public_key=".to_owned(),
            invalid(2, "public_key", "64 hex digits"),
        ),
        (
            format!("{peer}\nendpoint=::1:51820"),
            invalid(
                3,
                "endpoint",
                "an IP address and port, like 192.0.2.1:51820 or [2001:db8::1]:51820",
            ),
        ),
        (
            format!("{peer}\nendpoint=example.com:51820"),
            invalid(
                3,
                "endpoint",
                "an IP address and port, like 192.0.2.1:51820 or [2001:db8::1]:51820",
            ),
        ),
        (
            format!("{peer}\nallowed_ip=10.0.0.1"),
            invalid(
                3,
                "allowed_ip",
                "an IP prefix, like 10.0.0.0/24 or fd00::/64",
            ),
        ),
        (
            format!("{peer}\nallowed_ip=10.0.0.1/33"),
            invalid(
                3,
                "allowed_ip",
                "an IP prefix, like 10.0.0.0/24 or fd00::/64",
            ),
        ),
        (
            format!("{peer}\npersistent_keepalive_interval=65536"),
            invalid(
                3,
                "persistent_keepalive_interval",
                "a decimal number from 0 to 65535",
            ),
        ),
        (
            format!("{peer}\nremove=yes"),
            invalid(3, "remove", "`true`"),
        ),
        (
            format!("{peer}\nprotocol_version=2"),
            UapiError::UnsupportedProtocolVersion { line: 3 },
        ),
        (
            format!("{peer}\nprotocol_version=01"),
            UapiError::UnsupportedProtocolVersion { line: 3 },
        ),
        (
            format!("{peer}\nlisten_port=1"),
            UapiError::InterfaceKeyAfterPeer {
                line: 3,
                key: "listen_port",
            },
        ),
        (
            format!("{peer}\nreplace_peers=true"),
            UapiError::InterfaceKeyAfterPeer {
                line: 3,
                key: "replace_peers",
            },
        ),
        (
            "endpoint=192.0.2.1:1".to_owned(),
            UapiError::PeerKeyBeforePublicKey {
                line: 2,
                key: "endpoint",
            },
        ),
        (
            "protocol_version=1".to_owned(),
            UapiError::PeerKeyBeforePublicKey {
                line: 2,
                key: "protocol_version",
            },
        ),
        (
            "listen_port=1\nlisten_port=2".to_owned(),
            UapiError::DuplicateKey {
                line: 3,
                key: "listen_port",
            },
        ),
        (
            format!("{peer}\nendpoint=192.0.2.1:1\nendpoint=192.0.2.1:2"),
            UapiError::DuplicateKey {
                line: 4,
                key: "endpoint",
            },
        ),
        (
            format!("{peer}\nallowed_ip=10.0.0.0/8\nreplace_allowed_ips=true"),
            UapiError::OutOfOrder {
                line: 4,
                key: "replace_allowed_ips",
                before: "allowed_ip",
            },
        ),
        (
            format!("{peer}\nremove=true\nendpoint=192.0.2.1:1"),
            UapiError::RemoveWithChanges {
                line: 4,
                key: "endpoint",
            },
        ),
        (
            format!("{peer}\nallowed_ip=10.0.0.0/8\nremove=true"),
            UapiError::RemoveWithChanges {
                line: 4,
                key: "allowed_ip",
            },
        ),
    ];
    for (body, expected) in cases {
        let text = format!("set=1\n{body}\n\n");
        let got = parse_request(text.as_bytes());
        assert_eq!(got, Err(expected.clone()), "{text:?}");
        assert_eq!(expected.errno(), crate::errno::INVALID_ARGUMENT);
    }
}

#[test]
fn request_len_finds_the_blank_line() {
    assert_eq!(request_len(b""), None);
    assert_eq!(request_len(b"get=1\n"), None);
    assert_eq!(request_len(b"get=1\n\n"), Some(7));
    assert_eq!(request_len(b"get=1\n\nset=1\n"), Some(7));
    assert_eq!(request_len(b"\nget=1\n\n"), Some(1));
    assert_eq!(request_len(b"set=1\nlisten_port=1\n\n"), Some(21));
}

#[test]
fn format_matches_what_wg_sends() {
    let set = parse_set(&wg_set_capture()).expect("valid");
    assert_eq!(format_set_request(&set), wg_set_capture());
    let set = parse_set(&wg_setconf_capture()).expect("valid");
    // Host bits are cleared on parsing, so only that line differs.
    let normalised = wg_setconf_capture().replace("10.0.0.5/24", "10.0.0.0/24");
    assert_eq!(format_set_request(&set), normalised);
}

// ---- property tests ----

fn arb_key() -> impl Strategy<Value = Key> {
    any::<[u8; 32]>().prop_map(Key)
}

fn arb_nonzero_key() -> impl Strategy<Value = Key> {
    arb_key().prop_filter("all-zero means none", |k| !k.is_zero())
}

fn arb_endpoint() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<Ipv4Addr>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV4::new(ip, port).into()),
        // Flow info is not part of the text form; a scope id is.
        (
            any::<Ipv6Addr>(),
            any::<u16>(),
            prop_oneof![Just(0u32), any::<u32>()]
        )
            .prop_map(|(ip, port, scope)| SocketAddrV6::new(ip, port, 0, scope).into()),
    ]
}

fn arb_network() -> impl Strategy<Value = IpNetwork> {
    prop_oneof![
        (any::<Ipv4Addr>(), 0u8..=32).prop_map(|(ip, len)| (IpAddr::V4(ip), len)),
        (any::<Ipv6Addr>(), 0u8..=128).prop_map(|(ip, len)| (IpAddr::V6(ip), len)),
    ]
    .prop_filter_map("valid prefix", |(ip, len)| crate::value::network(ip, len))
}

fn arb_peer() -> impl Strategy<Value = PeerChange> {
    let changes = (
        proptest::option::of(arb_key()),
        proptest::option::of(arb_endpoint()),
        proptest::option::of(any::<u16>()),
        any::<bool>(),
        proptest::collection::vec(arb_network(), 0..4),
    );
    (arb_key(), any::<bool>(), any::<bool>(), changes).prop_map(
        |(public_key, remove, update_only, (psk, endpoint, keepalive, replace, ips))| {
            let mut peer = PeerChange::new(public_key);
            peer.update_only = update_only;
            if remove {
                peer.remove = true;
            } else {
                peer.preshared_key = psk;
                peer.endpoint = endpoint;
                peer.persistent_keepalive_interval = keepalive;
                peer.replace_allowed_ips = replace;
                peer.allowed_ips = ips;
            }
            peer
        },
    )
}

fn arb_set_request() -> impl Strategy<Value = SetRequest> {
    (
        proptest::option::of(proptest::option::of(arb_nonzero_key())),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u32>()),
        any::<bool>(),
        proptest::collection::vec(arb_peer(), 0..4),
    )
        .prop_map(
            |(private_key, listen_port, fwmark, replace_peers, peers)| SetRequest {
                private_key,
                listen_port,
                fwmark,
                replace_peers,
                peers,
            },
        )
}

/// A line that is plausibly, but not necessarily, valid in a `set` request.
fn arb_line() -> impl Strategy<Value = String> {
    let keys = prop::sample::select(vec![
        "private_key",
        "listen_port",
        "fwmark",
        "replace_peers",
        "public_key",
        "remove",
        "update_only",
        "preshared_key",
        "endpoint",
        "persistent_keepalive_interval",
        "replace_allowed_ips",
        "allowed_ip",
        "protocol_version",
        "bogus",
        "",
    ]);
    let values = prop_oneof![
        Just("true".to_owned()),
        Just("1".to_owned()),
        Just(PEER.to_owned()),
        Just(ZERO.to_owned()),
        Just("[::1]:51820".to_owned()),
        Just("10.0.0.1/24".to_owned()),
        "[0-9a-f:./\\[\\]%=]{0,12}",
        ".{0,8}",
    ];
    (keys, values).prop_map(|(k, v)| format!("{k}={v}"))
}

/// Whether `part` could be what the first lines of `full` ask for: every
/// field it sets agrees with `full`, and its peers are a prefix of `full`'s
/// with the last one possibly unfinished.
fn is_prefix_of(part: &SetRequest, full: &SetRequest) -> bool {
    fn agrees<T: PartialEq>(part: &Option<T>, full: &Option<T>) -> bool {
        part.is_none() || part == full
    }
    let interface = agrees(&part.private_key, &full.private_key)
        && agrees(&part.listen_port, &full.listen_port)
        && agrees(&part.fwmark, &full.fwmark)
        && (!part.replace_peers || full.replace_peers)
        && part.peers.len() <= full.peers.len();
    let Some((last, done)) = part.peers.split_last() else {
        return interface;
    };
    if !interface {
        return false;
    }
    let full_last = &full.peers[done.len()];
    done == &full.peers[..done.len()]
        && last.public_key == full_last.public_key
        && (!last.remove || full_last.remove)
        && (!last.update_only || full_last.update_only)
        && agrees(&last.preshared_key, &full_last.preshared_key)
        && agrees(&last.endpoint, &full_last.endpoint)
        && agrees(
            &last.persistent_keepalive_interval,
            &full_last.persistent_keepalive_interval,
        )
        && (!last.replace_allowed_ips || full_last.replace_allowed_ips)
        && full_last.allowed_ips.starts_with(&last.allowed_ips)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_request(&bytes);
        let _ = request_len(&bytes);
        let mut set = b"set=1\n".to_vec();
        set.extend_from_slice(&bytes);
        set.extend_from_slice(b"\n\n");
        let _ = parse_request(&set);
    }

    #[test]
    fn plausible_lines_never_panic(lines in proptest::collection::vec(arb_line(), 0..12)) {
        let text = format!("set=1\n{}\n\n", lines.join("\n"));
        match parse_request(text.as_bytes()) {
            // Whatever went wrong, it is reported with an errno wg(8) knows.
            Err(err) => prop_assert!(err.errno() < 0),
            // Whatever was accepted renders to text that parses back the same.
            Ok(Request::Set(set)) => {
                let again = format_set_request(&set);
                prop_assert_eq!(parse_request(again.as_bytes()), Ok(Request::Set(set)));
            }
            Ok(Request::Get) => prop_assert!(false, "set parsed as get"),
        }
    }

    #[test]
    fn set_requests_round_trip(request in arb_set_request()) {
        let text = format_set_request(&request);
        prop_assert_eq!(request_len(text.as_bytes()), Some(text.len()));
        prop_assert_eq!(parse_request(text.as_bytes()), Ok(Request::Set(request)));
    }

    /// Every cut of a valid request: a stream cut anywhere is never a
    /// request (the blank line is missing), never a panic, and `request_len`
    /// waits for more. Cut at a line boundary and then terminated, it parses
    /// to a prefix of the full request. Cut mid-line and terminated, it may
    /// be valid with a different value (`listen_port=5` of `51820`), so only
    /// "no panic" is checked there. No length is skipped.
    #[test]
    fn truncations_error_or_parse_to_a_prefix(request in arb_set_request()) {
        let text = format_set_request(&request);
        let bytes = text.as_bytes();
        for cut in 0..bytes.len() {
            let head = &bytes[..cut];
            prop_assert_eq!(request_len(head), None);
            prop_assert!(parse_request(head).is_err());
            let at_line_boundary = head.ends_with(b"\n") && cut >= "set=1\n".len();
            if at_line_boundary {
                // `head` ends in "\n" already; one more would be a blank
                // line early, so terminate with a single "\n".
                let mut at_boundary = head.to_vec();
                at_boundary.push(b'\n');
                match parse_request(&at_boundary) {
                    Ok(Request::Set(part)) => prop_assert!(
                        is_prefix_of(&part, &request),
                        "{:?} is not a prefix of {:?}", part, request
                    ),
                    other => prop_assert!(false, "cut at {} gave {:?}", cut, other),
                }
            } else {
                let mut terminated = head.to_vec();
                terminated.extend_from_slice(b"\n\n");
                let _ = parse_request(&terminated);
            }
        }
    }
}
