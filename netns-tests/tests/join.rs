//! End-to-end tests of `warren join` against `warren serve` on real
//! namespaces and real NAT: workers behind a port-preserving and a
//! symmetric NAT join with tokens, get mesh addresses, reach the control
//! plane and each other through the mesh, and rejoin after a restart with
//! the same name and address and no token; used-up and revoked tokens are
//! refused with one clear line.

#![allow(clippy::unwrap_used)]

mod relay_support;
mod support;

use base64::Engine as _;
use std::net::Ipv4Addr;
use std::time::Duration;
use warren_netns_tests::cluster::{Cluster, Worker, CONTROL_IP};
use warren_netns_tests::wg::warren_bin;
use warren_netns_tests::{Nat, Proc, Signal, Spawn};

#[test]
fn workers_behind_nat_join_reach_each_other_and_rejoin_with_their_address() {
    let cluster = Cluster::new("join-nat").unwrap();
    let cone = Worker::new(&cluster, "a", Nat::Cone).unwrap();
    let symmetric = Worker::new(&cluster, "b", Nat::Symmetric).unwrap();
    let (agent_a, ip_a) = cone
        .join(&cluster, "a", Some(&cluster.token().unwrap()))
        .unwrap();
    let (_agent_b, ip_b) = symmetric
        .join(&cluster, "b", Some(&cluster.token().unwrap()))
        .unwrap();
    assert_ne!(ip_a, ip_b);
    for ip in [ip_a, ip_b] {
        assert!(ip.octets()[..2] == [100, 96] && ip != CONTROL_IP, "{ip}");
    }

    // Through the mesh: each worker to the control plane, and to each other
    // (b learned of a when it joined; a was told of b by the control plane).
    support::transfer(&cone.host.ns, &cluster.control.ns, CONTROL_IP, 64 * 1024).unwrap();
    support::transfer(&symmetric.host.ns, &cone.host.ns, ip_a, 64 * 1024).unwrap();
    support::transfer(&cone.host.ns, &symmetric.host.ns, ip_b, 64 * 1024).unwrap();

    // `warren mesh` shows who is who and how each pair is connected, as
    // each node reports it: the symmetric NAT keeps a and b relayed.
    let mesh =
        warren_netns_tests::wait_for_value("both pairs reported", Duration::from_secs(20), || {
            let mesh: serde_json::Value =
                serde_json::from_str(&cluster.admin(&["mesh", "--json"]).unwrap()).ok()?;
            let kind = |from: &str, to: &str| {
                mesh["paths"]
                    .as_array()?
                    .iter()
                    .find(|p| p["from"] == from && p["to"] == to && p["rtt_ms"].is_number())
                    .map(|p| p["kind"].as_str().unwrap_or_default().to_owned())
            };
            // A report from after the transfer (reports come every few
            // seconds; one from before it may already have an RTT).
            let a_sent = mesh["paths"]
                .as_array()?
                .iter()
                .find(|p| p["from"] == "a" && p["to"] == "b")?["tx_bytes"]
                .as_u64()?;
            (kind("a", "b")? == "relayed"
                && kind("b", "a")? == "relayed"
                && kind("a", "control").is_some()
                && a_sent > 64 * 1024)
                .then_some(mesh)
        })
        .unwrap();
    let modes: Vec<(String, String, bool)> = mesh["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                n["mode"].as_str().unwrap().to_owned(),
                n["online"] == true,
            )
        })
        .collect();
    assert_eq!(
        modes,
        vec![
            ("control".to_owned(), "control".to_owned(), true),
            ("a".to_owned(), "relay".to_owned(), true),
            ("b".to_owned(), "relay".to_owned(), true),
        ]
    );
    let a_to_b = mesh["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["from"] == "a" && p["to"] == "b")
        .unwrap();
    assert!(a_to_b["last_handshake_secs"].is_u64(), "{a_to_b}");
    let dot = cluster.admin(&["mesh", "--dot"]).unwrap();
    assert!(dot.contains("\"a\" -> \"b\" [style=dashed"), "{dot}");
    let table = cluster.admin(&["mesh"]).unwrap();
    assert!(table.contains("relayed"), "{table}");
    let ping = cluster
        .admin(&["ping", "a", "--count", "2", "--iface", &cluster.iface])
        .unwrap();
    assert!(
        ping.contains("reply from a") && ping.contains("via direct"),
        "{ping}"
    );

    // `warren status` on the worker: its own view, without the admin credential.
    let status = cone
        .host
        .ns
        .exec([
            warren_bin().unwrap().as_os_str(),
            "status".as_ref(),
            "--json".as_ref(),
            "--data-dir".as_ref(),
            cone.dir.as_os_str(),
        ])
        .unwrap();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["name"], "a");
    assert_eq!(status["control_connected"], true);
    let peers: Vec<(String, String)> = status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        peers.contains(&("b".to_owned(), "relayed".to_owned())),
        "{peers:?}"
    );
    assert!(peers.iter().any(|(name, _)| name == "control"), "{peers:?}");

    // A restart rejoins with the stored credential: same name, same address.
    agent_a.stop().unwrap();
    let (_agent_a, again) = cone.join(&cluster, "a", None).unwrap();
    assert_eq!(again, ip_a);
    support::transfer(&cone.host.ns, &symmetric.host.ns, ip_b, 64 * 1024).unwrap();
}

