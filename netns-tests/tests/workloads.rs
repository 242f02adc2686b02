//! Workloads end to end: a control plane, a `--direct` worker in a VPC and
//! a `--relay` worker behind a symmetric NAT, each with its own Docker
//! daemon (bridge mode); services deployed with `warren deploy`, placed on
//! both, answering on `mesh-ip:host-port` through the tunnels and nowhere
//! else, restarted when killed, adopted after an agent restart, scaled and
//! removed.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use warren_netns_tests::cluster::{
    deploy_httpd_args, Cluster, DockerNode, Worker, BUSYBOX_IMAGE as IMAGE, HTTPD,
};
use warren_netns_tests::tcp::http_get;
use warren_netns_tests::{block_udp, wait_for_value, Nat, Netns, Signal};

/// `warren ARGS` on the control host; its output, or its error line and
/// exit status.
fn warren<S: AsRef<std::ffi::OsStr>>(
    cluster: &Cluster,
    args: &[S],
) -> Result<String, (i32, String)> {
    let out = cluster.admin_output(args).unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

fn replicas(cluster: &Cluster) -> Vec<Value> {
    cluster.replicas().unwrap()
}

fn addresses(replica: &Value) -> Vec<SocketAddr> {
    replica["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().parse().unwrap())
        .collect()
}

/// The body of `GET /` on `addr` from `ns`, once it answers (paths over
/// the mesh may take a moment to form).
fn answer_from(ns: &Netns, addr: SocketAddr) -> String {
    wait_for_value(
        &format!("{addr} answering"),
        Duration::from_secs(30),
        || http_get(ns, addr).ok().filter(|a| a.contains(" 200 ")),
    )
    .unwrap()
}

/// The entry named `name` in the list under `key` of `warren COMMAND --json`.
fn listed(cluster: &Cluster, command: &str, key: &str, name: &str) -> Value {
    let listed: Value =
        serde_json::from_str(&warren(cluster, &[command, "--json"]).unwrap()).unwrap();
    listed[key]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn service(cluster: &Cluster, name: &str) -> Value {
    listed(cluster, "services", "services", name)
}

fn node_info(cluster: &Cluster, name: &str) -> Value {
    listed(cluster, "nodes", "nodes", name)
}

#[test]
fn services_run_on_direct_and_relayed_nodes_and_answer_through_the_mesh_only() {
    let cluster = Cluster::new("workloads").unwrap();
    let mut vm = DockerNode::in_vpc(&cluster, "vm").unwrap();
    let mut pi = DockerNode::behind(&cluster, "pi", Nat::Symmetric).unwrap();
    vm.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    pi.join(&cluster, Some(&cluster.token().unwrap())).unwrap();

    // Three replicas over both nodes, healthy when --wait returns.
    let deploy = deploy_httpd_args("web", 3, &["--health-http", "/", "--wait"]);
    warren(&cluster, &deploy).unwrap_or_else(|e| {
        panic!(
            "{e:?}\n{}\n{}",
            vm.agent_log_tail(30),
            pi.agent_log_tail(30)
        )
    });
    let listed = replicas(&cluster);
    assert_eq!(listed.len(), 3, "{listed:?}");
    let mut nodes: Vec<&str> = listed.iter().map(|r| r["node"].as_str().unwrap()).collect();
    nodes.sort();
    nodes.dedup();
    assert_eq!(
        nodes,
        vec!["pi", "vm"],
        "placed on the direct and the relayed node"
    );
    for replica in &listed {
        assert_eq!(
            (replica["state"].as_str(), replica["health"].as_str()),
            (Some("running"), Some("healthy")),
            "{replica}"
        );
        // Through the tunnels, from the control plane's host.
        for addr in addresses(replica) {
            let answer = http_get(&cluster.control.ns, addr).unwrap();
            assert!(
                answer.starts_with("HTTP/1.") && answer.contains(" 200 "),
                "{addr}: {answer}"
            );
        }
    }
    // Published on the mesh address only: not on the nodes' own addresses.
    let on_vm = listed.iter().find(|r| r["node"] == "vm").unwrap();
    let on_pi = listed.iter().find(|r| r["node"] == "pi").unwrap();
    for (node, replica) in [(&vm, on_vm), (&pi, on_pi)] {
        let port = addresses(replica)[0].port();
        let underlay = SocketAddr::from((node.worker.host.ip, port));
        assert!(
            http_get(&node.worker.host.ns, underlay).is_err(),
            "reachable on {underlay}"
        );
    }
    let services: Value =
        serde_json::from_str(&warren(&cluster, &["services", "--json"]).unwrap()).unwrap();
    assert_eq!(services["services"][0]["healthy"], 3, "{services}");
    // Each replica's memory (and CPU, once sampled twice) shows in `ps`.
    wait_for_value(
        "every replica's memory in ps",
        Duration::from_secs(40),
        || {
            let listed = replicas(&cluster);
            listed
                .iter()
                .all(|r| r["memory"].as_u64() > Some(0) && r["cpu_millis"].is_u64())
                .then_some(())
        },
    )
    .unwrap();

    // A killed container is restarted by its agent, and counted.
    let victim = on_vm["id"].as_str().unwrap().to_owned();
    let before = vm.running().unwrap();
    vm.dockerd.docker(&["kill", &before[0]]).unwrap();
    let restarted = wait_for_value(
        "the killed replica restarted",
        Duration::from_secs(30),
        || {
            replicas(&cluster).into_iter().find(|r| {
                r["node"] == "vm" && r["restarts"].as_u64() >= Some(1) && r["health"] == "healthy"
            })
        },
    )
    .unwrap();
    assert!(restarted["id"].as_str().is_some(), "{victim} {restarted}");

    // An agent restart adopts its containers: none is made again.
    let running = vm.running().unwrap();
    vm.agent.take().unwrap().stop().unwrap();
    vm.join(&cluster, None).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        vm.running().unwrap(),
        running,
        "the same containers, no duplicates"
    );

    // A changed spec is a new generation, rolled out replica by replica:
    // here its environment (from a file) and limits, which the containers
    // get.
    let env_file = cluster.lab.dir().join("web.env");
    std::fs::write(&env_file, "# the second version\nVERSION=2\n").unwrap();
    let env_file = env_file.display().to_string();
    let redeploy = deploy_httpd_args(
        "web",
        3,
        &[
            "--health-tcp",
            "--env-file",
            &env_file,
            "--cpu",
            "0.5",
            "--memory",
            "64M",
            "--wait",
        ],
    );
    warren(&cluster, &redeploy).unwrap();
    let inspected = vm
        .dockerd
        .docker(&[
            "inspect",
            "--format",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{json .Config.Env}}",
            &vm.running().unwrap()[0],
        ])
        .unwrap();
    assert!(
        inspected.starts_with("500000000 67108864 ") && inspected.contains("\"VERSION=2\""),
        "{inspected}"
    );
    assert_eq!(service(&cluster, "web")["generation"], 2);
    let listed = replicas(&cluster);
    assert!(
        listed.len() == 3 && listed.iter().all(|r| r["generation"] == 2),
        "{listed:?}"
    );
    for replica in &listed {
        for addr in addresses(replica) {
            answer_from(&cluster.control.ns, addr);
        }
    }

    // `--wait` gives up on a service that never turns healthy: exit 5,
    // with the reason.
    let stuck = deploy_httpd_args(
        "stuck",
        1,
        &[
            "--health-cmd",
            "false",
            "--health-start-period",
            "0s",
            "--wait",
            "--wait-timeout",
            "3s",
        ],
    );
    let (code, line) = warren(&cluster, &stuck).unwrap_err();
    assert!(
        code == 5 && line.contains("stuck is not healthy after 3s"),
        "{code}: {line}"
    );
    warren(&cluster, &["rm", "stuck"]).unwrap();

    // A partition: vm cut off from the control plane (and its relay)
    // while the service grows; once it heals, every replica runs, once.
    let cut = block_udp(&vm.worker.host, &cluster.control).unwrap();
    let before: Vec<Value> = replicas(&cluster).iter().map(|r| r["id"].clone()).collect();
    // Spread over the two: at least one of the three new ones on vm.
    warren(&cluster, &["scale", "web", "6"]).unwrap();
    let grown = replicas(&cluster);
    assert!(
        grown
            .iter()
            .any(|r| r["node"] == "vm" && !before.contains(&r["id"])),
        "a new replica for the cut-off node: {grown:?}"
    );
    std::thread::sleep(Duration::from_secs(5));
    for rule in &cut {
        rule.remove().unwrap();
    }
    wait_for_value(
        "6 running replicas after the partition",
        Duration::from_secs(60),
        || {
            let listed = replicas(&cluster);
            let running = vm.running().unwrap().len() + pi.running().unwrap().len();
            (running == 6 && listed.len() == 6 && listed.iter().all(|r| r["health"] == "healthy"))
                .then_some(())
        },
    )
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{:?}\nvm {:?}\npi {:?}",
            replicas(&cluster),
            vm.running(),
            pi.running()
        )
    });

    // Scale up and down, then remove.
    warren(&cluster, &["scale", "web", "4"]).unwrap();
    wait_for_value("4 running replicas", Duration::from_secs(30), || {
        (vm.running().unwrap().len() + pi.running().unwrap().len() == 4).then_some(())
    })
    .unwrap();
    warren(&cluster, &["scale", "web", "1"]).unwrap();
    wait_for_value("1 running replica", Duration::from_secs(30), || {
        (vm.running().unwrap().len() + pi.running().unwrap().len() == 1).then_some(())
    })
    .unwrap();
    warren(&cluster, &["rm", "web"]).unwrap();
    wait_for_value("no replica", Duration::from_secs(30), || {
        (vm.running().unwrap().is_empty() && pi.running().unwrap().is_empty()).then_some(())
    })
    .unwrap();
    assert!(replicas(&cluster).is_empty());
}

