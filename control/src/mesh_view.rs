//! The whole picture `warren mesh` shows: every node, and every ordered
//! pair's path as the first node of the pair reports it. Assembled from
//! the registry, the open connections and the latest reports, without side
//! effects (see `docs/mesh.md` for the JSON).

use crate::nodes::NodeRecord;
use crate::nodes::CONTROL_NAME;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime};
use warren_proto::{Mode, PathKind, Report};
use warren_wire::PublicKey;

/// A node in `warren mesh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeshNode {
    /// Its name.
    pub name: String,
    /// Its mesh address.
    pub mesh_ip: Ipv4Addr,
    /// `control`, `direct` or `relay`.
    pub mode: Mode,
    /// Whether it is connected to the control plane now.
    pub online: bool,
    /// Where it connects from (its public address behind NAT) or, offline,
    /// the private address it gave.
    pub endpoint: Option<String>,
    /// Seconds since its last path report.
    pub last_seen_secs: Option<u64>,
}

/// One ordered pair's path, as `from` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshPath {
    /// The reporting node.
    pub from: String,
    /// The peer.
    pub to: String,
    /// `direct`, `relayed` or `none`.
    pub kind: PathKind,
    /// Round trip through the mesh, milliseconds.
    pub rtt_ms: Option<f64>,
    /// Seconds since the last handshake (as of the report).
    pub last_handshake_secs: Option<u64>,
    /// Bytes `from` sent to `to`.
    pub tx_bytes: u64,
    /// Bytes `from` received from `to`.
    pub rx_bytes: u64,
}

/// Everything `warren mesh --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeshView {
    /// The control plane first, then the nodes by name.
    pub nodes: Vec<MeshNode>,
    /// Every reported pair, by `from` then `to`.
    pub paths: Vec<MeshPath>,
    /// The relays nodes use: a relayed path's endpoint is one of them.
    pub relays: Vec<SocketAddr>,
}

/// The control plane as a member of the mesh: what agents get as their
/// first peer and `warren mesh` shows as its first node.
#[derive(Debug, Clone)]
pub struct ControlMember {
    /// The control plane's WireGuard public key.
    pub public_key: PublicKey,
    /// The control plane's mesh address.
    pub mesh_ip: Ipv4Addr,
    /// Where agents reach the control plane (its QUIC endpoint).
    pub endpoint: Option<SocketAddr>,
    /// Where its WireGuard socket is reachable, likeliest first.
    pub wireguard_endpoints: Vec<SocketAddr>,
}

