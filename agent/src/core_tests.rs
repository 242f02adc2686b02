//! The agent core's reactions, message by message.

use super::*;
use std::net::Ipv4Addr;
use warren_proto::{Mode, PathKind, PathReport};

fn key(seed: u8) -> PublicKey {
    PublicKey::from_bytes([seed; 32])
}

fn peer(name: &str, seed: u8) -> Peer {
    Peer {
        name: name.to_owned(),
        public_key: key(seed),
        mesh_ip: Ipv4Addr::new(100, 96, 0, seed),
        mode: Mode::Relay,
        endpoints: Vec::new(),
    }
}

fn welcome(peers: Vec<Peer>) -> Welcome {
    Welcome {
        name: "pi".to_owned(),
        mesh_ip: Ipv4Addr::new(100, 96, 0, 2),
        mesh_prefix: 16,
        credential: None,
        relays: Vec::new(),
        ticket: Ticket::decode(&[3u8; warren_wire::ticket::TICKET_LEN]).unwrap(),
        peers,
    }
}

fn core() -> AgentCore {
    AgentCore::new(StatusOf {
        name: "pi".to_owned(),
        mesh_ip: Ipv4Addr::new(100, 96, 0, 2),
        mode: Mode::Relay,
        iface: "warren0".to_owned(),
    })
}

/// The keys an action set adds and removes, in order.
fn changes(actions: &[Action]) -> (Vec<PublicKey>, Vec<PublicKey>) {
    let mut added = Vec::new();
    let mut removed = Vec::new();
    for action in actions {
        if let Action::Configure(set) = action {
            for change in &set.peers {
                let key = PublicKey::from(change.public_key);
                if change.remove {
                    removed.push(key);
                } else {
                    added.push(key);
                }
            }
        }
    }
    (added, removed)
}

/// The security review's H2: a node removed while this agent was away is
/// missing from the next welcome, and the agent removes it from the device.
#[test]
fn a_reconnect_welcome_removes_peers_that_left_while_away() {
    let mut core = core();
    let first = core.handle_welcome(&welcome(vec![peer("control", 1), peer("b", 3)]));
    assert_eq!(changes(&first), (vec![key(1), key(3)], vec![]));
    core.handle_disconnected();
    assert!(!core.is_connected());
    let again = core.handle_welcome(&welcome(vec![peer("control", 1), peer("c", 4)]));
    assert_eq!(changes(&again), (vec![key(1), key(4)], vec![key(3)]));
    let mut names: Vec<&str> = core.peers().map(|p| p.name.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["c", "control"]);
}

#[test]
fn peer_updates_candidates_and_tickets_become_device_actions() {
    let mut core = core();
    core.handle_welcome(&welcome(vec![peer("control", 1)]));
    let update = core.handle_message(ControlMessage::Peers {
        added: vec![peer("vm", 5)],
        removed: vec![key(1)],
    });
    assert_eq!(changes(&update), (vec![key(5)], vec![key(1)]));
    let candidates = vec!["203.0.113.9:51820".parse().unwrap()];
    assert_eq!(
        core.handle_message(ControlMessage::Candidates {
            public_key: key(5),
            candidates: candidates.clone(),
        }),
        vec![Action::PeerCandidates {
            peer: key(5),
            candidates: candidates.clone()
        }]
    );
    assert!(
        core.handle_message(ControlMessage::Candidates {
            public_key: key(9),
            candidates,
        })
        .is_empty(),
        "candidates of a stranger are ignored"
    );
    let ticket = Ticket::decode(&[4u8; warren_wire::ticket::TICKET_LEN]).unwrap();
    assert_eq!(
        core.handle_message(ControlMessage::Ticket { ticket }),
        vec![Action::RenewTicket(ticket)]
    );
    assert!(core.handle_message(ControlMessage::Unknown).is_empty());
}