#[test]
fn used_revoked_and_foreign_tokens_and_taken_names_are_refused() {
    let cluster = Cluster::new("join-refuse").unwrap();
    let first = Worker::new(&cluster, "a", Nat::Cone).unwrap();
    let token = cluster.token().unwrap();
    let (_agent, _) = first.join(&cluster, "a", Some(&token)).unwrap();

    let second = Worker::new(&cluster, "b", Nat::Cone).unwrap();
    let used = second.refused("b", &token).unwrap();
    assert!(used.contains("already used"), "{used}");
    let taken = second.refused("a", &cluster.token().unwrap()).unwrap();
    assert!(taken.contains("taken"), "{taken}");
    let revoked = cluster.token().unwrap();
    let id = revoked.parse::<warren_wire::JoinToken>().unwrap().id_hex();
    cluster.admin(&["token", "revoke", &id]).unwrap();
    let refused = second.refused("b", &revoked).unwrap();
    assert!(refused.contains("revoked"), "{refused}");
    let short = cluster.admin(&["token", "create", "--ttl", "1s"]).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let expired = second.refused("b", &short).unwrap();
    assert!(expired.contains("expired"), "{expired}");
    let garbage = second.refused("b", "not-a-token").unwrap();
    assert!(garbage.contains("not a warren join token"), "{garbage}");
    // None of this admitted b.
    let tokens = cluster.admin(&["token", "list", "--json"]).unwrap();
    assert!(tokens.contains("\"used\":1"), "{tokens}");
}

