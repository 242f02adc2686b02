//! Self-healing and change without downtime end to end, each under a loop
//! of GETs through the control plane's proxy that counts every failed
//! request: a worker machine dies (its agent, its Docker daemon and its
//! containers SIGKILLed), or is cut off the network and comes back, and its
//! replicas come back on the other worker; a worker is drained for
//! maintenance and activated again.
//!
//! These run one at a time with the default `--node-timeout` (2 s): the
//! other tests run with a long one, so a loaded machine does not fire
//! failovers there.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use warren_netns_tests::cluster::{deploy_httpd_args, Cluster, DockerNode, BUSYBOX_IMAGE};
use warren_netns_tests::impair::cut_off;
use warren_netns_tests::tcp::http_get_ok;
use warren_netns_tests::{wait_for, Host, Nat, Netns};

/// One failover test at a time: each kills or cuts off a node on purpose.
static SERIAL: Mutex<()> = Mutex::new(());

/// How long the client waits for an answer: a request the proxy retries
/// on another replica may take a node timeout and a connect timeout.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A GET of `/` for `host` through the proxy: `Ok` for a 2xx, or what went
/// wrong.
fn get(ns: &Netns, proxy: SocketAddr, host: &str) -> Result<String, String> {
    http_get_ok(ns, proxy, host, "/", CLIENT_TIMEOUT)
}

fn warren(cluster: &Cluster, args: &[&str]) -> String {
    cluster
        .admin(args)
        .unwrap_or_else(|e| panic!("warren {args:?}: {e:#}"))
}

/// The node `name` as `warren nodes --json` lists it.
fn node(cluster: &Cluster, name: &str) -> Value {
    let nodes: Value = serde_json::from_str(&warren(cluster, &["nodes", "--json"])).unwrap();
    nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no node {name}: {nodes}"))
}

