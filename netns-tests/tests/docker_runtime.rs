//! The node runtime (`warren_runner::runtime`) against a real dockerd in
//! bridge mode inside a lab namespace: node facts, a replica published on
//! the namespace's stand-in mesh IP only, labels, adoption after a restart,
//! containers it did not make left alone, logs, exec, stats, stop and
//! remove, unknown and unpullable images, and what goes on the wire.
//! Run as root: `cargo test -p warren-netns-tests --test docker_runtime`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use warren_netns_tests::{
    import_busybox_image, run_args, start_dockerd_with, two_hosts, wait_for_value, DockerNet,
    Dockerd, Lab, Netns, TwoHosts,
};
use warren_runner::runtime::version::MAX_SUPPORTED;
use warren_runner::runtime::{
    ContainerStatus, LogOptions, LogStream, PortMapping, ReplicaSpec, Runtime, RuntimeError,
};

const IMAGE: &str = "local/busybox:1";
/// The stand-in for worker a's mesh IP (on its eth0; the agent's is on its
/// TUN), inside the mesh range 100.96.0.0/16.
const MESH_IP: Ipv4Addr = Ipv4Addr::new(100, 96, 0, 7);
const HOST_PORT: u16 = 18080;
/// How long the whole scenario may take.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

fn root_namespace_snapshot() -> String {
    let links = run_args(["ip", "-br", "link"]).expect("ip link");
    let mut snap: Vec<String> = links
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| format!("link {n}"))
        .collect();
    snap.push(run_args(["ip", "-4", "addr"]).expect("ip addr"));
    snap.push(run_args(["ip", "route"]).expect("ip route"));
    for table in ["filter", "nat"] {
        snap.push(run_args(["iptables", "-w", "-t", table, "-S"]).expect("iptables -S"));
    }
    snap.push(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("ip_forward"));
    snap.join("\n")
}

/// Runs blocking test code (sockets in a namespace, the docker CLI) off the
/// async workers.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn http_get(ns: &Netns, addr: SocketAddr) -> std::io::Result<String> {
    ns.run_in(|| {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(c, "GET / HTTP/1.0\r\nHost: lab\r\n\r\n")?;
        let mut body = String::new();
        c.read_to_string(&mut body)?;
        Ok(body)
    })
    .map_err(std::io::Error::other)?
}

fn connects(ns: &Netns, addr: SocketAddr) -> bool {
    ns.run_in(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
        .expect("enter namespace")
}

/// What each client connection sent, connection by connection.
type Sent = Arc<Mutex<Vec<Arc<Mutex<Vec<u8>>>>>>;

/// A unix-socket proxy in front of the daemon that keeps every byte each
/// client connection sends, to read the request lines back.
struct Recorder {
    socket: PathBuf,
    conns: Sent,
}

impl Recorder {
    async fn start(dir: &Path, upstream: PathBuf) -> Recorder {
        let socket = dir.join("recorder.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).expect("bind the recorder");
        let conns: Sent = Arc::default();
        let all = conns.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(daemon) = UnixStream::connect(&upstream).await else {
                    continue;
                };
                let sent = Arc::new(Mutex::new(Vec::new()));
                all.lock().expect("lock").push(sent.clone());
                let (mut client_rx, mut client_tx) = client.into_split();
                let (mut daemon_rx, mut daemon_tx) = daemon.into_split();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match client_rx.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                let chunk = &buf[..n];
                                sent.lock().expect("lock").extend_from_slice(chunk);
                                if daemon_tx.write_all(chunk).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    let _ = daemon_tx.shutdown().await;
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut daemon_rx, &mut client_tx).await;
                    let _ = client_tx.shutdown().await;
                });
            }
        });
        Recorder { socket, conns }
    }

    /// Every HTTP request line sent so far, connection by connection.
    fn request_lines(&self) -> Vec<String> {
        const METHODS: [&str; 5] = ["GET /", "POST /", "PUT /", "DELETE /", "HEAD /"];
        let conns = self.conns.lock().expect("lock");
        let mut lines = Vec::new();
        for conn in conns.iter() {
            let bytes = conn.lock().expect("lock");
            for line in String::from_utf8_lossy(&bytes).split("\r\n") {
                if METHODS.iter().any(|m| line.starts_with(m)) && line.ends_with(" HTTP/1.1") {
                    lines.push(line.to_owned());
                }
            }
        }
        lines
    }
}