#[test]
fn agents_reconnect_after_a_control_plane_sigkill_and_removed_nodes_are_cut_off() {
    let mut cluster = Cluster::new("join-durable").unwrap();
    let a = Worker::new(&cluster, "a", Nat::Cone).unwrap();
    let b = Worker::new(&cluster, "b", Nat::Cone).unwrap();
    let (agent_a, ip_a) = a
        .join(&cluster, "a", Some(&cluster.token().unwrap()))
        .unwrap();
    let (agent_b, ip_b) = b
        .join(&cluster, "b", Some(&cluster.token().unwrap()))
        .unwrap();
    let nodes: serde_json::Value =
        serde_json::from_str(&cluster.admin(&["nodes", "--json"]).unwrap()).unwrap();
    let nodes = nodes["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    for node in &nodes {
        assert_eq!(node["mode"], "relay");
        assert_eq!(node["online"], true);
    }

    // Both cone-NATed workers find their direct path (through the relay,
    // which dies with the control plane) before it is killed; a loaded
    // machine may take a few seconds.
    warren_netns_tests::wait_for_value("a and b direct", Duration::from_secs(30), || {
        let mesh: serde_json::Value =
            serde_json::from_str(&cluster.admin(&["mesh", "--json"]).ok()?).ok()?;
        let direct = |from: &str, to: &str| {
            mesh["paths"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["from"] == from && p["to"] == to && p["kind"] == "direct")
        };
        (direct("a", "b") && direct("b", "a")).then_some(())
    })
    .unwrap();
    // The control plane dies mid-flight: the workers' tunnel does not care.
    cluster.serve.signal(Signal::Kill).unwrap();
    cluster.serve.wait_exit(Duration::from_secs(5)).unwrap();
    support::transfer(&a.host.ns, &b.host.ns, ip_b, 256 * 1024).unwrap();
    cluster.start_again().unwrap();
    for agent in [&agent_a, &agent_b] {
        agent
            // Backoff tops out at 5 s: a loose bound of three times that.
            .wait_for_log("reconnected to the control plane", Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_tail(20)));
    }
    // The restarted control plane knows both, and pushes a newcomer to them.
    let c = Worker::new(&cluster, "c", Nat::Cone).unwrap();
    let (_agent_c, ip_c) = c
        .join(&cluster, "c", Some(&cluster.token().unwrap()))
        .unwrap();
    support::transfer(&a.host.ns, &c.host.ns, ip_c, 64 * 1024).unwrap();

    // Removing b: its agent stops with the reason, the others drop it.
    cluster.admin(&["node", "rm", "b"]).unwrap();
    let status = agent_b.wait_exit(Duration::from_secs(10)).unwrap();
    assert!(!status.success());
    assert!(
        agent_b.log().contains("removed from the cluster"),
        "{}",
        agent_b.log_tail(5)
    );
    let nodes = cluster.admin(&["nodes"]).unwrap();
    assert!(!nodes.contains(&ip_b.to_string()), "{nodes}");
    // Even with a ticket still valid (minted here with the control plane's
    // key, as b's last one would be), the embedded relay refuses b's key.
    let b_private: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(
            std::fs::read_to_string(b.dir.join("agent/wireguard.key"))
                .unwrap()
                .trim(),
        )
        .unwrap()
        .try_into()
        .unwrap();
    let b_key = relay_support::public_of(b_private);
    let ticket = cluster
        .admin(&[
            "relay",
            "ticket",
            "--signing-key-file",
            &cluster
                .control_dir
                .join("relay-signing.key")
                .display()
                .to_string(),
            "--node-key",
            &b_key.to_base64(),
        ])
        .unwrap();
    let relay_addr = std::net::SocketAddr::from((cluster.control.ip, 3478));
    let mut stale = relay_support::Node::on_port(
        &cluster.lab,
        &b.host,
        40000,
        b_private,
        warren_wire::Ticket::from_base64(&ticket).unwrap(),
        relay_addr,
    )
    .unwrap();
    stale
        .pump_until(Duration::from_secs(10), |n| {
            n.events
                .contains(&warren_relay_proto::client::ClientEvent::Refused(
                    warren_wire::ErrorCode::UNAUTHORIZED,
                ))
        })
        .unwrap();
    assert!(!stale.client.is_registered());
    support::transfer(&c.host.ns, &a.host.ns, ip_a, 64 * 1024).unwrap();
    cluster.kill_and_restart().unwrap();
    let nodes = cluster.admin(&["nodes", "--json"]).unwrap();
    assert!(
        !nodes.contains("\"b\""),
        "removal survives a restart: {nodes}"
    );
}

