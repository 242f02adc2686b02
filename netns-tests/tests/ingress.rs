//! Ingress end to end: a client on the lab internet asks the control
//! plane's proxy, by host name, for services whose replicas run on a
//! `--direct` worker in a VPC and a `--relay` worker behind a symmetric
//! NAT, each with its own Docker daemon; the proxy reaches them through
//! the WireGuard mesh (the relayed one through the relay or a punched
//! path). Routing by host, wildcard and path prefix, balance, 404s, and a
//! replica killed under a loop of GETs with no failed request; and
//! certificates by ACME from a real ACME server (pebble), served over
//! HTTP/2, redirected to, and renewed.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use warren_netns_tests::acme::Pebble;
use warren_netns_tests::cluster::{deploy_httpd_args, Cluster, DockerNode};
use warren_netns_tests::tcp::http_get_host;
use warren_netns_tests::{wait_for_value, Nat, Netns};

/// The status and body of `GET path` with `Host: host` through the proxy.
fn get(ns: &Netns, proxy: SocketAddr, host: &str, path: &str) -> (u16, String) {
    match http_get_host(ns, proxy, host, path) {
        Ok(answer) => {
            let status = answer
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let body = answer
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.trim().to_owned())
                .unwrap_or_default();
            (status, body)
        }
        Err(error) => (0, error.to_string()),
    }
}

fn warren(cluster: &Cluster, args: &[&str]) -> String {
    cluster
        .admin(args)
        .unwrap_or_else(|e| panic!("warren {args:?}: {e:#}"))
}