/// Bad input: one line, exit status 4, nothing changed.
#[test]
fn bad_deploys_are_refused_with_one_line_and_change_nothing() {
    let cluster = Cluster::new("workloads-bad").unwrap();
    let mut vm = DockerNode::in_vpc(&cluster, "vm").unwrap();
    vm.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    let cases: [(&[&str], &str); 14] = [
        (
            &["deploy", "web", "--image", IMAGE, "--port", "abc"],
            "invalid value 'abc' for '--port",
        ),
        (
            &["deploy", "web", "--image", IMAGE, "--health-retries", "-1"],
            "invalid value '-1' for '--health-retries",
        ),
        (
            &["deploy", "web", "--image", IMAGE, "--cpu", "abc"],
            "--cpu \"abc\" is not a number of cores",
        ),
        (
            &["deploy", "web", "--image", IMAGE, "--env", "NOEQ"],
            "\"NOEQ\" is not K=V",
        ),
        (
            &["deploy", "web", "--image", IMAGE, "--port", "70000"],
            "port 70000 is not a port number",
        ),
        (
            &["deploy", "web", "--image", IMAGE, "--replicas", "-1"],
            "-1 replicas: the count must be 0 or more",
        ),
        (&["scale", "web", "-2"], "-2 replicas"),
        // A registry on the worker's own loopback, where nothing listens:
        // the node says so, with its daemon's reason.
        (
            &["deploy", "web", "--image", "127.0.0.1:9/nope:1"],
            "node vm cannot get the image: cannot pull image 127.0.0.1:9/nope:1",
        ),
        (
            &["deploy", "Web!", "--image", IMAGE],
            "invalid service name",
        ),
        (&["deploy", "web", "--image", "Bad Image"], "invalid image"),
        (
            &["deploy", "web", "--image", IMAGE, "--port", "0"],
            "port 0",
        ),
        (
            &["deploy", "web", "--image", IMAGE, "--memory", "900G"],
            "more than any node has",
        ),
        (
            &[
                "deploy",
                "web",
                "--image",
                IMAGE,
                "--constraint",
                "zone=home",
            ],
            "invalid constraint",
        ),
        (&["scale", "nope", "2"], "no service is called"),
    ];
    for (args, expected) in cases {
        let (code, line) = warren(&cluster, args).unwrap_err();
        assert_eq!(code, 4, "{args:?}: {line}");
        assert!(
            line.contains(expected) && line.lines().count() == 1,
            "{args:?}: {line}"
        );
    }
    assert!(replicas(&cluster).is_empty());
    let services: Value =
        serde_json::from_str(&warren(&cluster, &["services", "--json"]).unwrap()).unwrap();
    assert_eq!(services["services"], serde_json::json!([]), "{services}");
    assert!(vm.running().unwrap().is_empty());
}

