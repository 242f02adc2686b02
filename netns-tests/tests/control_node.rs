//! The control plane's host running replicas (`warren serve --docker-host`)
//! end to end: the control plane with a Docker daemon of its own (bridge
//! mode, in its namespace) and a `--relay` worker behind a symmetric NAT
//! with its own. A deploy of two replicas spreads them over `control` and
//! the worker; each answers on its `mesh-ip:host-port` from the other
//! host's namespace through the tunnel; `warren logs` and `warren exec`
//! reach the control plane's replica; `warren nodes` lists `control` and
//! `warren node rm control` is refused with one line. (Without
//! `--docker-host` nothing is placed on the control plane: every other
//! workload test runs so.)

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use warren_netns_tests::cluster::{Cluster, DockerNode, BUSYBOX_IMAGE, CONTROL_IP, HTTPD};
use warren_netns_tests::tcp::http_get;
use warren_netns_tests::{
    import_busybox_image, start_dockerd_with, wait_for_value, DockerNet, Dockerd, Nat, Netns,
};

/// The page of the replica at `addr` (its container's hostname), asked from
/// `ns` until it answers.
fn page(ns: &Netns, addr: SocketAddr) -> String {
    wait_for_value(
        &format!("{addr} to answer"),
        Duration::from_secs(10),
        || {
            let answer = http_get(ns, addr).ok()?;
            let (head, body) = answer.split_once("\r\n\r\n")?;
            head.contains(" 200 ").then(|| body.trim().to_owned())
        },
    )
    .unwrap()
}

/// The one running warren container of `dockerd`: its short id, which is
/// its hostname.
fn only_container(dockerd: &Dockerd) -> String {
    let ids = dockerd
        .docker(&["ps", "-q", "--filter", "label=warren.service"])
        .unwrap();
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].to_owned()
}

#[test]
fn the_control_plane_host_runs_replicas_beside_a_relayed_worker() {
    // The control host's daemon, started in its namespace before `warren
    // serve` and named to it with --docker-host.
    let mut daemon = None;
    let cluster = Cluster::on_control_host("ctlnode", |lab, _, host, _| {
        let dockerd = start_dockerd_with(lab, &host.ns, DockerNet::Bridge)?;
        import_busybox_image(&dockerd, BUSYBOX_IMAGE)?;
        let args = vec!["--docker-host".to_owned(), dockerd.host()];
        daemon = Some(dockerd);
        Ok(args)
    })
    .unwrap();
    let control_docker = daemon.take().unwrap();
    let mut pi = DockerNode::behind(&cluster, "pi", Nat::Symmetric).unwrap();
    pi.join(&cluster, Some(&cluster.token().unwrap())).unwrap();

    let command = format!("echo started $HOSTNAME; {HTTPD}");
    let deploy = [
        "deploy",
        "web",
        "--image",
        BUSYBOX_IMAGE,
        "--replicas",
        "2",
        "--port",
        "8080",
        "--health-http",
        "/",
        "--wait",
        "--",
        "sh",
        "-c",
        &command,
    ];
    if let Err(error) = cluster.admin(&deploy) {
        panic!(
            "{error:#}\nserve:\n{}\npi:\n{}",
            cluster.serve.log_tail(40),
            pi.agent_log_tail(30)
        );
    }

    // Spread: one replica on the control plane's host, one on pi.
    let replicas = cluster.replicas().unwrap();
    let on = |node: &str| -> &Value {
        let found = replicas.iter().find(|r| r["node"] == node);
        found.unwrap_or_else(|| panic!("nothing on {node}: {replicas:?}"))
    };
    let (control, worker) = (on("control"), on("pi"));
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    assert_eq!(control["mode"], "control", "{control}");
    assert_eq!(worker["mode"], "relay", "{worker}");
    let address = |replica: &Value| -> SocketAddr {
        replica["addresses"][0].as_str().unwrap().parse().unwrap()
    };
    let (control_addr, worker_addr) = (address(control), address(worker));
    assert_eq!(control_addr.ip(), CONTROL_IP);

    // Each answers through the tunnel: control's from pi's namespace,
    // pi's from the control plane's.
    let control_box = only_container(&control_docker);
    let pi_box = pi.running().unwrap()[0].clone();
    assert_eq!(page(&pi.worker.host.ns, control_addr), control_box);
    assert_eq!(page(&cluster.control.ns, worker_addr), pi_box);

    // Logs and exec of the control plane's replica.
    let id = control["id"].as_str().unwrap();
    let logs = cluster.admin(&["logs", "web", "--replica", id]).unwrap();
    assert_eq!(logs, format!("started {control_box}"));
    let exec = [
        "exec",
        "web",
        "--replica",
        id,
        "--",
        "cat",
        "/www/index.html",
    ];
    assert_eq!(cluster.admin(&exec).unwrap(), control_box);
    let failing = ["exec", "web", "--replica", id, "--", "sh", "-c", "exit 3"];
    assert_eq!(
        cluster.admin_output(&failing).unwrap().status.code(),
        Some(3)
    );

    // `warren nodes` lists the control plane's host; it cannot be removed.
    let nodes: Value = serde_json::from_str(&cluster.admin(&["nodes", "--json"]).unwrap()).unwrap();
    let listed = nodes["nodes"].as_array().unwrap();
    let host = listed.iter().find(|n| n["name"] == "control").unwrap();
    assert_eq!(host["mode"], "control", "{host}");
    assert_eq!(host["online"], true, "{host}");
    assert_eq!(host["replicas"], 1, "{host}");
    assert!(host["machine"]["docker"].is_string(), "{host}");
    let refused = cluster.admin_output(&["node", "rm", "control"]).unwrap();
    let line = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(4), "{line}");
    assert!(line.trim().contains("control plane's own host"), "{line}");
    assert_eq!(line.trim().lines().count(), 1, "{line}");
    assert_eq!(cluster.replicas().unwrap().len(), 2);
}