#[test]
fn the_proxy_routes_by_host_and_path_to_replicas_on_direct_and_relayed_nodes() {
    let cluster = Cluster::new("ingress").unwrap();
    let mut vm = DockerNode::in_vpc(&cluster, "vm").unwrap();
    let mut pi = DockerNode::behind(&cluster, "pi", Nat::Symmetric).unwrap();
    vm.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    pi.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    let client = cluster.net.add_public_host(&cluster.lab, "client").unwrap();
    let proxy = SocketAddr::from((cluster.control.ip, 80));

    let health = ["--health-http", "/", "--health-interval", "500ms", "--wait"];
    let deploy = |name: &str, replicas: u32, route: &[&str]| {
        let mut extra: Vec<&str> = route.to_vec();
        extra.extend(health);
        let args = deploy_httpd_args(name, replicas, &extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        warren(&cluster, &args);
    };
    deploy("web", 2, &["--host", "web.example.test"]);
    deploy(
        "api",
        1,
        &[
            "--host",
            "web.example.test",
            "--path",
            "/api",
            "--strip-prefix",
        ],
    );
    deploy("tenants", 1, &["--host", "*.apps.example.test"]);

    // Which container answers for which replica, from `ps`: httpd serves
    // its container's hostname.
    let replicas = cluster.replicas().unwrap();
    let node_of = |service: &str| -> Vec<String> {
        replicas
            .iter()
            .filter(|r| r["service"] == service)
            .map(|r| r["node"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut web_nodes = node_of("web");
    web_nodes.sort();
    assert_eq!(web_nodes, ["pi", "vm"], "spread over both nodes");

    // Balanced over both replicas: each answers some of 20 requests.
    let mut answers: BTreeMap<String, u32> = BTreeMap::new();
    for _ in 0..20 {
        let (status, body) = get(&client.ns, proxy, "web.example.test", "/");
        assert_eq!(status, 200, "{body}\n{}", cluster.serve.log_tail(20));
        *answers.entry(body).or_default() += 1;
    }
    assert_eq!(answers.len(), 2, "both replicas answer: {answers:?}");

    let (status, api_body) = get(&client.ns, proxy, "web.example.test", "/api");
    assert_eq!(status, 200, "{api_body}");
    assert!(
        !answers.contains_key(&api_body),
        "/api goes to the api service"
    );
    let (status, tenant) = get(&client.ns, proxy, "shop.apps.example.test", "/");
    assert_eq!(status, 200, "{tenant}");
    assert!(!answers.contains_key(&tenant) && tenant != api_body);
    for (host, path) in [
        ("a.b.apps.example.test", "/"),
        ("nothing.example.test", "/"),
    ] {
        let (status, body) = get(&client.ns, proxy, host, path);
        assert_eq!(status, 404, "{host}{path}: {body}");
        assert!(
            !body.contains("web") && !body.contains("100.96."),
            "names nothing internal: {body}"
        );
    }

    // `warren routes` shows both web replicas, and the path to the relayed
    // one once the control plane's device has reported it (every 5 s).
    let on_pi = wait_for_value(
        "the path to pi in warren routes",
        Duration::from_secs(20),
        || {
            let routes: Value =
                serde_json::from_str(&warren(&cluster, &["routes", "--json"])).unwrap();
            let web = routes["routes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["service"] == "web")
                .unwrap()
                .clone();
            let upstreams = web["upstreams"].as_array().unwrap().clone();
            assert_eq!(upstreams.len(), 2, "{web}");
            let on_pi = upstreams.into_iter().find(|u| u["node"] == "pi").unwrap();
            ["relayed", "direct"]
                .contains(&on_pi["path"].as_str().unwrap())
                .then_some(on_pi)
        },
    )
    .unwrap();
    assert_eq!(on_pi["mode"], "relay", "{on_pi}");
    let table = warren(&cluster, &["routes"]);
    assert!(
        table.contains("web.example.test") && table.contains("/api (stripped)"),
        "{table}"
    );

    // A replica killed under a loop of GETs: no request fails. The agent
    // restarts it; meanwhile the proxy retries on the other one.
    let on_vm = vm.running().unwrap();
    let victim = on_vm
        .iter()
        .find(|id| {
            vm.dockerd
                .docker(&[
                    "inspect",
                    "-f",
                    "{{index .Config.Labels \"warren.service\"}}",
                    id,
                ])
                .unwrap()
                .trim()
                == "web"
        })
        .unwrap()
        .clone();
    let failures = std::thread::scope(|s| {
        let looping = s.spawn(|| {
            let mut failures = Vec::new();
            for i in 0..300 {
                let (status, body) = get(&client.ns, proxy, "web.example.test", "/");
                if status != 200 {
                    failures.push(format!("request {i}: {status} {body}"));
                }
            }
            failures
        });
        std::thread::sleep(Duration::from_millis(300));
        vm.dockerd.docker(&["kill", &victim]).unwrap();
        looping.join().unwrap()
    });
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}\n{}",
        failures.len(),
        cluster.serve.log_tail(30)
    );
    let api: SocketAddr = "127.0.0.1:7080".parse().unwrap();
    let (_, metrics) = get(&cluster.control.ns, api, "127.0.0.1", "/metrics");
    assert!(
        metrics.contains("warren_proxy_requests_total{service=\"web\",status=\"200\"}"),
        "{metrics}"
    );
    // The kill was felt: some request found the replica gone and went on.
    assert!(
        metrics.contains("warren_proxy_retries_total{service=\"web\"}"),
        "no retry: the kill fell outside the loop?\n{metrics}"
    );
}

/// `curl ARGS` from `ns`: its stdout, or its error.
fn curl(ns: &Netns, args: &[&str]) -> Result<String, String> {
    let out = ns
        .run_in(|| std::process::Command::new("curl").args(args).output())
        .unwrap()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn acme_cert(cluster: &Cluster, host: &str) -> Option<Value> {
    let certs: Value = serde_json::from_str(&warren(cluster, &["cert", "ls", "--json"])).ok()?;
    certs["certs"]
        .as_array()?
        .iter()
        .find(|c| c["host"] == host && c["source"] == "acme")
        .cloned()
}

#[test]
fn acme_certificates_from_pebble_are_served_over_http2_redirected_to_and_renewed() {
    let mut pebble = None;
    let cluster = Cluster::on_control_host("acme", |lab, net, control, _| {
        let host = net.add_public_host(lab, "acme")?;
        // Short-lived certificates, so the test sees a renewal.
        let started = Pebble::start(lab, &host, control.ip, Duration::from_secs(20))?;
        let args = vec![
            "--acme-directory".to_owned(),
            started.directory.clone(),
            "--acme-email".to_owned(),
            "ops@example.test".to_owned(),
            "--acme-ca-file".to_owned(),
            started.directory_ca.display().to_string(),
        ];
        pebble = Some(started);
        Ok(args)
    })
    .unwrap();
    let pebble = pebble.unwrap();
    let mut vm = DockerNode::in_vpc(&cluster, "vm").unwrap();
    vm.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    let client = cluster.net.add_public_host(&cluster.lab, "client").unwrap();
    let args = deploy_httpd_args(
        "web",
        1,
        &["--host", "web.example.test", "--health-http", "/", "--wait"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    warren(&cluster, &args);

    let first = wait_for_value("a certificate by ACME", Duration::from_secs(60), || {
        acme_cert(&cluster, "web.example.test")
    })
    .unwrap_or_else(|e| panic!("{e:#}\n{}", cluster.serve.log_tail(30)));
    let root = cluster.lab.dir().join("pebble-root.pem");
    pebble.issuing_root(&root).unwrap();
    let resolve = format!("web.example.test:443:{}", cluster.control.ip);
    let https = |path: &str| {
        curl(
            &client.ns,
            &[
                "-sS",
                "--max-time",
                "10",
                "--cacert",
                root.to_str().unwrap(),
                "--resolve",
                &resolve,
                "-w",
                " %{http_code} HTTP/%{http_version}",
                &format!("https://web.example.test{path}"),
            ],
        )
    };
    let answer = https("/").unwrap();
    assert!(answer.ends_with(" 200 HTTP/2"), "{answer}");

    // Plain HTTP for the host goes to HTTPS.
    let plain = curl(
        &client.ns,
        &[
            "-sS",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "--resolve",
            &format!("web.example.test:80:{}", cluster.control.ip),
            "-w",
            "%{http_code} %{redirect_url}",
            "http://web.example.test/a?b=1",
        ],
    )
    .unwrap();
    assert_eq!(plain, "308 https://web.example.test/a?b=1");

    // Renewed on its own with a third of its life left, and on demand.
    let renewed = wait_for_value("the certificate renewed", Duration::from_secs(60), || {
        acme_cert(&cluster, "web.example.test").filter(|c| c["not_after"] != first["not_after"])
    })
    .unwrap();
    let said = warren(&cluster, &["cert", "renew", "web.example.test"]);
    assert!(
        said.starts_with("certificate renewed for web.example.test by ACME"),
        "{said}"
    );
    let again = acme_cert(&cluster, "web.example.test").unwrap();
    assert!(
        again["not_after"].as_u64() > renewed["not_after"].as_u64()
            || again["updated"] != renewed["updated"],
        "{again} {renewed}"
    );
    let answer = https("/").unwrap();
    assert!(
        answer.ends_with(" 200 HTTP/2"),
        "served after renewals: {answer}"
    );
    let refused = cluster
        .admin_output(&["cert", "renew", "nothing.example.test"])
        .unwrap();
    assert!(!refused.status.success());
    let line = String::from_utf8_lossy(&refused.stderr);
    assert!(
        line.contains("no service deployed with --tls auto routes nothing.example.test"),
        "{line}"
    );
}