/// The flags every service here is deployed with: routed by the proxy as
/// `NAME.example.test`, health-checked every 500 ms, waited for.
fn routed(name: &str) -> Vec<String> {
    [
        "--host",
        &format!("{name}.example.test"),
        "--health-http",
        "/",
        "--health-interval",
        "500ms",
        "--wait",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Deploys `name` as the lab's httpd (answering with its hostname).
fn deploy(cluster: &Cluster, name: &str, replicas: u32) {
    let extra = routed(name);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let args = deploy_httpd_args(name, replicas, &extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    warren(cluster, &args);
}

/// The script of an httpd whose page says `version`, after `delay_secs`.
fn version_script(version: &str, delay_secs: u32) -> String {
    format!(
        "sleep {delay_secs} && echo {version} > /www/index.html && exec httpd -f -p 8080 -h /www"
    )
}

/// Deploys `name` as an httpd whose page says `version`, and waits for it.
fn deploy_version(cluster: &Cluster, name: &str, replicas: u32, version: &str) {
    deploy_script(cluster, name, replicas, &version_script(version, 0), true);
}

/// Deploys `name` running `script`, routed; waits for it if `wait`.
fn deploy_script(cluster: &Cluster, name: &str, replicas: u32, script: &str, wait: bool) {
    deploy_script_with(cluster, name, replicas, script, wait, &[]);
}

/// [`deploy_script`] with `extra` flags besides (which replace
/// `--health-http /` if they have one).
fn deploy_script_with(
    cluster: &Cluster,
    name: &str,
    replicas: u32,
    script: &str,
    wait: bool,
    extra: &[&str],
) {
    let replicas = replicas.to_string();
    let host = format!("{name}.example.test");
    let mut args = vec![
        "deploy",
        name,
        "--image",
        BUSYBOX_IMAGE,
        "--replicas",
        &replicas,
    ];
    args.extend([
        "--port",
        "8080",
        "--host",
        &host,
        "--health-interval",
        "500ms",
    ]);
    if !extra.contains(&"--health-http") {
        args.extend(["--health-http", "/"]);
    }
    if wait {
        args.push("--wait");
    }
    args.extend(extra);
    args.extend(["--", "sh", "-c", script]);
    warren(cluster, &args);
}

/// The cluster's last 1000 events, oldest first.
fn events(cluster: &Cluster) -> Vec<Value> {
    warren(cluster, &["events", "--json", "--limit", "1000"])
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Requests back to back for one host through the proxy, on a thread of
/// their own, counting the answered ones and keeping what went wrong.
struct LoadLoop {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u32, Vec<String>)>,
}

impl LoadLoop {
    fn start(ns: &Netns, proxy: SocketAddr, host: &str) -> LoadLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns, host, stopping) = (ns.clone(), host.to_owned(), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut served = 0u32;
            let mut failures = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                match get(&ns, proxy, &host) {
                    Ok(_) => served += 1,
                    Err(error) => failures.push(error),
                }
            }
            (served, failures)
        });
        LoadLoop { stop, thread }
    }

    /// Stops the loop: how many requests were answered, and the failures.
    fn stop(self) -> (u32, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// The port the client host takes the control plane's webhook posts on.
const HOOK_PORT: u16 = 9000;

/// The bodies of the webhook posts the client host receives, until dropped.
struct WebhookReceiver {
    bodies: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl WebhookReceiver {
    fn start(host: &Host) -> WebhookReceiver {
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (keep, stopping) = (Arc::clone(&bodies), Arc::clone(&stop));
        let listener = host
            .ns
            .run_in(|| std::net::TcpListener::bind(("0.0.0.0", HOOK_PORT)))
            .unwrap()
            .unwrap();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(body) = take_post(stream) {
                            keep.lock().unwrap().push(body);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        WebhookReceiver { bodies, stop }
    }

    /// The events posted so far.
    fn events(&self) -> Vec<Value> {
        let bodies = self.bodies.lock().unwrap();
        bodies
            .iter()
            .map(|b| serde_json::from_str(b).unwrap())
            .collect()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Reads one POST's body from `stream` and answers 204.
fn take_post(stream: std::net::TcpStream) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("content-length:") {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    std::io::Read::read_exact(&mut reader, &mut body).ok()?;
    let mut stream = reader.into_inner();
    std::io::Write::write_all(&mut stream, b"HTTP/1.1 204 No Content\r\n\r\n").ok()?;
    String::from_utf8(body).ok()
}

/// A cluster with the default node timeout, a `--direct` worker `vm` and a
/// `--relay` worker `pi` behind a symmetric NAT offering one core, a client
/// on the lab internet, and two services routed by the proxy: `web` with a
/// replica on each worker, `solo` with one, on vm (the less loaded).
struct TwoWorkers {
    cluster: Cluster,
    vm: DockerNode,
    pi: DockerNode,
    client: Host,
    proxy: SocketAddr,
}

impl TwoWorkers {
    fn new(tag: &str) -> TwoWorkers {
        let mut client = None;
        let cluster = Cluster::with(tag, |lab, net, _| {
            let host = net.add_public_host(lab, "client")?;
            let hook = format!("http://{}:{HOOK_PORT}/warren", host.ip);
            client = Some(host);
            Ok(["--node-timeout", "2s", "--webhook", &hook]
                .map(str::to_owned)
                .to_vec())
        })
        .unwrap();
        let client = client.unwrap();
        let mut vm = DockerNode::in_vpc(&cluster, "vm").unwrap();
        let mut pi = DockerNode::behind(&cluster, "pi", Nat::Symmetric).unwrap();
        // One core to vm's two: with a web replica each, pi is the more
        // loaded, so solo goes to vm even when the control plane reaches
        // pi directly (both then rank as direct nodes).
        pi.worker
            .extra
            .extend(["--capacity-cpu", "1"].map(str::to_owned));
        vm.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
        pi.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
        let proxy = SocketAddr::from((cluster.control.ip, 80));
        deploy(&cluster, "web", 2);
        deploy(&cluster, "solo", 1);
        assert_eq!(cluster.healthy_on("web").unwrap(), ["pi", "vm"]);
        assert_eq!(cluster.healthy_on("solo").unwrap(), ["vm"]);
        TwoWorkers {
            cluster,
            vm,
            pi,
            client,
            proxy,
        }
    }

    /// Waits until solo answers again and web is healthy on pi alone:
    /// vm's replicas were replaced there. Returns when solo answered.
    fn replaced_on_pi(&self, since: Instant) -> Duration {
        let log = || self.cluster.serve.log_tail(40);
        wait_for("solo to answer again", Duration::from_secs(30), || {
            get(&self.client.ns, self.proxy, "solo.example.test").is_ok()
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", log()));
        let solo_back = since.elapsed();
        wait_for(
            "web's replicas to be healthy on pi",
            Duration::from_secs(30),
            || self.cluster.healthy_on("web").unwrap() == ["pi", "pi"],
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", log()));
        solo_back
    }

    /// Runs `change` under a loop of GETs for `host`, which must all
    /// succeed.
    fn under_load(&self, host: &str, change: impl FnOnce()) {
        let load = LoadLoop::start(&self.client.ns, self.proxy, host);
        std::thread::sleep(Duration::from_millis(500));
        change();
        self.assert_no_failures(load.stop());
    }

    fn assert_no_failures(&self, (served, failures): (u32, Vec<String>)) {
        assert!(
            failures.is_empty(),
            "{} of {} requests failed: {failures:?}\n{}",
            failures.len(),
            served as usize + failures.len(),
            self.cluster.serve.log_tail(40)
        );
        assert!(served >= 50, "the loop ran: {served} requests");
    }
}

#[test]
fn a_dead_workers_replicas_come_back_on_the_other_and_no_request_fails() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let lab = TwoWorkers::new("failover-kill");
    let hooks = WebhookReceiver::start(&lab.client);
    let mut follower = lab
        .cluster
        .admin_command(&["events", "--follow", "--json", "--limit", "0"])
        .unwrap()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let followed = BufReader::new(follower.stdout.take().unwrap());
    let load = LoadLoop::start(&lab.client.ns, lab.proxy, "web.example.test");
    std::thread::sleep(Duration::from_millis(500));
    let killed = lab.vm.kill_machine().unwrap();
    // solo's only replica died with vm: it serves again once its
    // replacement on pi is healthy.
    let solo_back = lab.replaced_on_pi(killed);
    // A few more seconds of requests on the replacements.
    std::thread::sleep(Duration::from_secs(2));
    lab.assert_no_failures(load.stop());
    eprintln!("solo served again {solo_back:?} after vm died");
    let log = lab.cluster.serve.log();
    assert!(log.contains("node offline"), "the control plane said so");
    assert!(
        log.contains("node lost"),
        "and that it replaced vm's replicas"
    );
    let vm = node(&lab.cluster, "vm");
    assert_eq!(vm["online"], false, "vm stays a node, offline: {vm}");

    // `warren events --follow` saw it happen: vm offline, then lost, and
    // solo placed again on pi.
    let _ = follower.kill();
    let _ = follower.wait();
    let events: Vec<Value> = followed
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect();
    let at = |kind: &str, node: &str, service: Option<&str>| {
        events
            .iter()
            .position(|e| {
                e["kind"] == kind && e["node"] == node && service.is_none_or(|s| e["service"] == s)
            })
            .unwrap_or_else(|| panic!("no {kind} of {node} in {events:#?}"))
    };
    let offline = at("node_offline", "vm", None);
    let lost = at("node_lost", "vm", None);
    let placed = at("replica_placed", "pi", Some("solo"));
    assert!(offline < lost && lost < placed, "in order: {events:#?}");
    // And `--webhook` posted the same events, in the same order.
    let ids = |events: &[Value]| -> Vec<u64> {
        events.iter().map(|e| e["id"].as_u64().unwrap()).collect()
    };
    let followed_ids = ids(&events);
    wait_for(
        "the webhook to have every event",
        Duration::from_secs(10),
        || {
            let posted = ids(&hooks.events());
            followed_ids.iter().all(|id| posted.contains(id))
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}: {:#?}", hooks.events()));
    let posted = ids(&hooks.events());
    assert!(
        posted.windows(2).all(|w| w[0] < w[1]),
        "in order: {posted:?}"
    );
}

#[test]
fn a_cut_off_worker_is_replaced_and_leaves_no_surplus_when_it_returns() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let lab = TwoWorkers::new("failover-cut");
    let load = LoadLoop::start(&lab.client.ns, lab.proxy, "web.example.test");
    std::thread::sleep(Duration::from_millis(500));
    let cut = Instant::now();
    let rules = cut_off(&lab.vm.worker.host).unwrap();
    lab.replaced_on_pi(cut);
    // vm's containers kept running while it was cut off: an agent that
    // cannot reach the control plane stops nothing.
    assert_eq!(lab.vm.running().unwrap().len(), 2, "web's and solo's");
    for rule in &rules {
        rule.remove().unwrap();
    }
    // Back: its replicas were replaced, so it stops them, and neither
    // service ever has fewer healthy replicas than asked meanwhile.
    wait_for(
        "vm to stop its replaced containers",
        Duration::from_secs(30),
        || {
            assert!(
                lab.cluster.healthy_on("web").unwrap().len() >= 2
                    && lab.cluster.healthy_on("solo").unwrap().len() == 1,
                "a dip while vm came back: {:?}",
                lab.cluster.replicas().unwrap()
            );
            lab.vm.running().is_ok_and(|ids| ids.is_empty())
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.vm.agent_log_tail(30)));
    std::thread::sleep(Duration::from_secs(1));
    lab.assert_no_failures(load.stop());
    let services: Value =
        serde_json::from_str(&warren(&lab.cluster, &["services", "--json"])).unwrap();
    for service in services["services"].as_array().unwrap() {
        assert_eq!(
            service["running"], service["desired"],
            "no surplus: {service}"
        );
    }
    let vm = node(&lab.cluster, "vm");
    assert_eq!(vm["online"], true, "vm is online again: {vm}");
}

#[test]
fn draining_the_relayed_worker_under_load_fails_no_request_and_activate_undoes_it() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let lab = TwoWorkers::new("drain");
    let load = LoadLoop::start(&lab.client.ns, lab.proxy, "web.example.test");
    std::thread::sleep(Duration::from_millis(500));
    let said = warren(&lab.cluster, &["node", "drain", "pi", "--wait"]);
    assert_eq!(
        lab.cluster.healthy_on("web").unwrap(),
        ["vm", "vm"],
        "{said}"
    );
    std::thread::sleep(Duration::from_secs(1));
    lab.assert_no_failures(load.stop());
    wait_for(
        "pi to stop web's container",
        Duration::from_secs(30),
        || lab.pi.running().is_ok_and(|ids| ids.is_empty()),
    )
    .unwrap();
    let nodes = warren(&lab.cluster, &["nodes"]);
    assert!(nodes.contains("yes (drained)"), "{nodes}");

    // Nothing new goes to a drained node (two replicas would spread over
    // both nodes otherwise); once active again, it does.
    let args = deploy_httpd_args("more", 2, &["--wait"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    warren(&lab.cluster, &args);
    assert_eq!(lab.cluster.healthy_on("more").unwrap(), ["vm", "vm"]);
    warren(&lab.cluster, &["node", "activate", "pi"]);
    warren(&lab.cluster, &["scale", "more", "3"]);
    wait_for("a replica of more on pi", Duration::from_secs(30), || {
        lab.cluster.healthy_on("more").unwrap() == ["pi", "vm", "vm"]
    })
    .unwrap();

    // --force stops what is on the node at once: more's replica on pi goes
    // without waiting for its replacement, which then starts on vm.
    let said = warren(&lab.cluster, &["node", "drain", "pi", "--force", "--wait"]);
    assert!(said.is_empty(), "progress goes to stderr: {said}");
    wait_for(
        "pi to stop more's container",
        Duration::from_secs(30),
        || lab.pi.running().is_ok_and(|ids| ids.is_empty()),
    )
    .unwrap();
    wait_for(
        "more to be whole again on vm",
        Duration::from_secs(30),
        || lab.cluster.healthy_on("more").unwrap() == ["vm", "vm", "vm"],
    )
    .unwrap();

    // `warren leave`, run on pi under load: web's replica there moves to
    // vm, then pi is removed and its agent exits; no request fails.
    warren(&lab.cluster, &["node", "activate", "pi"]);
    warren(&lab.cluster, &["scale", "web", "3"]);
    wait_for("a replica of web on pi", Duration::from_secs(30), || {
        lab.cluster.healthy_on("web").unwrap() == ["pi", "vm", "vm"]
    })
    .unwrap();
    let bin = warren_netns_tests::wg::warren_bin().unwrap();
    let dir = lab.pi.worker.dir.display().to_string();
    lab.under_load("web.example.test", || {
        let said = lab
            .pi
            .worker
            .host
            .ns
            .exec([
                bin.as_os_str(),
                "leave".as_ref(),
                "--data-dir".as_ref(),
                dir.as_ref(),
            ])
            .unwrap_or_else(|e| panic!("warren leave: {e:#}\n{}", lab.pi.agent_log_tail(30)));
        assert!(said.is_empty(), "progress goes to stderr: {said}");
    });
    assert_eq!(lab.cluster.healthy_on("web").unwrap(), ["vm", "vm", "vm"]);
    assert!(
        node_gone(&lab.cluster, "pi"),
        "{}",
        warren(&lab.cluster, &["nodes"])
    );
    lab.pi
        .agent()
        .unwrap()
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("pi's agent runs on: {e:#}"));
}

/// Whether `warren nodes` no longer lists `name`.
fn node_gone(cluster: &Cluster, name: &str) -> bool {
    let nodes: Value = serde_json::from_str(&warren(cluster, &["nodes", "--json"])).unwrap();
    nodes["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["name"] != name)
}

#[test]
fn a_rolling_update_and_a_rollback_under_load_fail_no_request_and_history_says_so() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let lab = TwoWorkers::new("rollout");
    deploy_version(&lab.cluster, "site", 2, "v1");
    let body = |host: &str| {
        let answer = get(&lab.client.ns, lab.proxy, host).unwrap();
        answer
            .rsplit("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    assert_eq!(body("site.example.test"), "v1");
    let every_answer = |version: &str| {
        for _ in 0..20 {
            assert_eq!(body("site.example.test"), version, "every answer after it");
        }
    };
    // A new generation, both new replicas started at once
    // (`--update-parallelism 2`), each old one going once a new one is
    // healthy.
    lab.under_load("site.example.test", || {
        deploy_script_with(
            &lab.cluster,
            "site",
            2,
            &version_script("v2", 0),
            true,
            &["--update-parallelism", "2"],
        );
    });
    every_answer("v2");
    let site = || {
        let services: Value =
            serde_json::from_str(&warren(&lab.cluster, &["services", "--json"])).unwrap();
        services["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "site")
            .unwrap()
            .clone()
    };
    assert_eq!(site()["generation"], 2, "{}", site());
    assert_eq!(site()["healthy"], 2, "{}", site());
    // The last old replica may still be draining its requests in flight.
    wait_for(
        "the old replicas to be gone",
        Duration::from_secs(15),
        || site()["running"] == 2,
    )
    .unwrap_or_else(|e| panic!("{e:#}: {}", site()));

    // Rolled back under load the same way: generation 3 runs v1's spec.
    lab.under_load("site.example.test", || {
        warren(&lab.cluster, &["rollback", "site", "--wait"]);
    });
    every_answer("v1");
    let history: Value =
        serde_json::from_str(&warren(&lab.cluster, &["history", "site", "--json"])).unwrap();
    let generations = history["generations"].as_array().unwrap();
    let summary: Vec<(u64, &str, Option<&str>)> = generations
        .iter()
        .map(|g| {
            (
                g["generation"].as_u64().unwrap(),
                g["outcome"].as_str().unwrap(),
                g["note"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "completed", None),
            (2, "completed", None),
            (3, "completed", Some("rollback to 1"))
        ],
        "{history}"
    );
    assert_eq!(generations[1]["changed"], serde_json::json!(["command"]));
    let table = warren(&lab.cluster, &["history", "site"]);
    assert!(table.contains("rollback to 1: command"), "{table}");

    // A v3 whose health check fails never serves: past its healthy
    // deadline it is rolled back on its own, with no failed request.
    lab.under_load("site.example.test", || {
        deploy_script_with(
            &lab.cluster,
            "site",
            2,
            &version_script("v3", 0),
            false,
            &["--health-http", "/missing", "--healthy-deadline", "15s"],
        );
        wait_for("v3 to be rolled back", Duration::from_secs(60), || {
            let history: Value =
                serde_json::from_str(&warren(&lab.cluster, &["history", "site", "--json"]))
                    .unwrap();
            history["generations"][4]["outcome"] == "completed"
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e:#}\n{}\n{}\n{}",
                warren(&lab.cluster, &["history", "site"]),
                warren(&lab.cluster, &["ps", "site"]),
                lab.cluster.serve.log_tail(30)
            )
        });
    });
    every_answer("v1");
    let history: Value =
        serde_json::from_str(&warren(&lab.cluster, &["history", "site", "--json"])).unwrap();
    assert_eq!(
        history["generations"][3]["outcome"], "rolled_back",
        "{history}"
    );
    assert_eq!(
        history["generations"][4]["note"], "automatic rollback of 4 to 3",
        "{history}"
    );
}

#[test]
fn a_control_plane_killed_mid_rollout_finishes_it_after_restart_and_stops_nothing_early() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let mut lab = TwoWorkers::new("rollout-restart");
    deploy_version(&lab.cluster, "site", 2, "v1");
    // v2 answers only after 4 s: its rollout is under way when the control
    // plane is killed.
    deploy_script(&lab.cluster, "site", 2, &version_script("v2", 4), false);
    wait_for("a replica of generation 2", Duration::from_secs(10), || {
        lab.cluster
            .replicas()
            .unwrap()
            .iter()
            .any(|r| r["service"] == "site" && r["generation"] == 2)
    })
    .unwrap();
    let last: Value =
        serde_json::from_str(warren(&lab.cluster, &["events", "--json", "--limit", "1"]).trim())
            .unwrap();
    let before_kill = last["id"].as_u64().unwrap();
    lab.cluster.kill_and_restart().unwrap();

    // Back (the proxy died with it): from its first answer on, no request
    // fails while the restarted control plane finishes the rollout.
    wait_for("the proxy to answer again", Duration::from_secs(30), || {
        get(&lab.client.ns, lab.proxy, "site.example.test").is_ok()
    })
    .unwrap();
    let generation_2 = |lab: &TwoWorkers| -> String {
        let history: Value =
            serde_json::from_str(&warren(&lab.cluster, &["history", "site", "--json"])).unwrap();
        history["generations"][1]["outcome"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    lab.under_load("site.example.test", || {
        wait_for("generation 2 to roll out", Duration::from_secs(60), || {
            generation_2(&lab) == "completed"
        })
        .unwrap_or_else(|e| panic!("{e:#}\n{}", lab.cluster.serve.log_tail(40)));
    });
    let answer = get(&lab.client.ns, lab.proxy, "site.example.test").unwrap();
    assert!(answer.trim_end().ends_with("v2"), "{answer}");

    // Nothing that served was stopped early: the restarted control plane
    // removed each v1 replica only once a v2 one was healthy.
    let events = events(&lab.cluster);
    let generation_of = |replica: &Value| -> u64 {
        events
            .iter()
            .find(|e| e["kind"] == "replica_placed" && e["replica"] == *replica)
            .map_or(0, |e| e["generation"].as_u64().unwrap())
    };
    let (mut v2_healthy, mut v1_stopped) = (0, 0);
    for event in events
        .iter()
        .filter(|e| e["id"].as_u64().unwrap() > before_kill)
    {
        match (
            event["kind"].as_str().unwrap(),
            generation_of(&event["replica"]),
        ) {
            ("replica_healthy", 2) => v2_healthy += 1,
            ("replica_stopped", 1) => {
                v1_stopped += 1;
                assert!(
                    v1_stopped <= v2_healthy,
                    "a v1 replica stopped before a v2 one served: {events:#?}"
                );
            }
            _ => {}
        }
    }
    assert!(
        v1_stopped >= 1,
        "v1 replicas went after the restart: {events:#?}"
    );
}

/// The script of an httpd whose page says `version` and whose
/// `/cgi-bin/slow` answers `version-slow` after `secs`.
fn slow_script(version: &str, secs: u32) -> String {
    format!(
        "mkdir -p /www/cgi-bin && echo {version} > /www/index.html && \
         printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\nsleep {secs}\\necho {version}-slow\\n' \
         > /www/cgi-bin/slow && chmod +x /www/cgi-bin/slow && exec httpd -f -p 8080 -h /www"
    )
}

#[test]
fn a_request_in_flight_finishes_before_its_replica_stops_and_a_stop_first_rollout_keeps_its_pace() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let lab = TwoWorkers::new("draining");
    let pinned = ["--constraint", "node==vm", "--stop-grace", "40s"];
    deploy_script_with(
        &lab.cluster,
        "slow",
        1,
        &slow_script("v1", 12),
        true,
        &pinned,
    );
    let (ns, proxy) = (lab.client.ns.clone(), lab.proxy);
    let in_flight = std::thread::spawn(move || {
        warren_netns_tests::tcp::http_get_host_within(
            &ns,
            proxy,
            "slow.example.test",
            "/cgi-bin/slow",
            Duration::from_secs(60),
        )
    });
    std::thread::sleep(Duration::from_secs(1));
    // v2 serves within a few seconds; v1's replica leaves the routes then,
    // but stops only once the slow request to it has been answered (which
    // `deploy --wait` would wait for).
    deploy_script_with(
        &lab.cluster,
        "slow",
        1,
        &slow_script("v2", 12),
        false,
        &pinned,
    );
    let old = warren_netns_tests::wait_for_value(
        "v1's replica to drain",
        Duration::from_secs(30),
        || {
            let replicas = lab.cluster.replicas().unwrap();
            let old = replicas
                .into_iter()
                .find(|r| r["service"] == "slow" && r["generation"] == 1)
                .unwrap_or_else(|| panic!("v1's replica stopped with a request in flight"));
            (old["draining"] == true).then_some(old)
        },
    )
    .unwrap();
    assert!(warren(&lab.cluster, &["ps", "slow"]).contains("draining"));
    let answer = in_flight.join().unwrap().unwrap();
    let answered = Instant::now();
    // busybox's CGI answers HTTP/1.0, and the proxy passes that on.
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.trim_end().ends_with("v1-slow"), "{answer}");
    wait_for("v1's replica to stop", Duration::from_secs(30), || {
        lab.cluster
            .replicas()
            .unwrap()
            .iter()
            .all(|r| r["id"] != old["id"])
    })
    .unwrap();
    assert!(
        answered.elapsed() < Duration::from_secs(20),
        "stopped {:?} after its last request, not once idle",
        answered.elapsed()
    );

    // Stop-first with a delay, under load: each old replica stops before
    // its replacement is placed, and the second batch starts no sooner
    // than 3 s after the first turned healthy.
    deploy_version(&lab.cluster, "paced", 3, "v1");
    let since = events(&lab.cluster)
        .last()
        .map_or(0, |e| e["id"].as_u64().unwrap());
    lab.under_load("paced.example.test", || {
        deploy_script_with(
            &lab.cluster,
            "paced",
            3,
            &version_script("v2", 0),
            true,
            &["--update-order", "stop-first", "--update-delay", "3s"],
        );
    });
    let steps: Vec<(String, u64)> = events(&lab.cluster)
        .into_iter()
        .filter(|e| e["id"].as_u64().unwrap() > since && e["service"] == "paced")
        .filter_map(|e| {
            let kind = e["kind"].as_str()?;
            matches!(
                kind,
                "replica_placed" | "replica_healthy" | "replica_stopped"
            )
            .then(|| (kind.to_owned(), e["at_ms"].as_u64().unwrap()))
        })
        .collect();
    assert_eq!(
        steps.first().map(|(kind, _)| kind.as_str()),
        Some("replica_stopped"),
        "an old replica stopped first: {steps:?}"
    );
    let times_of = |wanted: &str| -> Vec<u64> {
        steps
            .iter()
            .filter(|(kind, _)| kind == wanted)
            .map(|(_, at)| *at)
            .collect()
    };
    let (placed, healthy) = (times_of("replica_placed"), times_of("replica_healthy"));
    assert_eq!((placed.len(), healthy.len()), (3, 3), "{steps:?}");
    assert!(
        placed[1] >= healthy[0] + 3000,
        "the second batch waited the delay: {steps:?}"
    );
}