/// The security review's H2: a node removed while an agent was away (here
/// frozen across a control-plane restart) is dropped from that agent's
/// device when it reconnects, instead of staying a WireGuard peer.
#[test]
fn an_agent_away_when_a_node_was_removed_drops_it_when_it_reconnects() {
    let mut cluster = Cluster::new("join-away").unwrap();
    let a = Worker::new(&cluster, "a", Nat::Cone).unwrap();
    let b = Worker::new(&cluster, "b", Nat::Cone).unwrap();
    let (agent_a, _) = a
        .join(&cluster, "a", Some(&cluster.token().unwrap()))
        .unwrap();
    let (_agent_b, _) = b
        .join(&cluster, "b", Some(&cluster.token().unwrap()))
        .unwrap();
    let b_key = warren_wire::PrivateKey::from_base64(
        &std::fs::read_to_string(b.dir.join("agent/wireguard.key")).unwrap(),
    )
    .unwrap()
    .public_key()
    .to_base64();
    let peers_of_a = || a.host.ns.exec(["wg", "show", &a.iface, "peers"]).unwrap();
    assert!(peers_of_a().contains(&b_key));

    agent_a.signal(Signal::Stop).unwrap();
    cluster.kill_and_restart().unwrap();
    cluster.admin(&["node", "rm", "b"]).unwrap();
    agent_a.signal(Signal::Cont).unwrap();
    agent_a
        .wait_for_log("reconnected to the control plane", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", agent_a.log_tail(20)));
    warren_netns_tests::wait_for("b gone from a's device", Duration::from_secs(5), || {
        !peers_of_a().contains(&b_key)
    })
    .unwrap();
    assert!(
        peers_of_a().lines().count() >= 1,
        "the control plane stays a peer"
    );
}

/// Two `--direct` workers in a VPC behind a NAT gateway, the control plane
/// outside: the workers talk straight over their private addresses; the
/// control plane reaches them through the relay or a punched path.
#[test]
fn direct_workers_in_a_vpc_talk_over_their_private_addresses() {
    let cluster = Cluster::new("join-vpc").unwrap();
    let (a, b) = vpc_workers(&cluster);
    let _agents = join_vpc_workers(&cluster, &a, &b);
    let nodes = cluster.admin(&["nodes"]).unwrap();
    assert!(nodes.contains("direct"), "{nodes}");
}

/// Two `--direct` workers, `vm-a` and `vm-b`, on one VPC behind a NAT
/// gateway; not joined yet.
fn vpc_workers(cluster: &Cluster) -> (Worker, Worker) {
    let mut vpc = cluster
        .net
        .add_lan(&cluster.lab, "vpc", Nat::Cone, 2)
        .unwrap();
    let (host_b, host_a) = (vpc.pop().unwrap(), vpc.pop().unwrap());
    (
        Worker::on(cluster, "vm-a", host_a, true),
        Worker::on(cluster, "vm-b", host_b, true),
    )
}

/// Joins both VPC workers and checks they reach each other straight over
/// the VPC (each one's endpoint for the other is its private address) and
/// reach the control plane; returns the agents and their mesh addresses.
fn join_vpc_workers(cluster: &Cluster, a: &Worker, b: &Worker) -> [(Proc, Ipv4Addr); 2] {
    let (agent_a, ip_a) = a
        .join(cluster, "vm-a", Some(&cluster.token().unwrap()))
        .unwrap();
    let (agent_b, ip_b) = b
        .join(cluster, "vm-b", Some(&cluster.token().unwrap()))
        .unwrap();
    support::transfer(&a.host.ns, &b.host.ns, ip_b, 256 * 1024).unwrap();
    support::transfer(&b.host.ns, &a.host.ns, ip_a, 256 * 1024).unwrap();
    let shown = a
        .host
        .ns
        .exec(["wg", "show", &a.iface, "endpoints"])
        .unwrap();
    assert!(shown.contains(&format!("{}:51820", b.host.ip)), "{shown}");
    support::transfer(&a.host.ns, &cluster.control.ns, CONTROL_IP, 64 * 1024).unwrap();
    [(agent_a, ip_a), (agent_b, ip_b)]
}

/// An agent restarted while the control plane is down (security review M7):
/// it brings the mesh up from its stored peer map, reaches its peers, says
/// so, and rejoins once the control plane is back.
#[test]
fn an_agent_restarted_while_the_control_plane_is_down_runs_from_its_stored_peer_map() {
    let mut cluster = Cluster::new("join-offline").unwrap();
    let (a, b) = vpc_workers(&cluster);
    let [(agent_a, _), (_agent_b, ip_b)] = join_vpc_workers(&cluster, &a, &b);
    agent_a.stop().unwrap();
    cluster.serve.signal(Signal::Kill).unwrap();
    cluster.serve.wait_exit(Duration::from_secs(5)).unwrap();
    let (agent_a, _) = a.join(&cluster, "vm-a", None).unwrap();
    agent_a
        .wait_for_log("the control plane is unreachable", Duration::from_secs(5))
        .unwrap();
    support::transfer(&a.host.ns, &b.host.ns, ip_b, 256 * 1024).unwrap();
    cluster.start_again().unwrap();
    agent_a
        .wait_for_log("reconnected to the control plane", Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}\n{}", agent_a.log_tail(20)));
    support::transfer(&a.host.ns, &cluster.control.ns, CONTROL_IP, 64 * 1024).unwrap();
}

/// A relay that never answers does not keep nodes off the mesh (security
/// review M7): the node joins once the embedded relay acknowledged it,
/// names the silent relay in a warning, and works.
#[test]
fn a_dead_relay_does_not_keep_a_node_from_joining() {
    let cluster = Cluster::with("join-deadrelay", |_, _, _| {
        Ok(vec!["--relay".to_owned(), "203.0.113.250:3478".to_owned()])
    })
    .unwrap();
    let worker = Worker::new(&cluster, "a", Nat::Cone).unwrap();
    let (agent, _) = worker
        .join(&cluster, "a", Some(&cluster.token().unwrap()))
        .unwrap();
    // Log lines reach the file in batches (every 20 ms), `joined` at once.
    agent
        .wait_for_log(
            "joined without these relays' acknowledgement",
            Duration::from_secs(5),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_tail(20)));
    assert!(
        agent.log().contains("203.0.113.250:3478"),
        "{}",
        agent.log_tail(20)
    );
    support::transfer(&worker.host.ns, &cluster.control.ns, CONTROL_IP, 64 * 1024).unwrap();
}

