//! The cluster state commits what admission decides, and a refusal leaves
//! no trace.

use super::*;
use crate::ipam::Allocator;
pub(super) use crate::test_hello::hello;
use crate::tokens::TokenRecord;
use proptest::prelude::*;
use std::time::{Duration, Instant};
use warren_proto::{Auth, Secret, TokenId};
use warren_relay_proto::SigningKey;
use warren_wire::PrivateKey;

pub(super) const NOW: u64 = 1_800_000_000;

/// How long a node in these tests is offline before it is lost.
pub(super) const REPLACE_AFTER: Duration = Duration::from_secs(2);

pub(super) fn key(seed: u8) -> PublicKey {
    PrivateKey::from_bytes([seed; 32]).public_key()
}

pub(super) struct Fixture {
    pub(super) state: ClusterState,
    pub(super) token: TokenId,
    pub(super) secret: Secret,
    pub(super) dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(super) fn fixture(name: &str, uses: u32) -> Fixture {
    let dir = std::env::temp_dir().join(format!("warren-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&dir.join("state.db")).unwrap();
    let (token, secret) =
        TokenRecord::issue(NOW - 10, Duration::from_secs(600), uses, [3; 40]).unwrap();
    store.insert_token(&token).unwrap();
    drop(store);
    Fixture {
        state: state_over(&dir),
        token: TokenId(token.id),
        secret: Secret(secret),
        dir,
    }
}

/// The cluster state over the store in `dir`, as `warren serve` loads it.
pub(super) fn state_over(dir: &std::path::Path) -> ClusterState {
    state_with(dir, false)
}

/// [`state_over`], with the control plane's host running replicas or not
/// (`warren serve --docker-host`).
pub(super) fn state_with(dir: &std::path::Path, control_node: bool) -> ClusterState {
    state_started(dir, control_node, Instant::now())
}

/// [`state_with`], for a control plane that started at `started` (its
/// startup grace counts from then).
pub(super) fn state_started(
    dir: &std::path::Path,
    control_node: bool,
    started: Instant,
) -> ClusterState {
    let store = Store::open(&dir.join("state.db")).unwrap();
    let mesh: Ipv4Network = "100.96.0.0/24".parse().unwrap();
    let mut registry = Registry::new(Allocator::new(mesh).unwrap());
    for node in store.nodes().unwrap() {
        registry.insert(node).unwrap();
    }
    ClusterState::new(ClusterConfig {
        store,
        registry,
        signing_key: Arc::new(SigningKey::from_seed(&[1; 32]).unwrap()),
        ticket_lifetime: Duration::from_secs(3600),
        relays: Vec::new(),
        mesh,
        control: ControlMember {
            public_key: key(200),
            mesh_ip: "100.96.0.1".parse().unwrap(),
            endpoint: None,
            wireguard_endpoints: Vec::new(),
        },
        revoker: None,
        host_ports: 20000..=29999,
        control_node,
        replace_after: REPLACE_AFTER,
        started,
    })
    .unwrap()
}

/// Admits `name` (key `key(seed)`) with the fixture's token.
pub(super) fn admit_with_token(fixture: &mut Fixture, name: &str, seed: u8) -> Admitted {
    let auth = Auth::Token {
        id: fixture.token,
        secret: fixture.secret.clone(),
    };
    fixture
        .state
        .admit(&hello(auth, name, key(seed)), remote(), NOW, [seed; 32])
        .unwrap()
}

/// The agent of `name` (key `key(seed)`, joined with [`admit_with_token`])
/// connects again at `now` with its credential, saying what it
/// [`offers`].
pub(super) fn rejoin(state: &mut ClusterState, name: &str, seed: u8, now: u64) -> Admitted {
    let auth = Auth::Credential {
        secret: Secret([seed; 32]),
    };
    let hello = Hello {
        machine: Some(offers()),
        ..hello(auth, name, key(seed))
    };
    state.admit(&hello, remote(), now, [9; 32]).unwrap()
}

/// What a node offers: 2 cores, 4 GiB.
pub(super) fn offers() -> NodeReport {
    NodeReport {
        arch: "amd64".to_owned(),
        cpu_millis: 2000,
        memory: 4 << 30,
        disk_free: None,
        docker: "20.10.24".to_owned(),
    }
}

pub(super) fn remote() -> SocketAddr {
    "198.51.100.7:4000".parse().unwrap()
}

/// Everything a refusal must leave as it was.
fn trace(state: &mut ClusterState) -> (Vec<NodeRecord>, Vec<TokenRecord>, Vec<NodeRecord>, usize) {
    let stored = state.store().nodes().unwrap();
    let tokens = state.store().tokens().unwrap();
    let registered = state.registry().nodes().cloned().collect();
    (stored, tokens, registered, state.listing().len())
}

#[test]
fn a_join_is_stored_counted_and_announced_and_a_rejoin_keeps_the_address() {
    let mut fixture = fixture("join", 2);
    let mut events = fixture.state.subscribe();
    let auth = Auth::Token {
        id: fixture.token,
        secret: fixture.secret.clone(),
    };
    let admitted = fixture
        .state
        .admit(&hello(auth, "pi", key(1)), remote(), NOW, [7; 32])
        .unwrap();
    assert_eq!(admitted.welcome.credential, Some(Secret([7; 32])));
    assert_eq!(admitted.welcome.peers[0].mode, Mode::Control);
    assert_eq!(
        fixture.state.store().nodes().unwrap(),
        vec![admitted.node.clone()]
    );
    assert_eq!(fixture.state.store().tokens().unwrap()[0].used, 1);
    assert!(matches!(events.try_recv(), Ok(PeerEvent::Joined(node)) if node.name == "pi"));
    let listing = fixture.state.listing();
    assert_eq!(listing[0].connected_from, Some(remote()));

    let rejoin = Auth::Credential {
        secret: Secret([7; 32]),
    };
    let again = fixture
        .state
        .admit(&hello(rejoin, "pi", key(1)), remote(), NOW, [8; 32])
        .unwrap();
    assert_eq!(again.welcome.mesh_ip, admitted.welcome.mesh_ip);
    assert_eq!(again.welcome.credential, None);
    assert_eq!(fixture.state.store().tokens().unwrap()[0].used, 1);
    // The first connection ending does not mark the node offline: the
    // second one is still open.
    fixture
        .state
        .disconnected("pi", admitted.connection, Instant::now());
    assert!(fixture.state.listing()[0].connected_from.is_some());
    fixture
        .state
        .disconnected("pi", again.connection, Instant::now());
    assert!(fixture.state.listing()[0].connected_from.is_none());
}

#[test]
fn a_removed_node_gets_no_ticket_and_its_credential_is_refused() {
    let mut fixture = fixture("remove", 1);
    admit_with_token(&mut fixture, "pi", 1);
    assert!(fixture.state.renew_ticket("pi", NOW).is_some());
    fixture.state.remove("pi").unwrap();
    assert!(fixture.state.renew_ticket("pi", NOW).is_none());
    assert!(matches!(
        fixture.state.remove("pi"),
        Err(RemoveError::Unknown(_))
    ));
    let rejoin = Auth::Credential {
        secret: Secret([7; 32]),
    };
    let refusal = fixture
        .state
        .admit(&hello(rejoin, "pi", key(1)), remote(), NOW, [8; 32])
        .unwrap_err();
    assert_eq!(refusal.code, RefusalCode::CredentialUnknown);
}

/// One of: the right token, the token with a wrong secret, an unknown
/// token, an unknown credential.
fn auth(kind: u8, token: TokenId, secret: &Secret, bytes: [u8; 32], id: [u8; 8]) -> Auth {
    match kind % 4 {
        0 => Auth::Token {
            id: token,
            secret: secret.clone(),
        },
        1 => Auth::Token {
            id: token,
            secret: Secret(bytes),
        },
        2 => Auth::Token {
            id: TokenId(id),
            secret: Secret(bytes),
        },
        _ => Auth::Credential {
            secret: Secret(bytes),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever hellos arrive, each refused one leaves the store, the
    /// token counts, the registry and the connections exactly as they were.
    #[test]
    fn a_refused_hello_changes_nothing(
        hellos in proptest::collection::vec(
            (
                0u8..6,
                prop_oneof![Just("pi"), Just("vps"), Just("control"), Just("Bad!")],
                0u32..4,
                (any::<u8>(), any::<[u8; 32]>(), any::<[u8; 8]>()),
            ),
            1..12,
        ),
    ) {
        let mut fixture = fixture("refusals", 2);
        for (seed, name, version, (kind, bytes, id)) in hellos {
            let auth = auth(kind, fixture.token, &fixture.secret, bytes, id);
            let public_key = match seed {
                0 => PublicKey::from_bytes([0; 32]),
                5 => key(200),
                seed => key(seed),
            };
            let hello = Hello { version, ..hello(auth, name, public_key) };
            let before = trace(&mut fixture.state);
            let answer = fixture.state.admit(&hello, remote(), NOW, bytes);
            if answer.is_err() {
                prop_assert_eq!(trace(&mut fixture.state), before);
            }
        }
    }
}

#[test]
fn a_node_s_reports_are_paced_and_its_candidates_cut_to_usable_ones() {
    let mut fixture = fixture("reports", 1);
    admit_with_token(&mut fixture, "pi", 1);
    let mut events = fixture.state.subscribe();
    let addr = |text: &str| text.parse::<SocketAddr>().unwrap();
    let mut candidates = vec![
        addr("0.0.0.0:51820"),
        addr("224.0.0.1:51820"),
        addr("255.255.255.255:51820"),
        addr("198.51.100.7:0"),
        addr("198.51.100.7:51820"),
        addr("198.51.100.7:51820"),
    ];
    candidates.extend((1..=20).map(|n| addr(&format!("192.168.1.{n}:51820"))));
    let report = |candidates: Vec<SocketAddr>| Report {
        paths: Vec::new(),
        candidates,
    };
    let start = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(NOW);
    fixture.state.record_report("pi", report(candidates), start);
    let Ok(PeerEvent::Candidates { candidates, .. }) = events.try_recv() else {
        panic!("no candidates passed on");
    };
    assert_eq!(candidates.len(), MAX_CANDIDATES);
    assert_eq!(candidates[0], addr("198.51.100.7:51820"));
    assert_eq!(candidates[1], addr("192.168.1.1:51820"));
    // A second report half a second later is dropped, and counted.
    let other = vec![addr("203.0.113.9:51820")];
    let soon = start + Duration::from_millis(500);
    fixture
        .state
        .record_report("pi", report(other.clone()), soon);
    assert!(events.try_recv().is_err());
    assert_eq!(fixture.state.reports_dropped(), 1);
    // One at the agents' pace is taken.
    fixture
        .state
        .record_report("pi", report(other.clone()), start + Duration::from_secs(5));
    assert!(matches!(
        events.try_recv(),
        Ok(PeerEvent::Candidates { candidates, .. }) if candidates == other
    ));
}