/// Assembles the view at `now`.
pub fn view<'a>(
    control: &ControlMember,
    relays: &[SocketAddr],
    nodes: impl Iterator<Item = &'a NodeRecord>,
    online: &HashMap<String, SocketAddr>,
    reports: &HashMap<String, (SystemTime, Report)>,
    now: SystemTime,
) -> MeshView {
    let age = |name: &str| {
        reports
            .get(name)
            .map(|(at, _)| now.duration_since(*at).unwrap_or(Duration::ZERO).as_secs())
    };
    let mut members = vec![MeshNode {
        name: CONTROL_NAME.to_owned(),
        mesh_ip: control.mesh_ip,
        mode: Mode::Control,
        online: true,
        endpoint: control.endpoint.map(|e| e.to_string()),
        last_seen_secs: age(CONTROL_NAME),
    }];
    let mut names_by_key: HashMap<PublicKey, String> =
        HashMap::from([(control.public_key, CONTROL_NAME.to_owned())]);
    for node in nodes {
        names_by_key.insert(node.public_key, node.name.clone());
        members.push(MeshNode {
            name: node.name.clone(),
            mesh_ip: node.mesh_ip,
            mode: node.mode,
            online: online.contains_key(&node.name),
            endpoint: online
                .get(&node.name)
                .map(ToString::to_string)
                .or_else(|| node.private_address.map(|a| a.to_string())),
            last_seen_secs: age(&node.name),
        });
    }
    let mut paths: Vec<MeshPath> = reports
        .iter()
        .filter(|(from, _)| members.iter().any(|m| &m.name == *from))
        .flat_map(|(from, (_, report))| {
            let names = &names_by_key;
            report.paths.iter().filter_map(move |path| {
                Some(MeshPath {
                    from: from.clone(),
                    to: names.get(&path.public_key)?.clone(),
                    kind: path.kind,
                    rtt_ms: path.rtt_ms,
                    last_handshake_secs: path.last_handshake_secs,
                    tx_bytes: path.tx_bytes,
                    rx_bytes: path.rx_bytes,
                })
            })
        })
        .collect();
    paths.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
    MeshView {
        nodes: members,
        paths,
        relays: relays.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::PathReport;

    fn node(name: &str, key: u8, ip: [u8; 4]) -> NodeRecord {
        NodeRecord {
            name: name.to_owned(),
            public_key: PublicKey::from_bytes([key; 32]),
            mesh_ip: Ipv4Addr::from(ip),
            mode: Mode::Relay,
            private_address: None,
            wg_port: 51820,
            credential_sha256: [key; 32],
            joined: 0,
        }
    }

    fn path(key: u8, kind: PathKind) -> PathReport {
        PathReport {
            public_key: PublicKey::from_bytes([key; 32]),
            kind,
            endpoint: None,
            rtt_ms: Some(1.5),
            last_handshake_secs: Some(3),
            tx_bytes: 10,
            rx_bytes: 20,
        }
    }

    #[test]
    fn pairs_are_named_as_their_reporters_see_them_and_strangers_are_left_out() {
        let control = ControlMember {
            public_key: PublicKey::from_bytes([9; 32]),
            mesh_ip: Ipv4Addr::new(100, 96, 0, 1),
            endpoint: Some("203.0.113.1:7443".parse().unwrap()),
            wireguard_endpoints: Vec::new(),
        };
        let nodes = [
            node("pi", 1, [100, 96, 0, 2]),
            node("vps", 2, [100, 96, 0, 3]),
        ];
        let online = HashMap::from([("pi".to_owned(), "198.51.100.7:4000".parse().unwrap())]);
        let now = SystemTime::now();
        let reports = HashMap::from([
            (
                "pi".to_owned(),
                (
                    now - Duration::from_secs(4),
                    Report {
                        paths: vec![
                            path(9, PathKind::Direct),
                            path(2, PathKind::Relayed),
                            path(7, PathKind::Direct),
                        ],
                        candidates: Vec::new(),
                    },
                ),
            ),
            (
                "gone".to_owned(),
                (
                    now,
                    Report {
                        paths: vec![path(1, PathKind::Direct)],
                        candidates: Vec::new(),
                    },
                ),
            ),
        ]);
        let view = view(&control, &[], nodes.iter(), &online, &reports, now);
        let names: Vec<(&str, Mode, bool)> = view
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.mode, n.online))
            .collect();
        assert_eq!(
            names,
            vec![
                ("control", Mode::Control, true),
                ("pi", Mode::Relay, true),
                ("vps", Mode::Relay, false)
            ]
        );
        assert_eq!(view.nodes[1].last_seen_secs, Some(4));
        assert_eq!(view.nodes[1].endpoint.as_deref(), Some("198.51.100.7:4000"));
        let pairs: Vec<(&str, &str, PathKind)> = view
            .paths
            .iter()
            .map(|p| (p.from.as_str(), p.to.as_str(), p.kind))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("pi", "control", PathKind::Direct),
                ("pi", "vps", PathKind::Relayed)
            ]
        );
        let json = serde_json::to_value(&view).unwrap();
        for field in [
            "from",
            "to",
            "kind",
            "rtt_ms",
            "last_handshake_secs",
            "tx_bytes",
            "rx_bytes",
        ] {
            assert!(json["paths"][0].get(field).is_some(), "{field}");
        }
        for field in ["name", "mesh_ip", "mode", "online", "endpoint"] {
            assert!(json["nodes"][0].get(field).is_some(), "{field}");
        }
        assert_eq!(json["nodes"][1]["mode"], "relay");
        assert_eq!(json["paths"][1]["kind"], "relayed");
    }
}