/// Labels and constraints, a failing health check, the control plane down
/// (killed with SIGKILL: replicas keep answering, a container removed by
/// hand comes back, an agent restarted meanwhile brings its mesh and
/// replicas back; afterwards the same state, and new changes apply), then
/// `node rm` of a node with replicas: they move, its agent stops its
/// containers and exits.
#[test]
fn replicas_outlive_the_control_plane_follow_labels_and_move_off_a_removed_node() {
    let mut cluster = Cluster::new("workloads-life").unwrap();
    let vpc = cluster
        .net
        .add_lan(&cluster.lab, "vpc", Nat::Cone, 2)
        .unwrap();
    let [vm_host, box_host]: [_; 2] = vpc.try_into().ok().unwrap();
    let mut vm =
        DockerNode::new(&cluster, "vm", Worker::on(&cluster, "vm", vm_host, true)).unwrap();
    let mut pi = DockerNode::behind(&cluster, "pi", Nat::Symmetric).unwrap();
    vm.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    pi.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    // A node without a Docker daemon beside vm: a direct path to it that
    // needs no relay, to reach vm's replica while the control plane (and
    // its embedded relay) is down.
    let neighbour = Worker::on(&cluster, "box", box_host, true);
    let (_box_agent, _) = neighbour
        .join(&cluster, "box", Some(&cluster.token().unwrap()))
        .unwrap();

    // Labels steer placement; `nodes` shows them with the machine.
    let labelled = warren(&cluster, &["node", "label", "pi", "zone=home"]).unwrap();
    assert_eq!(labelled.trim(), "pi: zone=home");
    let deploy_home = |cluster: &Cluster| {
        warren(
            cluster,
            &[
                "deploy",
                "home",
                "--image",
                IMAGE,
                "--replicas",
                "2",
                "--port",
                "8080",
                "--constraint",
                "zone==home",
                "--health-http",
                "/",
                "--wait",
                "--",
                "sh",
                "-c",
                HTTPD,
            ],
        )
    };
    deploy_home(&cluster).unwrap();
    let home: Vec<Value> = replicas(&cluster)
        .into_iter()
        .filter(|r| r["service"] == "home")
        .collect();
    assert!(
        home.len() == 2 && home.iter().all(|r| r["node"] == "pi"),
        "{home:?}"
    );
    let info = node_info(&cluster, "pi");
    assert_eq!(
        (info["labels"]["zone"].as_str(), info["replicas"].as_u64()),
        (Some("home"), Some(2)),
        "{info}"
    );
    assert_eq!(info["machine"]["arch"], "amd64", "{info}");
    assert!(info["machine"]["memory"].as_u64() > Some(0), "{info}");

    // A health check that starts failing: the replica is restarted.
    let sick = format!("touch /tmp/ok && {HTTPD}");
    warren(
        &cluster,
        &[
            "deploy",
            "sick",
            "--image",
            IMAGE,
            "--constraint",
            "node!=pi",
            "--port",
            "8080",
            "--health-cmd",
            "cat /tmp/ok",
            "--health-interval",
            "300ms",
            "--health-retries",
            "2",
            "--wait",
            "--",
            "sh",
            "-c",
            &sick,
        ],
    )
    .unwrap();
    let first = vm.running().unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    vm.dockerd
        .docker(&["exec", &first[0], "busybox", "rm", "/tmp/ok"])
        .unwrap();
    // `ps` says so while its container stops (httpd as PID 1 ignores
    // SIGTERM: the stop takes its grace period).
    wait_for_value(
        "the replica shown unhealthy",
        Duration::from_secs(20),
        || {
            replicas(&cluster)
                .into_iter()
                .find(|r| r["service"] == "sick" && r["health"] == "unhealthy")
        },
    )
    .unwrap();
    wait_for_value(
        "the unhealthy replica restarted",
        Duration::from_secs(30),
        || {
            replicas(&cluster).into_iter().find(|r| {
                r["service"] == "sick"
                    && r["restarts"].as_u64() >= Some(1)
                    && r["health"] == "healthy"
            })
        },
    )
    .unwrap();
    assert_ne!(vm.running().unwrap(), first, "a new container");
    let listed = replicas(&cluster);
    let restarted = listed.iter().find(|r| r["service"] == "sick").unwrap();
    assert_eq!(
        restarted["restarts"], 1,
        "one restart, counted once: {restarted}"
    );

    // The control plane dies.
    let sick_addr = {
        let listed = replicas(&cluster);
        let on_vm = listed.iter().find(|r| r["service"] == "sick").unwrap();
        addresses(on_vm)[0]
    };

    answer_from(&neighbour.host.ns, sick_addr);
    let before = (service(&cluster, "home"), replicas(&cluster).len());
    cluster.serve.signal(Signal::Kill).unwrap();
    cluster.serve.wait_exit(Duration::from_secs(5)).unwrap();
    // pi's replicas keep answering (on pi: the relay that carried its
    // traffic was the control plane's), vm's across the tunnel from box.
    let home_addrs: Vec<SocketAddr> = home.iter().flat_map(addresses).collect();
    for addr in &home_addrs {
        answer_from(&pi.worker.host.ns, *addr);
    }
    answer_from(&neighbour.host.ns, sick_addr);
    // A container removed by hand comes back.
    let removed = vm.running().unwrap();
    vm.dockerd.docker(&["rm", "-f", &removed[0]]).unwrap();
    wait_for_value(
        "the removed container recreated",
        Duration::from_secs(30),
        || {
            let now = vm.running().unwrap();
            (now.len() == 1 && now != removed).then_some(())
        },
    )
    .unwrap();
    // An agent restarted meanwhile brings its mesh and replicas back.
    let running = vm.running().unwrap();
    vm.agent.take().unwrap().stop().unwrap();
    vm.join(&cluster, None).unwrap();
    answer_from(&neighbour.host.ns, sick_addr);
    assert_eq!(vm.running().unwrap(), running, "adopted, not made again");

    // Back: the same state, and a change made now reaches the agents.
    cluster.start_again().unwrap();
    let after = wait_for_value("the same state", Duration::from_secs(30), || {
        let now = (service(&cluster, "home"), replicas(&cluster).len());
        (now == before).then_some(now)
    });
    assert!(after.is_ok(), "{before:?}");
    warren(&cluster, &["scale", "home", "3"]).unwrap();
    wait_for_value("3 home replicas on pi", Duration::from_secs(30), || {
        (pi.running().unwrap().len() == 3).then_some(())
    })
    .unwrap();

    // `node rm` of pi: its replicas move to vm once it is labelled too, and
    // the agent stops its containers and exits.
    warren(&cluster, &["node", "label", "vm", "zone=home"]).unwrap();
    let removed = warren(&cluster, &["node", "rm", "pi", "--timeout", "90s"]);
    assert!(
        removed.is_ok(),
        "{removed:?}\n{}",
        pi.agent.as_ref().unwrap().log_tail(20)
    );
    let agent = pi.agent.take().unwrap();
    agent.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(
        pi.running().unwrap().is_empty(),
        "pi stopped its containers"
    );
    let home: Vec<Value> = replicas(&cluster)
        .into_iter()
        .filter(|r| r["service"] == "home")
        .collect();
    assert!(
        home.len() == 3 && home.iter().all(|r| r["node"] == "vm"),
        "{home:?}"
    );
    for addr in home.iter().flat_map(addresses) {
        answer_from(&cluster.control.ns, addr);
    }
    assert_eq!(node_info(&cluster, "pi"), Value::Null);
    // A label comes off again.
    let unlabelled = warren(&cluster, &["node", "label", "vm", "--rm", "zone"]).unwrap();
    assert_eq!(unlabelled.trim(), "vm: -", "{unlabelled}");
    let info = node_info(&cluster, "vm");
    assert_eq!(info["labels"].get("zone"), None, "{info}");
}