fn replica(service: &str, replica: u32, command: &[&str]) -> ReplicaSpec {
    ReplicaSpec {
        service: service.to_owned(),
        replica: warren_proto::assignment::ReplicaId(format!("{service}-{replica}")),
        generation: 1,
        attempt: 0,
        image: IMAGE.to_owned(),
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        env: Vec::new(),
        publish_ip: MESH_IP.into(),
        ports: Vec::new(),
        cpu_millis: None,
        memory: None,
        stop_grace: Duration::from_secs(1),
    }
}

/// Waits until `id` is no longer running.
async fn wait_exited(runtime: &Runtime, id: &str) -> warren_runner::runtime::ContainerInfo {
    for _ in 0..200 {
        let info = runtime.inspect(id).await.expect("inspect");
        if !info.running {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("container {id} still running after 10 s");
}

async fn all_lines(runtime: &Runtime, id: &str, options: LogOptions) -> Vec<String> {
    let lines = runtime.logs(id, options).await.expect("logs");
    lines
        .map(|l| l.expect("log line").text)
        .collect::<Vec<_>>()
        .await
}

async fn scenario(net: &TwoHosts, dockerd: &Dockerd) {
    let ns = &net.a.ns;
    let recorder = Recorder::start(&dockerd.dir, dockerd.socket.clone()).await;
    let runtime = Runtime::connect(&format!("unix://{}", recorder.socket.display()))
        .await
        .expect("connect");

    // Version: the daemon's, capped at warren's newest, as the CLI sees it.
    let cli_api = blocking(|| dockerd.docker(&["version", "--format", "{{.Server.APIVersion}}"]))
        .expect("docker version");
    assert_eq!(runtime.daemon().api_version.to_string(), cli_api.trim());
    assert_eq!(
        runtime.api_version(),
        runtime.daemon().api_version.min(MAX_SUPPORTED)
    );

    // Node facts.
    let facts = runtime.node_facts().await.expect("node facts");
    eprintln!("node facts: {facts:?}");
    assert!(
        !facts.architecture.is_empty() && facts.os == "linux",
        "{facts:?}"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(facts.cpu_cores as usize, cores, "{facts:?}");
    assert!(facts.memory_bytes > 256 << 20, "{facts:?}");
    assert!(facts.docker_root_dir.starts_with(&dockerd.dir), "{facts:?}");
    assert!(facts.free_disk_bytes.is_some_and(|b| b > 0), "{facts:?}");
    assert!(!facts.docker_version.is_empty());
    assert_eq!(facts.api_version, runtime.api_version());

    // Images.
    assert!(runtime.image_present(IMAGE).await.expect("image_present"));
    assert!(!runtime
        .image_present("local/nope:1")
        .await
        .expect("image_present"));

    // A web replica, published on the mesh IP only, with limits and env.
    let mut web = replica(
        "web",
        0,
        &[
            "sh",
            "-c",
            "echo \"$GREETING from the replica\" > /www/index.html; echo started; echo ready; \
             exec httpd -f -p 8080 -h /www",
        ],
    );
    web.env = vec![("GREETING".to_owned(), "hello".to_owned())];
    web.ports = vec![PortMapping {
        container: 8080,
        host: HOST_PORT,
    }];
    web.cpu_millis = Some(500);
    web.memory = Some(64 << 20);
    let web_id = runtime
        .run_replica(&web)
        .await
        .expect("run the web replica");

    let mesh = SocketAddr::from((MESH_IP, HOST_PORT));
    let body = blocking(|| {
        wait_for_value(
            "the replica on the mesh IP",
            Duration::from_secs(15),
            || http_get(ns, mesh).ok(),
        )
    })
    .expect("the replica answers on the mesh IP");
    assert!(
        body.starts_with("HTTP/1.") && body.contains("hello from the replica"),
        "{body}"
    );
    // From the other host, routed to the mesh IP (as across a tunnel).
    let from_b = blocking(|| http_get(&net.b.ns, mesh)).expect("from b via the mesh IP");
    assert!(from_b.contains("hello from the replica"), "{from_b}");
    // And on no other address of the worker.
    for other in [net.a.ip, Ipv4Addr::LOCALHOST] {
        let addr = SocketAddr::from((other, HOST_PORT));
        assert!(!blocking(|| connects(ns, addr)), "answers on {addr} too");
    }
    let addr = SocketAddr::from((net.a.ip, HOST_PORT));
    assert!(!blocking(|| connects(&net.b.ns, addr)), "b reaches {addr}");

    // What Docker made of the spec.
    let made = blocking(|| {
        dockerd.docker(&[
            "inspect",
            "--format",
            "{{json .Config.Labels}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.Memory}} \
             {{.HostConfig.NanoCpus}} {{json .HostConfig.PortBindings}} {{.Name}} \
             {{.NetworkSettings.IPAddress}}",
            &web_id,
        ])
    })
    .expect("docker inspect");
    eprintln!("docker inspect: {made}");
    for want in [
        r#""warren.service":"web""#,
        r#""warren.replica":"web-0""#,
        r#""warren.generation":"1""#,
        r#""warren.attempt":"0""#,
        " no 67108864 500000000 ",
        r#"{"8080/tcp":[{"HostIp":"100.96.0.7","HostPort":"18080"}]}"#,
        "/warren-web-0-g1-a0",
    ] {
        assert!(made.contains(want), "{want} not in {made}");
    }
    let container_ip: Ipv4Addr = made
        .split_whitespace()
        .last()
        .and_then(|ip| ip.parse().ok())
        .expect("a container address");
    let bridge = dockerd.bridge.expect("a bridged daemon");
    assert!(
        bridge.contains(container_ip),
        "{container_ip} not in {bridge:?}"
    );

    // Containers warren did not make: one without labels, one with a part.
    for args in [
        &["run", "-d", "--name", "stranger", IMAGE, "sleep", "300"][..],
        &[
            "run",
            "-d",
            "--name",
            "lookalike",
            "--label",
            "warren.service=web",
            IMAGE,
            "sleep",
            "300",
        ][..],
    ] {
        blocking(|| dockerd.docker(args)).expect("docker run");
    }
    let ours = runtime.list_ours().await.expect("list_ours");
    assert_eq!(ours.len(), 1, "{ours:?}");
    let listed = ours.first().expect("one");
    assert_eq!(listed.id, web_id);
    assert_eq!(listed.labels, web.labels());
    assert_eq!(listed.status, ContainerStatus::Running);
    for stranger in ["stranger", "lookalike"] {
        let stop = runtime.stop(stranger).await;
        assert!(matches!(stop, Err(RuntimeError::NotOurs(_))), "{stop:?}");
        let remove = runtime.remove(stranger).await;
        assert!(
            matches!(remove, Err(RuntimeError::NotOurs(_))),
            "{remove:?}"
        );
        let exec = runtime.exec(stranger, &["true".to_owned()]).await;
        assert!(matches!(exec, Err(RuntimeError::NotOurs(_))), "{exec:?}");
        let logs = runtime.logs(stranger, LogOptions::default()).await;
        assert!(matches!(logs, Err(RuntimeError::NotOurs(_))), "{logs:?}");
        let running =
            blocking(|| dockerd.docker(&["inspect", "-f", "{{.State.Running}}", stranger]))
                .expect("inspect");
        assert_eq!(running.trim(), "true", "{stranger} was touched");
    }

    // Inspect.
    let info = runtime.inspect(&web_id).await.expect("inspect");
    assert!(
        info.running && info.status == ContainerStatus::Running,
        "{info:?}"
    );
    assert!(
        info.started_at.is_some() && info.finished_at.is_none(),
        "{info:?}"
    );

    // Logs: all, tail, since.
    let all = all_lines(&runtime, &web_id, LogOptions::default()).await;
    assert_eq!(all, ["started", "ready"]);
    let tail = LogOptions {
        tail: Some(1),
        ..Default::default()
    };
    assert_eq!(all_lines(&runtime, &web_id, tail).await, ["ready"]);
    let later = LogOptions {
        since: Some(SystemTime::now() + Duration::from_secs(3600)),
        ..Default::default()
    };
    assert!(all_lines(&runtime, &web_id, later).await.is_empty());

    // Exec: output and exit code; the env reached the container.
    let script = ["sh", "-c", "echo hi; echo oops >&2; exit 3"].map(String::from);
    let (lines, code) = runtime
        .exec(&web_id, &script)
        .await
        .expect("exec")
        .collect()
        .await
        .expect("exec output");
    // Two pipes: each stream keeps its order, not their interleaving.
    let of = |stream| {
        lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(of(LogStream::Stdout), ["hi"], "{lines:?}");
    assert_eq!(of(LogStream::Stderr), ["oops"], "{lines:?}");
    assert_eq!(code, 3);
    let (env, code) = runtime
        .exec(&web_id, &["env".to_owned()])
        .await
        .expect("exec env")
        .collect()
        .await
        .expect("env output");
    assert_eq!(code, 0);
    assert!(env.iter().any(|l| l.text == "GREETING=hello"), "{env:?}");

    // Stats: memory within the limit.
    let usage = runtime.container_stats(&web_id).await.expect("stats");
    eprintln!("web usage: {usage:?}");
    assert!(usage.memory_bytes.is_some_and(|m| m > 0), "{usage:?}");
    assert_eq!(usage.memory_limit, Some(64 << 20), "{usage:?}");
    assert!(usage.cpu_percent.is_some_and(|p| p >= 0.0), "{usage:?}");

    // Follow: a ticking replica's new lines arrive as they are written.
    let ticker = replica(
        "ticker",
        0,
        &[
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ],
    );
    let ticker_id = runtime.run_replica(&ticker).await.expect("run the ticker");
    let follow = LogOptions {
        follow: true,
        tail: Some(0),
        ..Default::default()
    };
    let mut stream = runtime.logs(&ticker_id, follow).await.expect("follow");
    let mut ticks = Vec::new();
    while ticks.len() < 3 {
        let next = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("a new line within 5 s")
            .expect("the stream goes on")
            .expect("a line");
        let n: u32 = next
            .text
            .strip_prefix("tick ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a tick: {next:?}"));
        ticks.push(n);
    }
    assert!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "{ticks:?}");
    let usage = runtime.container_stats(&ticker_id).await.expect("stats");
    assert!(usage.memory_bytes.is_some_and(|m| m > 0), "{usage:?}");

    // Stop: busybox as PID 1 ignores SIGTERM, so SIGKILL after the grace
    // the container was created with (1 s, not the daemon's 10 s).
    let stopping = std::time::Instant::now();
    runtime.stop(&ticker_id).await.expect("stop");
    assert!(
        stopping.elapsed() < Duration::from_secs(8),
        "killed after {:?}: not the replica's own grace",
        stopping.elapsed()
    );
    // The follow stream ends with the container.
    let rest = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>())
        .await
        .expect("the follow stream ends");
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");
    let stopped = runtime.inspect(&ticker_id).await.expect("inspect");
    assert_eq!(stopped.status, ContainerStatus::Exited, "{stopped:?}");
    assert_eq!(stopped.exit_code, Some(137), "{stopped:?}");
    assert!(stopped.finished_at >= stopped.started_at, "{stopped:?}");
    // An exited container's output stays readable (for --previous).
    let after = all_lines(&runtime, &ticker_id, LogOptions::default()).await;
    assert!(after.len() >= 3 && after.first().map(String::as_str) == Some("tick 0"));
    // Stopping it again is fine.
    runtime.stop(&ticker_id).await.expect("stop again");

    // A replica that crashes: its exit code and last output.
    let crasher = replica("crasher", 0, &["sh", "-c", "echo dying; exit 7"]);
    let crasher_id = runtime
        .run_replica(&crasher)
        .await
        .expect("run the crasher");
    let crashed = wait_exited(&runtime, &crasher_id).await;
    assert_eq!(crashed.exit_code, Some(7), "{crashed:?}");
    assert!(crashed.finished_at.is_some(), "{crashed:?}");
    assert_eq!(
        all_lines(&runtime, &crasher_id, LogOptions::default()).await,
        ["dying"]
    );
    // Docker does not restart it (no restart policy): still exited.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = runtime.inspect(&crasher_id).await.expect("inspect");
    assert!(!still.running, "{still:?}");

    // An agent restart: a new runtime adopts the same containers.
    let restarted = Runtime::connect(&dockerd.socket.to_string_lossy())
        .await
        .expect("reconnect");
    let mut before: Vec<_> = runtime
        .list_ours()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut after: Vec<_> = restarted
        .list_ours()
        .await
        .expect("list")
        .into_iter()
        .map(|c| c.id)
        .collect();
    before.sort();
    after.sort();
    assert_eq!(before.len(), 3, "{before:?}");
    assert_eq!(before, after);

    // Remove.
    for id in [&ticker_id, &crasher_id] {
        runtime.remove(id).await.expect("remove");
        let gone = runtime.inspect(id).await;
        assert!(
            matches!(gone, Err(RuntimeError::NoSuchContainer(_))),
            "{gone:?}"
        );
    }
    let ours = runtime.list_ours().await.expect("list_ours");
    assert_eq!(ours.iter().map(|c| &c.id).collect::<Vec<_>>(), [&web_id]);

    // Images it cannot have: not on the node, and not pullable (a
    // registry address on the worker's own loopback, where nothing listens).
    let mut missing = replica("missing", 0, &[]);
    missing.image = "local/nope:1".to_owned();
    match runtime.run_replica(&missing).await {
        Err(e @ RuntimeError::ImageNotFound { .. }) => {
            eprintln!("unknown image: {e}");
            assert!(e.to_string().contains("local/nope:1"), "{e}");
        }
        other => panic!("expected ImageNotFound, got {other:?}"),
    }
    let unpullable = |result: Result<(), RuntimeError>| match result {
        Err(e @ RuntimeError::ImagePull { .. }) => {
            eprintln!("unpullable image: {e}");
            assert!(e.to_string().contains("127.0.0.1:9/nope:1"), "{e}");
        }
        other => panic!("expected ImagePull, got {other:?}"),
    };
    unpullable(runtime.pull_image("127.0.0.1:9/nope:1").await);
    // Whether a deploy could use an image: the one on the node, yes; the
    // unreachable registry's, no, with the daemon's reason.
    runtime
        .image_obtainable(IMAGE)
        .await
        .expect("the node's own image");
    unpullable(runtime.image_obtainable("127.0.0.1:9/nope:1").await);

    runtime.stop(&web_id).await.expect("stop web");
    runtime.remove(&web_id).await.expect("remove web");

    // On the wire: the probe unversioned, everything else pinned.
    let lines = recorder.request_lines();
    eprintln!("requests on the wire:\n  {}", lines.join("\n  "));
    assert_eq!(
        lines.first().map(String::as_str),
        Some("GET /version HTTP/1.1")
    );
    let api = runtime.api_version();
    let prefix = format!(" /v{api}/");
    assert!(lines.len() > 20, "{lines:?}");
    for line in lines.iter().skip(1) {
        assert!(line.contains(&prefix), "not pinned to {prefix}: {line}");
    }
    for want in [
        format!("POST /v{api}/containers/create?name=warren-web-0-g1-a0"),
        format!("POST /v{api}/containers/{web_id}/exec"),
        format!("POST /v{api}/exec/"),
        format!("GET /v{api}/containers/{ticker_id}/logs?"),
        format!("GET /v{api}/containers/{web_id}/stats?"),
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(&want)),
            "no {want} in {lines:?}"
        );
    }
}

