//! Admission's rules, example by example and as properties.

use super::*;
use crate::ipam::Allocator;
use crate::test_hello::hello;
use proptest::prelude::*;
use std::time::Duration;
use warren_wire::PrivateKey;

const NOW: u64 = 1_800_000_000;

fn key(seed: u8) -> PublicKey {
    PrivateKey::from_bytes([seed; 32]).public_key()
}

fn control_key() -> PublicKey {
    key(200)
}

fn token(uses: u32) -> (TokenRecord, Secret) {
    let (record, secret) =
        TokenRecord::issue(NOW - 10, Duration::from_secs(600), uses, [3; 40]).unwrap();
    (record, Secret(secret))
}

fn registry_with(nodes: &[(&str, u8)]) -> Registry {
    let mut registry = Registry::new(Allocator::new("100.96.0.0/24".parse().unwrap()).unwrap());
    for (name, seed) in nodes {
        let request = JoinRequest {
            name: (*name).to_owned(),
            public_key: key(*seed),
            mode: Mode::Relay,
            private_address: None,
            wg_port: 51820,
        };
        let node = registry
            .plan_join(&request, secret_sha256(&[*seed; 32]), NOW)
            .unwrap();
        registry.insert(node).unwrap();
    }
    registry
}

fn token_auth(record: &TokenRecord, secret: &Secret) -> Auth {
    Auth::Token {
        id: TokenId(record.id),
        secret: secret.clone(),
    }
}

fn refusal_code(result: Result<Decision, Refusal>) -> RefusalCode {
    match result {
        Err(refusal) => refusal.code,
        Ok(decision) => panic!("admitted: {decision:?}"),
    }
}

#[test]
fn a_valid_token_admits_a_new_name_and_key_with_a_fresh_credential() {
    let (record, secret) = token(1);
    let registry = registry_with(&[("vps", 1)]);
    let snapshot = Snapshot {
        registry: &registry,
        token: Some(&record),
        control_key: control_key(),
    };
    let decision = decide(
        &snapshot,
        &hello(token_auth(&record, &secret), "pi", key(2)),
        NOW,
        [9; 32],
    )
    .unwrap();
    let Decision::Join {
        node,
        token,
        credential,
        ..
    } = decision
    else {
        panic!("{decision:?}");
    };
    assert_eq!((node.name.as_str(), node.public_key), ("pi", key(2)));
    assert_eq!(token, TokenId(record.id));
    assert_eq!(credential, Secret([9; 32]));
    assert_eq!(node.credential_sha256, secret_sha256(&[9; 32]));
}

/// The review's admission findings: the control plane's own key, a
/// low-order key and the name `control` are refused (M4, L2).
#[test]
fn the_control_key_low_order_keys_and_the_control_name_are_refused() {
    let (record, secret) = token(5);
    let registry = registry_with(&[]);
    let snapshot = Snapshot {
        registry: &registry,
        token: Some(&record),
        control_key: control_key(),
    };
    let auth = token_auth(&record, &secret);
    let cases = [
        (
            hello(auth.clone(), "pi", control_key()),
            RefusalCode::KeyRefused,
        ),
        (
            hello(auth.clone(), "pi", PublicKey::from_bytes([0; 32])),
            RefusalCode::KeyRefused,
        ),
        (
            hello(auth.clone(), "control", key(3)),
            RefusalCode::InvalidName,
        ),
        (
            Hello {
                mode: Mode::Control,
                ..hello(auth.clone(), "pi", key(3))
            },
            RefusalCode::InvalidMode,
        ),
        (
            Hello {
                mode: Mode::Direct,
                ..hello(auth, "pi", key(3))
            },
            RefusalCode::InvalidMode,
        ),
    ];
    for (hello, expected) in cases {
        assert_eq!(
            refusal_code(decide(&snapshot, &hello, NOW, [1; 32])),
            expected
        );
    }
}

#[test]
fn versions_outside_the_supported_range_are_refused_with_advice() {
    let registry = registry_with(&[]);
    let (record, secret) = token(1);
    let snapshot = Snapshot {
        registry: &registry,
        token: Some(&record),
        control_key: control_key(),
    };
    for (version, advice) in [
        (0, "upgrade this agent"),
        (PROTOCOL_VERSION + 1, "control plane first"),
    ] {
        let hello = Hello {
            version,
            ..hello(token_auth(&record, &secret), "pi", key(1))
        };
        let refusal = decide(&snapshot, &hello, NOW, [1; 32]).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::UnsupportedVersion);
        assert!(refusal.reason.contains(advice), "{refusal}");
    }
    let previous = Hello {
        version: OLDEST_VERSION,
        ..hello(token_auth(&record, &secret), "pi", key(1))
    };
    assert!(decide(&snapshot, &previous, NOW, [1; 32]).is_ok());
}

