//! Upgrades: a control plane of this release admits an agent that speaks
//! the previous protocol version (1), sends it only what version 1 knows,
//! takes its reports, and the node works in the mesh beside agents of this
//! release. The version-1 agent is played by the test: it speaks version
//! 1's exact JSON over the real QUIC endpoint and runs a real warren device
//! configured from the welcome, as the version-1 agent did.

#![allow(clippy::unwrap_used)]

mod support;

use serde_json::{json, Value};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use warren_netns_tests::cluster::{Cluster, Worker, CONTROL_IP};
use warren_netns_tests::wg::{start_wg, KeyPair, PeerConfig, WgImpl};
use warren_netns_tests::{wait_for_value, Nat};
use warren_wire::JoinToken;

const WG_PORT: u16 = 51830;

/// A frame: 4-byte big-endian length, then the JSON.
fn frame(message: &Value) -> Vec<u8> {
    let json = serde_json::to_vec(message).unwrap();
    let mut out = (json.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&json);
    out
}

async fn read(recv: &mut quinn::RecvStream) -> Value {
    let mut header = [0u8; 4];
    recv.read_exact(&mut header).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    recv.read_exact(&mut body).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn an_agent_of_the_previous_protocol_version_joins_and_works() {
    let cluster = Cluster::new("skew").unwrap();
    let old = cluster.net.add_public_host(&cluster.lab, "old").unwrap();
    let token: JoinToken = cluster.token().unwrap().parse().unwrap();
    let key = KeyPair::generate().unwrap();
    // A worker thread keeps the QUIC connection going between steps.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let socket = cluster
        .lab
        .in_ns(&old.ns, || {
            std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        })
        .unwrap()
        .unwrap();

    // The hello exactly as version 1 wrote it: no capabilities, bare fields.
    let hello = json!({
        "version": 1,
        "auth": {
            "kind": "token",
            "id": token.id_hex(),
            "secret": base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, token.secret),
        },
        "name": "old",
        "public_key": key.public,
        "mode": "direct",
        "private_address": old.ip.to_string(),
        "wg_port": WG_PORT,
    });
    let (connection, mut send, mut recv, welcome) = runtime.block_on(async {
        let mut endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .unwrap();
        endpoint.set_default_client_config(
            warren_agent::pinned::client_config(token.cert_sha256).unwrap(),
        );
        let connection = endpoint
            .connect(token.control[0], "warren-control")
            .unwrap()
            .await
            .unwrap();
        let (mut send, mut recv) = connection.open_bi().await.unwrap();
        send.write_all(&frame(&hello)).await.unwrap();
        let welcome = read(&mut recv).await;
        (connection, send, recv, welcome)
    });
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let mesh_ip: Ipv4Addr = welcome["mesh_ip"].as_str().unwrap().parse().unwrap();
    let control = &welcome["peers"][0];
    assert_eq!(
        (&control["name"], &control["mode"]),
        (&json!("control"), &json!("control"))
    );
    let control_key = control["public_key"].as_str().unwrap().to_owned();

    // The device, configured from the welcome as the version-1 agent did.
    let prefix = welcome["mesh_prefix"].as_u64().unwrap();
    let device = start_wg(
        &cluster.lab,
        &old.ns,
        WgImpl::Warren,
        &format!("{mesh_ip}/{prefix}"),
        1420,
    )
    .unwrap();
    device.set_key(&key, WG_PORT, cluster.lab.dir()).unwrap();
    let endpoint: SocketAddr = control["endpoints"][0].as_str().unwrap().parse().unwrap();
    device
        .add_peer(&PeerConfig {
            public_key: control_key.clone(),
            allowed_ips: vec![format!("{CONTROL_IP}/32")],
            endpoint: Some(endpoint),
            keepalive: Some(25),
        })
        .unwrap();
    support::transfer(&old.ns, &cluster.control.ns, CONTROL_IP, 64 * 1024).unwrap();

    // A bare version-1 report reaches `warren mesh`.
    let report = json!({
        "paths": [{
            "public_key": control_key, "kind": "direct", "endpoint": endpoint.to_string(),
            "rtt_ms": 0.5, "last_handshake_secs": 1, "tx_bytes": 65536, "rx_bytes": 65536,
        }],
        "candidates": [],
    });
    runtime.block_on(send.write_all(&frame(&report))).unwrap();
    wait_for_value(
        "the version-1 report in warren mesh",
        Duration::from_secs(10),
        || {
            let mesh: Value =
                serde_json::from_str(&cluster.admin(&["mesh", "--json"]).unwrap()).ok()?;
            mesh["paths"]
                .as_array()?
                .iter()
                .any(|p| p["from"] == "old" && p["to"] == "control" && p["kind"] == "direct")
                .then_some(())
        },
    )
    .unwrap();

    // An agent of this release joins; the old one hears of it in version
    // 1's words, and the two nodes reach each other.
    let new = Worker::new(&cluster, "new", Nat::Cone).unwrap();
    let (_agent, new_ip) = new
        .join(&cluster, "new", Some(&cluster.token().unwrap()))
        .unwrap();
    let update = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let message = read(&mut recv).await;
                assert!(
                    ["peers", "ticket", "candidates"].contains(&message["type"].as_str().unwrap()),
                    "a kind version 1 does not know: {message}"
                );
                if message["type"] == "peers" {
                    return message;
                }
            }
        })
        .await
        .unwrap()
    });
    let added = &update["added"][0];
    assert_eq!(
        (&added["name"], &added["mode"]),
        (&json!("new"), &json!("relay"))
    );
    device
        .add_peer(&PeerConfig {
            public_key: added["public_key"].as_str().unwrap().to_owned(),
            allowed_ips: vec![format!("{new_ip}/32")],
            endpoint: None,
            keepalive: Some(25),
        })
        .unwrap();
    support::transfer(&new.host.ns, &old.ns, mesh_ip, 64 * 1024).unwrap();
    connection.close(0u32.into(), b"bye");
}
