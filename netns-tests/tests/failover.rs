//! Self-healing end to end, under a loop of GETs through the control
//! plane's proxy that counts every failed request: a worker machine dies
//! (its agent, its Docker daemon and its containers SIGKILLed) and its
//! replicas come back on the other worker.
//!
//! These run one at a time with the default `--node-timeout` (2 s): the
//! other tests run with a long one, so a loaded machine does not fire
//! failovers there.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use warren_netns_tests::cluster::{deploy_httpd_args, Cluster, DockerNode};
use warren_netns_tests::tcp::http_get_host_within;
use warren_netns_tests::{wait_for, Nat, Netns};

/// One failover test at a time: each kills or cuts off a node on purpose.
static SERIAL: Mutex<()> = Mutex::new(());

/// How long the client waits for an answer: a request the proxy retries
/// on another replica may take a node timeout and a connect timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A GET of `/` for `host` through the proxy: `Ok` for a 200, or what went
/// wrong.
fn get(ns: &Netns, proxy: SocketAddr, host: &str) -> Result<String, String> {
    match http_get_host_within(ns, proxy, host, "/", CLIENT_TIMEOUT) {
        Ok(answer) if answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200") => {
            Ok(answer)
        }
        Ok(answer) => Err(answer.lines().next().unwrap_or_default().to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

fn warren(cluster: &Cluster, args: &[&str]) -> String {
    cluster
        .admin(args)
        .unwrap_or_else(|e| panic!("warren {args:?}: {e:#}"))
}

fn deploy(cluster: &Cluster, name: &str, replicas: u32) {
    let host = format!("{name}.example.test");
    let extra = [
        "--host",
        &host,
        "--health-http",
        "/",
        "--health-interval",
        "500ms",
        "--wait",
    ];
    let args = deploy_httpd_args(name, replicas, &extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    warren(cluster, &args);
}

/// The nodes the healthy replicas of `service` are on, sorted.
fn healthy_on(cluster: &Cluster, service: &str) -> Vec<String> {
    let mut nodes: Vec<String> = cluster
        .replicas()
        .unwrap()
        .iter()
        .filter(|r| r["service"] == service && r["health"] == "healthy")
        .map(|r| r["node"].as_str().unwrap().to_owned())
        .collect();
    nodes.sort();
    nodes
}

#[test]
fn a_dead_workers_replicas_come_back_on_the_other_and_no_request_fails() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let cluster = Cluster::with("failover-kill", |_, _, _| {
        Ok(["--node-timeout", "2s"].map(str::to_owned).to_vec())
    })
    .unwrap();
    let mut vm = DockerNode::in_vpc(&cluster, "vm").unwrap();
    let mut pi = DockerNode::behind(&cluster, "pi", Nat::Cone).unwrap();
    vm.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    pi.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    let client = cluster.net.add_public_host(&cluster.lab, "client").unwrap();
    let proxy = SocketAddr::from((cluster.control.ip, 80));
    // web: a replica on each worker. solo: one, on vm (direct nodes first).
    deploy(&cluster, "web", 2);
    deploy(&cluster, "solo", 1);
    assert_eq!(healthy_on(&cluster, "web"), ["pi", "vm"]);
    assert_eq!(healthy_on(&cluster, "solo"), ["vm"]);

    let stop = AtomicBool::new(false);
    let (served, failures, solo_back) = std::thread::scope(|s| {
        let looping = s.spawn(|| {
            let mut served = 0u32;
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match get(&client.ns, proxy, "web.example.test") {
                    Ok(_) => served += 1,
                    Err(error) => failures.push(error),
                }
            }
            (served, failures)
        });
        std::thread::sleep(Duration::from_millis(500));
        let killed = Instant::now();
        vm.kill_machine().unwrap();
        // solo's only replica died with vm: it serves again once its
        // replacement on pi is healthy.
        wait_for("solo to answer again", Duration::from_secs(30), || {
            get(&client.ns, proxy, "solo.example.test").is_ok()
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.serve.log_tail(40)));
        let solo_back = killed.elapsed();
        wait_for(
            "web's replicas to be healthy on pi",
            Duration::from_secs(30),
            || healthy_on(&cluster, "web") == ["pi", "pi"],
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.serve.log_tail(40)));
        // A few more seconds of requests on the replacements.
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        let (served, failures) = looping.join().unwrap();
        (served, failures, solo_back)
    });
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:?}\n{}",
        failures.len(),
        served as usize + failures.len(),
        cluster.serve.log_tail(40)
    );
    assert!(served >= 50, "the loop ran: {served} requests");
    eprintln!(
        "solo served again {solo_back:?} after vm died; {served} requests to web, none failed"
    );
    let log = cluster.serve.log();
    assert!(log.contains("node offline"), "the control plane said so");
    assert!(
        log.contains("node lost"),
        "and that it replaced vm's replicas"
    );
    let nodes = warren(&cluster, &["nodes"]);
    assert!(nodes.contains("vm"), "vm stays a node, offline: {nodes}");
}