/// With a standalone relay, killing the control plane does not even pause
/// relayed pairs: a symmetric NAT keeps this pair on the relay, and bulk
/// traffic keeps flowing while the control plane is down.
#[test]
fn relayed_pairs_keep_flowing_through_a_standalone_relay_while_the_control_plane_is_down() {
    let mut relay_proc = None;
    let mut relay_at = None;
    let mut cluster = Cluster::with("join-standalone", |lab, net, control_dir| {
        let relay_host = net.add_public_host(lab, "relay").unwrap();
        // The relay trusts the control plane's ticket key, read off its data dir.
        let key = warren_netns_tests::run_args([
            warren_bin().unwrap().as_os_str(),
            "control-key".as_ref(),
            "--data-dir".as_ref(),
            control_dir.as_os_str(),
        ])
        .unwrap();
        let listen = format!("{}:3478", relay_host.ip);
        let relay = lab
            .spawn(
                &relay_host.ns,
                Spawn::new(warren_bin().unwrap())
                    .args(["relay", "--listen", &listen, "--control-key", key.trim()])
                    .args([
                        "--metrics",
                        &format!("{}:{}", relay_host.ip, relay_support::METRICS_PORT),
                    ])
                    .name("relay"),
            )
            .unwrap();
        relay
            .wait_for_log("relay listening on", Duration::from_secs(10))
            .unwrap();
        relay_proc = Some(relay);
        relay_at = Some(relay_host);
        Ok(vec!["--no-relay".to_owned(), "--relay".to_owned(), listen])
    })
    .unwrap();
    let a = Worker::new(&cluster, "a", Nat::Cone).unwrap();
    let b = Worker::new(&cluster, "b", Nat::Symmetric).unwrap();
    let (_agent_a, ip_a) = a
        .join(&cluster, "a", Some(&cluster.token().unwrap()))
        .unwrap();
    let (_agent_b, ip_b) = b
        .join(&cluster, "b", Some(&cluster.token().unwrap()))
        .unwrap();
    cluster.serve.signal(Signal::Kill).unwrap();
    cluster.serve.wait_exit(Duration::from_secs(5)).unwrap();
    let relay_host = relay_at.unwrap();
    let forwarded = || {
        let text = relay_support::scrape(&cluster.lab, &relay_host).unwrap();
        relay_support::metric(&text, "warren_relay_forwarded_frames_total").unwrap()
    };
    let before = forwarded();
    support::transfer(&a.host.ns, &b.host.ns, ip_b, 4 << 20).unwrap();
    assert!(
        forwarded() - before > 2000,
        "the transfer went through the standalone relay"
    );
    let relay = relay_proc.unwrap();
    assert!(relay.is_running(), "{}", relay.describe());
    cluster.start_again().unwrap();
    support::transfer(&b.host.ns, &a.host.ns, ip_a, 1 << 20).unwrap();
}

