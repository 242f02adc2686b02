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
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use warren_netns_tests::acme::Pebble;
use warren_netns_tests::cluster::{deploy_httpd_args, Cluster, DockerNode, BUSYBOX_IMAGE as IMAGE};
use warren_netns_tests::tcp::http_get_host;
use warren_netns_tests::{wait_for_value, Nat, Netns};

/// The status and body of `GET path` with `Host: host` through the proxy.
fn get(ns: &Netns, proxy: SocketAddr, host: &str, path: &str) -> (u16, String) {
    match http_get_host(ns, proxy, host, path) {
        Ok(answer) => {
            let (status, body) = split_answer(answer.as_bytes());
            (status, String::from_utf8_lossy(body).trim().to_owned())
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
    let victim = container_of(&vm, "web");
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
    // `warren proxy stats`: the loop's requests in the last minute, all
    // answered 2xx, the retries that hid the kill, latency percentiles.
    let stats: Value =
        serde_json::from_str(&warren(&cluster, &["proxy", "stats", "--json"])).unwrap();
    let web = stats["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "web")
        .unwrap();
    let minute = &web["last_minute"];
    assert!(minute["requests"].as_u64().unwrap() >= 320, "{web}");
    assert_eq!(minute["status_5xx"], 0, "{web}");
    assert!(minute["retries"].as_u64().unwrap() >= 1, "{web}");
    assert!(
        minute["p50_ms"].as_f64().unwrap() <= minute["p99_ms"].as_f64().unwrap(),
        "{web}"
    );
    let table = warren(&cluster, &["proxy", "stats"]);
    assert!(table.contains("web") && table.contains("P99"), "{table}");
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

/// A WebSocket-style echo: answers the upgrade with `101`, then echoes.
const UPGRADE_ECHO: &str = r#"cat > /ws.sh <<'EOF'
#!/bin/sh
while read -r line; do [ ${#line} -le 1 ] && break; done
printf 'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n'
exec cat
EOF
chmod +x /ws.sh && exec nc -ll -p 8080 -e /ws.sh"#;

/// httpd with a 64 MiB random file at /big and a CGI that hashes what is
/// posted to /cgi-bin/sum.
const BIG_FILES: &str = r#"dd if=/dev/urandom of=/www/big bs=1M count=64 2>/dev/null
mkdir -p /www/cgi-bin && cat > /www/cgi-bin/sum <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
head -c "$CONTENT_LENGTH" | sha256sum
EOF
chmod +x /www/cgi-bin/sum && exec httpd -f -p 8080 -h /www"#;

fn deploy_command(cluster: &Cluster, name: &str, host: &str, health: &[&str], script: &str) {
    let mut args = vec![
        "deploy", name, "--image", IMAGE, "--port", "8080", "--host", host,
    ];
    args.extend(health);
    args.extend(["--wait", "--", "sh", "-c", script]);
    warren(cluster, &args);
}

fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The status line's code and the body of a raw HTTP answer.
fn split_answer(answer: &[u8]) -> (u16, &[u8]) {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&answer[..end]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, &answer[end..])
}

/// Sends `request` (then `body`) from `ns` to `addr` and reads the answer
/// to its end.
fn exchange(ns: &Netns, addr: SocketAddr, request: &[u8], body: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut stream = ns.run_in(|| TcpStream::connect(addr)).unwrap().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// The id of `service`'s container on `node`.
fn container_of(node: &DockerNode, service: &str) -> String {
    node.running()
        .unwrap()
        .into_iter()
        .find(|id| {
            node.dockerd
                .docker(&[
                    "inspect",
                    "-f",
                    "{{index .Config.Labels \"warren.service\"}}",
                    id,
                ])
                .unwrap()
                .trim()
                == service
        })
        .unwrap()
}

#[test]
fn websockets_64_mib_bodies_and_bad_clients_through_the_proxy_to_a_relayed_worker() {
    use std::io::{Read, Write};
    let cluster = Cluster::with("ingressws", |_, _, _| {
        Ok(vec!["--proxy-max-body".to_owned(), "65M".to_owned()])
    })
    .unwrap();
    let mut pi = DockerNode::behind(&cluster, "pi", Nat::Symmetric).unwrap();
    pi.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    let client = cluster.net.add_public_host(&cluster.lab, "client").unwrap();
    let proxy = SocketAddr::from((cluster.control.ip, 80));
    deploy_command(
        &cluster,
        "ws",
        "ws.example.test",
        &["--health-tcp"],
        UPGRADE_ECHO,
    );
    deploy_command(
        &cluster,
        "big",
        "big.example.test",
        &["--health-http", "/big", "--health-timeout", "5s"],
        BIG_FILES,
    );

    // An upgraded connection through the relayed node's tunnel, echoing.
    let mut ws = client
        .ns
        .run_in(|| TcpStream::connect(proxy))
        .unwrap()
        .unwrap();
    ws.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ws.write_all(
        b"GET /chat HTTP/1.1\r\nHost: ws.example.test\r\nConnection: Upgrade\r\n\
          Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        ws.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let echo = |ws: &mut TcpStream, text: &[u8]| {
        ws.write_all(text).unwrap();
        let mut back = vec![0u8; text.len()];
        ws.read_exact(&mut back).unwrap();
        assert_eq!(back, text);
    };
    echo(&mut ws, b"hello through the relay");
    // The route changes (a second replica joins it); the open connection
    // stays.
    warren(&cluster, &["scale", "ws", "2"]);
    wait_for_value("two ws upstreams", Duration::from_secs(30), || {
        let routes: Value = serde_json::from_str(&warren(&cluster, &["routes", "--json"])).ok()?;
        let ws = routes["routes"]
            .as_array()?
            .iter()
            .find(|r| r["service"] == "ws")?
            .clone();
        (ws["upstreams"].as_array()?.len() == 2).then_some(())
    })
    .unwrap();
    echo(&mut ws, b"still here after the route change");
    drop(ws);

    // 64 MiB down and up, streamed and checksummed end to end.
    let big = container_of(&pi, "big");
    let stored = pi
        .dockerd
        .docker(&["exec", &big, "sha256sum", "/www/big"])
        .unwrap();
    let download = exchange(
        &client.ns,
        proxy,
        b"GET /big HTTP/1.0\r\nHost: big.example.test\r\n\r\n",
        b"",
    );
    let (status, body) = split_answer(&download);
    assert_eq!((status, body.len()), (200, 64 << 20));
    assert_eq!(
        stored.split_whitespace().next(),
        Some(sha256_hex(body).as_str())
    );
    let upload = warren_netns_tests::tcp::pattern(64 << 20, 7);
    let answer = exchange(
        &client.ns,
        proxy,
        format!(
            "POST /cgi-bin/sum HTTP/1.0\r\nHost: big.example.test\r\nContent-Length: {}\r\n\r\n",
            upload.len()
        )
        .as_bytes(),
        &upload,
    );
    let (status, body) = split_answer(&answer);
    assert_eq!(
        status,
        200,
        "{}",
        String::from_utf8_lossy(&answer[..answer.len().min(300)])
    );
    assert_eq!(
        String::from_utf8_lossy(body).split_whitespace().next(),
        Some(sha256_hex(&upload).as_str())
    );

    // Bad clients get clear answers, and others keep being served.
    let mut slow = client
        .ns
        .run_in(|| TcpStream::connect(proxy))
        .unwrap()
        .unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: big.example.test\r\nX-Slow: ")
        .unwrap();
    let huge_header = format!(
        "GET / HTTP/1.1\r\nHost: big.example.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100_000)
    );
    let cases: Vec<(&[u8], u16)> = vec![
        (b"NOT HTTP\r\n\r\n", 400),
        (huge_header.as_bytes(), 431),
        (
            b"POST /cgi-bin/sum HTTP/1.1\r\nHost: big.example.test\r\n\
              Content-Length: 73400320\r\nConnection: close\r\n\r\n",
            413,
        ),
        (b"GET / HTTP/1.0\r\nHost: nobody.example.test\r\n\r\n", 404),
        (b"GET /big HTTP/1.0\r\n\r\n", 400),
    ];
    for (request, expected) in cases {
        let answer = exchange(&client.ns, proxy, request, b"");
        assert_eq!(
            split_answer(&answer).0,
            expected,
            "{}",
            String::from_utf8_lossy(&request[..request.len().min(60)])
        );
    }
    // The CGI hashes an empty body: the replica answered, not the proxy.
    let (status, body) = get(&client.ns, proxy, "big.example.test", "/cgi-bin/sum");
    assert_eq!(status, 200, "served while the slow client hangs: {body}");
    assert!(
        body.starts_with(&sha256_hex(b"")),
        "served while the slow client hangs: {body}"
    );
    drop(slow);
}