#[test]
fn node_runtime_runs_replicas_on_a_bridged_dockerd() {
    let before = root_namespace_snapshot();
    {
        let lab = Lab::new("dkrt").expect("lab");
        let net = two_hosts(&lab).expect("topology");
        let dockerd = start_dockerd_with(&lab, &net.a.ns, DockerNet::Bridge)
            .expect("dockerd (run scripts/setup if missing)");
        import_busybox_image(&dockerd, IMAGE).expect("import busybox image");
        net.a
            .ns
            .add_addr(&net.a.iface, &format!("{MESH_IP}/32"))
            .expect("mesh IP stand-in");
        net.b
            .ns
            .add_route(&format!("{MESH_IP}/32"), net.a.ip)
            .expect("route to the mesh IP");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async {
            tokio::time::timeout(SCENARIO_TIMEOUT, scenario(&net, &dockerd))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "the scenario took over {SCENARIO_TIMEOUT:?}\n{}",
                        dockerd.proc.describe()
                    )
                })
        });
        drop(rt);
        let bridge_nf = net
            .a
            .ns
            .sysctl_get("net.bridge.bridge-nf-call-iptables")
            .unwrap_or_default();
        eprintln!("worker's bridge-nf-call-iptables: {}", bridge_nf.trim());
        drop(dockerd);
        let left = net.a.ns.pids().expect("pids");
        assert!(left.is_empty(), "processes left in the worker: {left:?}");
    }
    assert_eq!(
        before,
        root_namespace_snapshot(),
        "the root namespace changed"
    );
}