/// A `--relay` worker at home and a `--direct` worker in a VPC: the direct
/// worker's private address is useless from the home, so the pair starts
/// on the relay (and may punch through both NATs).
#[test]
fn a_home_worker_reaches_a_vpc_worker() {
    let cluster = Cluster::new("join-mixed").unwrap();
    let home = Worker::new(&cluster, "pi", Nat::Cone).unwrap();
    let mut vpc = cluster
        .net
        .add_lan(&cluster.lab, "vpc", Nat::Cone, 1)
        .unwrap();
    let vm = Worker::on(&cluster, "vm", vpc.pop().unwrap(), true);
    let (agent_pi, _) = home
        .join(&cluster, "pi", Some(&cluster.token().unwrap()))
        .unwrap();
    let (agent_vm, ip_vm) = vm
        .join(&cluster, "vm", Some(&cluster.token().unwrap()))
        .unwrap();
    // Each learns the other's candidates from the control plane too (not
    // only through the relay's disco messages).
    for agent in [&agent_pi, &agent_vm] {
        agent
            .wait_for_log(
                "peer candidates from the control plane",
                Duration::from_secs(20),
            )
            .unwrap_or_else(|e| panic!("{e}\n{}", agent.log_tail(20)));
    }
    let moved = support::transfer(&home.host.ns, &vm.host.ns, ip_vm, 256 * 1024);
    assert!(
        moved.is_ok(),
        "{moved:?}\npi:\n{}\nvm:\n{}",
        agent_pi.log_tail(40),
        agent_vm.log_tail(40)
    );
}

/// The control plane on a VPS with a private interface in the VPC too: the
/// direct workers still reach it and each other, and the control plane
/// reaches them on a direct path.
#[test]
fn a_control_plane_with_an_address_on_the_vpc_reaches_its_workers() {
    let cluster = Cluster::new("join-vpcctl").unwrap();
    let (a, b) = vpc_workers(&cluster);
    let router = a.host.router.clone().unwrap();
    let private = cluster
        .net
        .join_lan(&cluster.control, &router, "eth1", 50)
        .unwrap();
    let [(_agent_a, ip_a), _b] = join_vpc_workers(&cluster, &a, &b);
    support::transfer(&b.host.ns, &cluster.control.ns, CONTROL_IP, 64 * 1024).unwrap();
    support::transfer(&cluster.control.ns, &a.host.ns, ip_a, 64 * 1024).unwrap();
    // The control plane's device reaches the VMs directly (over the VPC or
    // through its NAT gateway, whichever WireGuard roamed to last), not
    // through the relay.
    let relay = format!("{}:3478", cluster.control.ip);
    let endpoints = cluster
        .control
        .ns
        .exec(["wg", "show", &cluster.iface, "endpoints"])
        .unwrap();
    assert!(
        !endpoints.contains(&relay),
        "control {private}: {endpoints}"
    );
}

/// Relay tickets are short-lived and renewed while the node is connected:
/// with 6-second tickets, a relayed pair (symmetric NAT) still moves data
/// long after the tickets it joined with expired.
#[test]
fn relayed_pairs_outlive_their_first_tickets() {
    let cluster = Cluster::with("join-renew", |_, _, _| {
        Ok(vec!["--ticket-lifetime".to_owned(), "6s".to_owned()])
    })
    .unwrap();
    let a = Worker::new(&cluster, "a", Nat::Cone).unwrap();
    let b = Worker::new(&cluster, "b", Nat::Symmetric).unwrap();
    let (agent_a, _) = a
        .join(&cluster, "a", Some(&cluster.token().unwrap()))
        .unwrap();
    let (_agent_b, ip_b) = b
        .join(&cluster, "b", Some(&cluster.token().unwrap()))
        .unwrap();
    std::thread::sleep(Duration::from_secs(10));
    support::transfer(&a.host.ns, &b.host.ns, ip_b, 1 << 20).unwrap();
    assert!(agent_a.log().contains("relay ticket renewed"));
}

/// With no relay at all, direct workers use their private addresses from
/// the first packet, and still reach the control plane outside their VPC.
#[test]
fn without_any_relay_direct_workers_use_their_private_addresses() {
    let cluster =
        Cluster::with("join-norelay", |_, _, _| Ok(vec!["--no-relay".to_owned()])).unwrap();
    let (a, b) = vpc_workers(&cluster);
    let _agents = join_vpc_workers(&cluster, &a, &b);
}