#[test]
fn the_status_names_reported_peers_and_says_whether_the_control_plane_is_there() {
    let mut core = core();
    core.handle_welcome(&welcome(vec![peer("control", 1), peer("vm", 5)]));
    let path = |seed: u8| PathReport {
        public_key: key(seed),
        kind: PathKind::Direct,
        endpoint: None,
        rtt_ms: None,
        last_handshake_secs: None,
        tx_bytes: 0,
        rx_bytes: 0,
    };
    let status = core.handle_report(
        Report {
            paths: vec![path(5), path(1), path(9)],
            candidates: Vec::new(),
        },
        100,
    );
    let names: Vec<&str> = status.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["control", "vm"], "sorted, strangers left out");
    assert!(status.control_connected);
    core.handle_disconnected();
    let offline = core.status(105);
    assert!(!offline.control_connected);
    assert_eq!((offline.updated, offline.peers.len()), (105, 2));
}

#[test]
fn the_mesh_map_follows_the_peer_map_and_the_ticket_and_keeps_no_credential() {
    let mut core = core();
    assert!(core.mesh_map().is_none());
    let mut first = welcome(vec![peer("control", 1), peer("b", 3)]);
    first.credential = Some(warren_proto::Secret([9; 32]));
    core.handle_welcome(&first);
    assert_eq!(core.mesh_map().unwrap().credential, None);
    core.handle_message(ControlMessage::Peers {
        added: vec![peer("c", 4)],
        removed: vec![key(3)],
    });
    let ticket = Ticket::decode(&[4u8; warren_wire::ticket::TICKET_LEN]).unwrap();
    core.handle_message(ControlMessage::Ticket { ticket });
    let map = core.mesh_map().unwrap();
    let names: Vec<&str> = map.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, vec!["control", "c"], "the control plane stays first");
    assert_eq!(map.ticket, ticket);
    // Started from it, the core knows the peers but is not connected.
    let mut restarted = super::AgentCore::new(StatusOf {
        name: "pi".to_owned(),
        mesh_ip: Ipv4Addr::new(100, 96, 0, 2),
        mode: Mode::Relay,
        iface: "warren0".to_owned(),
    });
    restarted.handle_stored(map);
    assert!(!restarted.is_connected());
    assert_eq!(restarted.peers().count(), 2);
}

#[test]
fn peers_outside_the_mesh_network_never_become_routes() {
    let mut core = core();
    let mut metadata = peer("metadata", 9);
    metadata.mesh_ip = Ipv4Addr::new(169, 254, 169, 254);
    let mut myself = peer("myself", 8);
    myself.mesh_ip = Ipv4Addr::new(100, 96, 0, 2);
    let actions = core.handle_welcome(&welcome(vec![peer("vm", 1), metadata.clone(), myself]));
    assert_eq!(changes(&actions), (vec![peer("vm", 1).public_key], vec![]));
    assert_eq!(core.peers().count(), 1);
    assert_eq!(core.mesh_map().unwrap().peers, vec![peer("vm", 1)]);
    // Nor later, in an update.
    let mut dns = peer("dns", 7);
    dns.mesh_ip = Ipv4Addr::new(8, 8, 8, 8);
    let actions = core.handle_message(ControlMessage::Peers {
        added: vec![dns, peer("box", 3)],
        removed: Vec::new(),
    });
    assert_eq!(changes(&actions), (vec![peer("box", 3).public_key], vec![]));
    assert!(core.peers().all(|p| p.mesh_ip.octets()[..2] == [100, 96]));
}

#[test]
fn a_welcome_with_a_mesh_prefix_out_of_range_is_refused_and_changes_nothing() {
    for prefix in [0, 7, 31, 32] {
        let wide = Welcome {
            mesh_prefix: prefix,
            ..welcome(vec![peer("vm", 1)])
        };
        assert_eq!(checked_welcome(&wide), Err(BadMeshPrefix(prefix)));
        let mut core = core();
        assert!(core.handle_welcome(&wide).is_empty());
        assert_eq!(core.peers().count(), 0);
    }
    for prefix in [8, 16, 30] {
        let fine = Welcome {
            mesh_prefix: prefix,
            ..welcome(vec![])
        };
        assert!(checked_welcome(&fine).is_ok(), "/{prefix}");
    }
}