#[test]
fn a_rejoin_needs_the_credential_and_the_same_key_and_may_change_its_details() {
    let registry = registry_with(&[("pi", 1)]);
    let snapshot = Snapshot {
        registry: &registry,
        token: None,
        control_key: control_key(),
    };
    let credential = |seed: u8| Auth::Credential {
        secret: Secret([seed; 32]),
    };
    let same = decide(
        &snapshot,
        &hello(credential(1), "ignored", key(1)),
        NOW,
        [0; 32],
    );
    assert!(
        matches!(same, Ok(Decision::Rejoin { changed: false, .. })),
        "{same:?}"
    );
    assert_eq!(
        refusal_code(decide(
            &snapshot,
            &hello(credential(1), "pi", key(2)),
            NOW,
            [0; 32]
        )),
        RefusalCode::KeyMismatch
    );
    assert_eq!(
        refusal_code(decide(
            &snapshot,
            &hello(credential(7), "pi", key(1)),
            NOW,
            [0; 32]
        )),
        RefusalCode::CredentialUnknown
    );
    let direct = |private_address| Hello {
        mode: Mode::Direct,
        private_address,
        ..hello(credential(1), "pi", key(1))
    };
    assert_eq!(
        refusal_code(decide(&snapshot, &direct(None), NOW, [0; 32])),
        RefusalCode::InvalidMode
    );
    let moved = decide(
        &snapshot,
        &direct(Some("10.0.0.9".parse().unwrap())),
        NOW,
        [0; 32],
    );
    let Ok(Decision::Rejoin {
        node,
        changed: true,
    }) = moved
    else {
        panic!("{moved:?}");
    };
    assert_eq!((node.name.as_str(), node.mode), ("pi", Mode::Direct));
}

fn arbitrary_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("pi".to_owned()),
        Just("vps".to_owned()),
        Just("control".to_owned()),
        "[a-z]{1,8}",
        ".{0,70}",
    ]
}

fn arbitrary_key() -> impl Strategy<Value = PublicKey> {
    prop_oneof![
        Just(key(1)),
        Just(key(2)),
        Just(control_key()),
        Just(PublicKey::from_bytes([0; 32])),
        any::<[u8; 32]>().prop_map(PublicKey::from_bytes),
    ]
}

proptest! {
    /// Without a valid token, the answer is the same whatever the cluster
    /// holds: a stranger cannot probe for names, keys or a full mesh (L1).
    #[test]
    fn without_a_valid_token_the_answer_tells_nothing_about_the_cluster(
        name in arbitrary_name(),
        public_key in arbitrary_key(),
        wrong_secret in any::<[u8; 32]>(),
        other_id in any::<[u8; 8]>(),
        use_other_id in any::<bool>(),
    ) {
        let (record, _) = token(1);
        let id = if use_other_id { other_id } else { record.id };
        let auth = Auth::Token { id: TokenId(id), secret: Secret(wrong_secret) };
        let hello = hello(auth, &name, public_key);
        let empty = registry_with(&[]);
        let full = registry_with(&[("pi", 1), ("vps", 2)]);
        let answer = |registry: &Registry| {
            decide(
                &Snapshot { registry, token: Some(&record), control_key: control_key() },
                &hello,
                NOW,
                [4; 32],
            )
        };
        let first = answer(&empty);
        prop_assert_eq!(&first, &answer(&full));
        prop_assert_eq!(refusal_code(first), RefusalCode::TokenUnknown);
    }

    /// Whatever a token holder asks for, an admitted node never has the
    /// control plane's key, a low-order key, the name `control`, or a name
    /// or key another node holds.
    #[test]
    fn an_admitted_node_is_never_one_that_must_be_refused(
        name in arbitrary_name(),
        public_key in arbitrary_key(),
    ) {
        let (record, secret) = token(1);
        let registry = registry_with(&[("pi", 1), ("vps", 2)]);
        let snapshot = Snapshot { registry: &registry, token: Some(&record), control_key: control_key() };
        if let Ok(Decision::Join { node, .. }) =
            decide(&snapshot, &hello(token_auth(&record, &secret), &name, public_key), NOW, [4; 32])
        {
            prop_assert_ne!(node.public_key, control_key());
            prop_assert!(!node.public_key.is_low_order());
            prop_assert_ne!(node.name.as_str(), "control");
            prop_assert!(registry.get(&node.name).is_none());
            prop_assert!(registry.by_key(&node.public_key).is_none());
        }
    }
}
