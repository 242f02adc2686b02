//! Round trips, and what each version must accept from the other.

use super::*;
use std::net::Ipv4Addr;
use warren_wire::{PublicKey, Ticket};

fn hello() -> Hello {
    Hello {
        version: PROTOCOL_VERSION,
        capabilities: CONTROL_KINDS.iter().map(|k| k.to_string()).collect(),
        auth: Auth::Token {
            id: TokenId([1, 2, 3, 4, 5, 6, 7, 8]),
            secret: Secret([5; 32]),
        },
        name: "pi".to_owned(),
        public_key: PublicKey::from_bytes([7; 32]),
        mode: Mode::Relay,
        private_address: None,
        wg_port: 51820,
        machine: None,
    }
}

fn ticket() -> Ticket {
    Ticket::decode(&[3u8; warren_wire::ticket::TICKET_LEN]).unwrap()
}

#[test]
fn messages_round_trip_through_frames() {
    let frame = frame::encode(&hello()).unwrap();
    let len = frame::frame_len(frame[..4].try_into().unwrap(), MAX_HELLO).unwrap();
    assert_eq!(len, frame.len() - 4);
    assert_eq!(frame::decode::<Hello>(&frame[4..]).unwrap(), hello());
    let messages = [
        ControlMessage::Refused {
            code: RefusalCode::NameTaken,
            reason: "no".to_owned(),
        },
        ControlMessage::Ticket { ticket: ticket() },
        ControlMessage::Peers {
            added: vec![Peer {
                name: "vm".to_owned(),
                public_key: PublicKey::from_bytes([8; 32]),
                mesh_ip: Ipv4Addr::new(100, 96, 0, 3),
                mode: Mode::Direct,
                endpoints: vec!["10.0.0.5:51820".parse().unwrap()],
            }],
            removed: vec![PublicKey::from_bytes([9; 32])],
        },
    ];
    for message in messages {
        let frame = frame::encode(&message).unwrap();
        assert_eq!(
            frame::decode::<ControlMessage>(&frame[4..]).unwrap(),
            message
        );
    }
    let report = AgentMessage::Report(Report {
        paths: vec![PathReport {
            public_key: PublicKey::from_bytes([8; 32]),
            kind: PathKind::Relayed,
            endpoint: None,
            rtt_ms: Some(1.5),
            last_handshake_secs: Some(3),
            tx_bytes: 1,
            rx_bytes: 2,
        }],
        candidates: Vec::new(),
    });
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains(r#""type":"report""#) && json.contains(r#""kind":"relayed""#));
    assert_eq!(serde_json::from_str::<AgentMessage>(&json).unwrap(), report);
}

/// What a version-1 agent sends (as the version-1 encoder wrote it)
/// still decodes, and a version-1 refusal without a code too.
#[test]
fn version_1_messages_decode() {
    let v1_hello = r#"{"version":1,"auth":{"kind":"token","id":"0102030405060708","secret":"BQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU"},"name":"pi","public_key":"BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=","mode":"relay","private_address":null,"wg_port":51820}"#;
    let decoded: Hello = serde_json::from_str(v1_hello).unwrap();
    assert_eq!(
        decoded,
        Hello {
            version: 1,
            capabilities: Vec::new(),
            ..hello()
        }
    );
    let v1_report = r#"{"paths":[{"public_key":"CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=","kind":"direct","endpoint":"192.0.2.1:51820","rtt_ms":null,"last_handshake_secs":4,"tx_bytes":1,"rx_bytes":2}]}"#;
    let report: Report = serde_json::from_str(v1_report).unwrap();
    assert_eq!(report.paths[0].kind, PathKind::Direct);
    let v1_refusal = r#"{"type":"refused","reason":"no"}"#;
    assert_eq!(
        serde_json::from_str::<ControlMessage>(v1_refusal).unwrap(),
        ControlMessage::Refused {
            code: RefusalCode::Unknown,
            reason: "no".to_owned()
        }
    );
}

/// A newer peer's additions decode as `Unknown` (to be ignored), never as
/// an error that would end the connection.
#[test]
fn unknown_kinds_and_codes_decode_as_unknown() {
    assert_eq!(
        serde_json::from_str::<ControlMessage>(r#"{"type":"certificates","items":[1]}"#).unwrap(),
        ControlMessage::Unknown
    );
    assert_eq!(
        serde_json::from_str::<AgentMessage>(r#"{"type":"logs","lines":["x"]}"#).unwrap(),
        AgentMessage::Unknown
    );
    assert_eq!(
        serde_json::from_str::<ControlMessage>(r#"{"type":"refused","code":"quota","reason":"x"}"#)
            .unwrap(),
        ControlMessage::Refused {
            code: RefusalCode::Unknown,
            reason: "x".to_owned()
        }
    );
}

/// Closed sets stay closed: an unknown path kind or mode is malformed (a
/// hostile node cannot smuggle text into `warren mesh` through them).
#[test]
fn unknown_path_kinds_and_modes_are_refused() {
    assert!(serde_json::from_str::<PathKind>(r#""\u001b[31mdirect""#).is_err());
    assert!(serde_json::from_str::<Mode>(r#""teleport""#).is_err());
    assert_eq!(
        serde_json::from_str::<Mode>(r#""control""#).unwrap(),
        Mode::Control
    );
}

#[test]
fn oversized_and_malformed_frames_are_refused() {
    assert!(matches!(
        frame::frame_len(((MAX_FRAME + 1) as u32).to_be_bytes(), MAX_FRAME),
        Err(FrameError::TooLong { .. })
    ));
    assert!(matches!(
        frame::decode::<Hello>(b"{\"version\":1}"),
        Err(FrameError::Json(_))
    ));
    assert!(matches!(
        frame::decode::<Hello>(b"\xff"),
        Err(FrameError::Json(_))
    ));
}
