//! Behaviour of the lab harness itself: cleanup, NAT kinds, hole punching,
//! path MTU, loss, reference WireGuard peers and per-worker Docker daemons.
//! Run as root: `cargo test -p warren-netns-tests`.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::{Duration, Instant};

use warren_netns_tests::topology::HostOpts;
use warren_netns_tests::udp::{self, Reflector};
use warren_netns_tests::{impair, run_args, two_hosts, Internet, Lab, Nat, Netns, Spawn};

/// Whether `pid` is gone (or a zombie nobody reaped yet).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn netns_list() -> String {
    run_args(["ip", "netns", "list"]).expect("ip netns list")
}

fn bind(ns: &Netns, addr: impl Into<SocketAddr>) -> UdpSocket {
    let addr = addr.into();
    ns.run_in(|| UdpSocket::bind(addr))
        .expect("enter namespace")
        .unwrap_or_else(|e| panic!("bind {addr} in {ns}: {e}"))
}

#[test]
fn panic_in_a_test_leaves_no_namespace_or_process_behind() {
    let mut names = Vec::new();
    let mut pids = Vec::new();
    let mut dir = std::path::PathBuf::new();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let lab = Lab::new("panic").expect("lab");
        let net = two_hosts(&lab).expect("topology");
        let guarded = lab
            .spawn(&net.a.ns, Spawn::new("sleep").arg("300"))
            .expect("spawn");
        // Forgotten guard: only the lab can stop this one.
        let forgotten = lab
            .spawn(&net.b.ns, Spawn::new("sleep").arg("301"))
            .expect("spawn");
        // Started behind the harness's back, inside a lab namespace.
        let orphan: u32 = net
            .b
            .ns
            .exec(["sh", "-c", "sleep 302 >/dev/null 2>&1 & echo $!"])
            .expect("orphan")
            .trim()
            .parse()
            .expect("pid");
        names = lab.namespaces();
        dir = lab.dir().to_path_buf();
        pids = vec![guarded.pid(), forgotten.pid(), orphan];
        std::mem::forget(forgotten);
        assert!(netns_list().contains(names[0].name()));
        panic!("test body fails");
    }));
    assert!(result.is_err(), "the body should have panicked");
    assert_eq!(names.len(), 2);
    let list = netns_list();
    for ns in &names {
        assert!(
            !list.contains(ns.name()),
            "{ns} survived the panic:\n{list}"
        );
    }
    for pid in pids {
        warren_netns_tests::wait_for(&format!("pid {pid} to go"), Duration::from_secs(5), || {
            process_gone(pid)
        })
        .expect("process left behind");
    }
    // A failed lab keeps its logs for inspection.
    assert!(
        dir.join("sleep.log").exists(),
        "logs of {} not kept",
        dir.display()
    );
    warren_netns_tests::sweep::remove_tree(&dir);
}

#[test]
fn sweep_removes_namespaces_of_dead_runs() {
    // A pid that does not exist stands for a crashed earlier run.
    let dead = (2..32_000u32)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid");
    let name = format!("wl-{dead}-0-stale-x");
    run_args(["ip", "netns", "add", &name]).expect("add stale namespace");
    warren_netns_tests::sweep::sweep_stale();
    assert!(!netns_list().contains(&name), "stale {name} not swept");
}

#[test]
fn cone_nat_maps_to_router_address_and_filters_unsolicited() {
    let lab = Lab::new("cone").expect("lab");
    let net = Internet::new(&lab).expect("internet");
    let server = net.add_public_host(&lab, "srv").expect("server");
    let home = net.add_host(&lab, "home", Nat::Cone).expect("home");
    let router = home.router.clone().expect("router");

    let srv = bind(&server.ns, (server.ip, 4000));
    let other = bind(&server.ns, (server.ip, 4001));
    let h = bind(&home.ns, (Ipv4Addr::UNSPECIFIED, 5000));
    let h2 = bind(&home.ns, (Ipv4Addr::UNSPECIFIED, 5001));
    h.send_to(b"hello", (server.ip, 4000)).expect("send");
    srv.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let (n, from) = srv.recv_from(&mut buf).expect("server receives");
    assert_eq!(&buf[..n], b"hello");
    assert_eq!(
        from.ip(),
        router.wan_ip,
        "source is the router's public address"
    );
    assert_eq!(from.ip(), home.reflexive_ip());

    srv.send_to(b"reply", from).expect("reply");
    h.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let (n, src) = h.recv_from(&mut buf).expect("home receives the reply");
    assert_eq!(
        (&buf[..n], src),
        (&b"reply"[..], SocketAddr::from((server.ip, 4000)))
    );

    // Unsolicited: another port of the same server, and a port with no mapping.
    other.send_to(b"intruder", from).expect("send");
    other
        .send_to(b"intruder", (router.wan_ip, 5001))
        .expect("send");
    srv.send_to(b"intruder", (router.wan_ip, 5001))
        .expect("send");
    let got = udp::drain(&h, Duration::from_millis(500)).expect("drain");
    let got2 = udp::drain(&h2, Duration::from_millis(100)).expect("drain");
    assert!(
        got.is_empty() && got2.is_empty(),
        "unsolicited datagrams delivered: {got:?} {got2:?}"
    );
}

/// Both sides learn their reflexive address from a rendezvous host, then
/// punch simultaneously; returns how many punches each side received.
fn punch(
    a_nat: impl FnOnce(&Lab, &Internet) -> Nat,
    b_nat: impl FnOnce(&Lab, &Internet) -> Nat,
) -> (u32, u32) {
    let lab = Lab::new("punch").expect("lab");
    let net = Internet::new(&lab).expect("internet");
    let rv = net.add_public_host(&lab, "rv").expect("rendezvous");
    let reflector = Reflector::start(&rv.ns, (rv.ip, 3478).into()).expect("reflector");
    let na = a_nat(&lab, &net);
    let a = net.add_host(&lab, "a", na).expect("a");
    let nb = b_nat(&lab, &net);
    let b = net.add_host(&lab, "b", nb).expect("b");
    let sa = bind(&a.ns, (Ipv4Addr::UNSPECIFIED, 7000));
    let sb = bind(&b.ns, (Ipv4Addr::UNSPECIFIED, 7000));
    let ra =
        udp::reflexive_addr(&sa, reflector.addr, Duration::from_secs(3)).expect("a's reflexive");
    let rb =
        udp::reflexive_addr(&sb, reflector.addr, Duration::from_secs(3)).expect("b's reflexive");
    assert_eq!(ra.ip(), a.reflexive_ip());
    assert_eq!(rb.ip(), b.reflexive_ip());
    std::thread::scope(|s| {
        let ta = s.spawn(|| udp::punch(&sa, rb, 10, Duration::from_millis(100)).expect("punch"));
        let tb = s.spawn(|| udp::punch(&sb, ra, 10, Duration::from_millis(100)).expect("punch"));
        (ta.join().expect("a"), tb.join().expect("b"))
    })
}

#[test]
fn hole_punching_cone_to_cone_succeeds() {
    let (a, b) = punch(|_, _| Nat::Cone, |_, _| Nat::Cone);
    assert!(
        a > 0 && b > 0,
        "cone <-> cone should punch: a got {a}, b got {b}"
    );
}

#[test]
fn hole_punching_cone_to_symmetric_fails() {
    let (a, b) = punch(|_, _| Nat::Cone, |_, _| Nat::Symmetric);
    assert_eq!((a, b), (0, 0), "cone <-> symmetric should not punch");
}

#[test]
fn hole_punching_carrier_grade_to_cone_succeeds() {
    let (a, b) = punch(
        |lab, net| Nat::CarrierGrade(net.add_carrier(lab, "isp").expect("carrier")),
        |_, _| Nat::Cone,
    );
    assert!(
        a > 0 && b > 0,
        "CGNAT <-> cone should punch: a got {a}, b got {b}"
    );
}

#[test]
fn hole_punching_two_homes_behind_one_carrier_fails() {
    let lab = Lab::new("hairpin").expect("lab");
    let net = Internet::new(&lab).expect("internet");
    let rv = net.add_public_host(&lab, "rv").expect("rendezvous");
    let reflector = Reflector::start(&rv.ns, (rv.ip, 3478).into()).expect("reflector");
    let isp = net.add_carrier(&lab, "isp").expect("carrier");
    let a = net
        .add_host(&lab, "a", Nat::CarrierGrade(isp.clone()))
        .expect("a");
    let b = net.add_host(&lab, "b", Nat::CarrierGrade(isp)).expect("b");
    let sa = bind(&a.ns, (Ipv4Addr::UNSPECIFIED, 7000));
    let sb = bind(&b.ns, (Ipv4Addr::UNSPECIFIED, 7001));
    let ra = udp::reflexive_addr(&sa, reflector.addr, Duration::from_secs(3)).expect("a");
    let rb = udp::reflexive_addr(&sb, reflector.addr, Duration::from_secs(3)).expect("b");
    assert_eq!(ra.ip(), rb.ip(), "both homes share the carrier's address");
    let (ga, gb) = std::thread::scope(|s| {
        let ta = s.spawn(|| udp::punch(&sa, rb, 5, Duration::from_millis(100)).expect("punch"));
        let tb = s.spawn(|| udp::punch(&sb, ra, 5, Duration::from_millis(100)).expect("punch"));
        (ta.join().expect("a"), tb.join().expect("b"))
    });
    assert_eq!((ga, gb), (0, 0), "the carrier must not hairpin");
}

#[test]
fn mtu_1280_link_passes_1252_byte_df_datagrams_only() {
    let lab = Lab::new("mtu").expect("lab");
    let net = Internet::new(&lab).expect("internet");
    let server = net.add_public_host(&lab, "srv").expect("server");
    let home = net
        .add_host_with(&lab, "home", Nat::Cone, HostOpts { mtu: Some(1280) })
        .expect("home");
    let srv = bind(&server.ns, (server.ip, 4000));
    let h = bind(&home.ns, (Ipv4Addr::UNSPECIFIED, 5000));
    udp::set_dont_fragment(&h).expect("DF");
    udp::set_dont_fragment(&srv).expect("DF");

    // Outbound: the home's own link is the bottleneck.
    h.send_to(&[1u8; 1252], (server.ip, 4000))
        .expect("1252 bytes fit");
    let err = h
        .send_to(&[1u8; 1253], (server.ip, 4000))
        .expect_err("1253 bytes must not fit a 1280 MTU with DF");
    assert!(udp::is_emsgsize(&err), "expected EMSGSIZE, got {err}");
    let got = udp::drain(&srv, Duration::from_millis(300)).expect("drain");
    assert_eq!(got, vec![1252]);

    // Inbound: the router cannot forward 1253 bytes onto the 1280 link.
    let home_public = SocketAddr::from((home.reflexive_ip(), 5000));
    srv.send_to(&[2u8; 1252], home_public).expect("send 1252");
    let first = srv.send_to(&[2u8; 1253], home_public);
    let got = udp::drain(&h, Duration::from_millis(300)).expect("drain");
    assert_eq!(
        got,
        vec![1252],
        "only the 1252-byte datagram crosses the link"
    );
    eprintln!("first inbound 1253-byte send: {first:?}");
    if first.is_ok() {
        // The router's ICMP "fragmentation needed" taught the sender the path MTU.
        let again = srv.send_to(&[2u8; 1253], home_public);
        let err = again.expect_err("after ICMP frag-needed the sender knows the path MTU");
        assert!(udp::is_emsgsize(&err), "expected EMSGSIZE, got {err}");
    }
}

#[test]
fn random_loss_drops_a_plausible_share() {
    let lab = Lab::new("loss").expect("lab");
    let net = two_hosts(&lab).expect("topology");
    impair::loss(&net.b.ns, &net.b.iface, 0.10).expect("loss");
    let rx = bind(&net.b.ns, (net.b.ip, 4000));
    let tx = bind(&net.a.ns, (net.a.ip, 0));
    // Grow the receive buffer's headroom by pacing: 1000 datagrams in bursts.
    let started = Instant::now();
    let mut received = 0usize;
    let mut buf = [0u8; 64];
    rx.set_nonblocking(true).expect("nonblocking");
    for i in 0..1000u32 {
        tx.send_to(&i.to_be_bytes(), (net.b.ip, 4000))
            .expect("send");
        while rx.recv_from(&mut buf).is_ok() {
            received += 1;
        }
    }
    rx.set_nonblocking(false).expect("blocking");
    received += udp::drain(&rx, Duration::from_millis(300))
        .expect("drain")
        .len();
    let lost = 1000 - received;
    assert!(
        (30..=250).contains(&lost),
        "10 % loss configured, {lost} of 1000 lost ({:?})",
        started.elapsed()
    );
}

#[test]
fn wireguard_go_and_boringtun_cli_interoperate() {
    use warren_netns_tests::tcp;
    use warren_netns_tests::wg::{start_wg, KeyPair, PeerConfig, WgImpl};

    let lab = Lab::new("interop").expect("lab");
    let net = two_hosts(&lab).expect("topology");
    let go = start_wg(&lab, &net.a.ns, WgImpl::WireguardGo, "10.9.0.1/24", 1420)
        .expect("wireguard-go (run scripts/setup if missing)");
    let bt = start_wg(&lab, &net.b.ns, WgImpl::BoringtunCli, "10.9.0.2/24", 1420)
        .expect("boringtun-cli (run scripts/setup if missing)");
    let (ka, kb) = (
        KeyPair::generate().expect("key"),
        KeyPair::generate().expect("key"),
    );
    go.set_key(&ka, 51820, lab.dir()).expect("wireguard-go key");
    bt.set_key(&kb, 51821, lab.dir())
        .expect("boringtun-cli key");
    go.add_peer(&PeerConfig {
        public_key: kb.public.clone(),
        allowed_ips: vec!["10.9.0.2/32".into()],
        endpoint: Some((net.b.ip, 51821).into()),
        keepalive: None,
    })
    .expect("wireguard-go peer");
    bt.add_peer(&PeerConfig {
        public_key: ka.public.clone(),
        allowed_ips: vec!["10.9.0.1/32".into()],
        endpoint: Some((net.a.ip, 51820).into()),
        keepalive: None,
    })
    .expect("boringtun-cli peer");

    let timeout = Duration::from_secs(10);
    let (up, down) = (tcp::pattern(300_000, 1), tcp::pattern(200_000, 2));
    tcp::exchange(
        &net.b.ns,
        (bt.ip(), 9000).into(),
        &net.a.ns,
        &up,
        &down,
        timeout,
    )
    .unwrap_or_else(|e| {
        panic!(
            "wireguard-go -> boringtun-cli: {e:#}\n{}\n{}",
            go.proc.describe(),
            bt.proc.describe()
        )
    });
    tcp::exchange(
        &net.a.ns,
        (go.ip(), 9001).into(),
        &net.b.ns,
        &down,
        &up,
        timeout,
    )
    .unwrap_or_else(|e| {
        panic!(
            "boringtun-cli -> wireguard-go: {e:#}\n{}\n{}",
            go.proc.describe(),
            bt.proc.describe()
        )
    });

    // Each side moved at least 400 kB of payload each way, plus overhead.
    for (iface, peer) in [(&go, &kb.public), (&bt, &ka.public)] {
        let p = iface
            .wait_for_handshake(peer, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{:?}: {e:#}", iface.imp));
        let age = p.latest_handshake.and_then(|t| t.elapsed().ok());
        assert!(
            age.is_some_and(|a| a < Duration::from_secs(60)),
            "{:?}: handshake age {age:?}",
            iface.imp
        );
        assert!(
            p.rx_bytes > 400_000 && p.tx_bytes > 400_000,
            "{:?}: counters {p:?}",
            iface.imp
        );
    }
    assert_eq!(
        go.peer(&kb.public).expect("dump").endpoint,
        Some((net.b.ip, 51821).into())
    );
}

/// Root-namespace state a lab must never change: link names, iptables rules
/// (filter and nat) and IPv4 forwarding. Read-only.
fn root_namespace_snapshot() -> String {
    let links = run_args(["ip", "-br", "link"]).expect("ip link");
    let mut snap: Vec<String> = links
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| format!("link {n}"))
        .collect();
    for table in ["filter", "nat"] {
        snap.push(run_args(["iptables", "-w", "-t", table, "-S"]).expect("iptables -S"));
    }
    snap.push(std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("ip_forward"));
    snap.join("\n")
}

fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    ns.run_in(|| {
        let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(c, "GET {path} HTTP/1.0\r\nHost: lab\r\n\r\n")?;
        let mut body = String::new();
        c.read_to_string(&mut body)?;
        Ok(body)
    })
    .map_err(std::io::Error::other)?
}

#[test]
fn dockerd_runs_host_network_containers_inside_its_namespace_only() {
    use warren_netns_tests::{import_busybox_image, start_dockerd};

    let before = root_namespace_snapshot();
    {
        let lab = Lab::new("docker").expect("lab");
        let net = two_hosts(&lab).expect("topology");
        let dockerd =
            start_dockerd(&lab, &net.a.ns).expect("dockerd (run scripts/setup if missing)");
        import_busybox_image(&dockerd, "local/busybox:1").expect("import busybox image");
        dockerd
            .docker(&[
                "run",
                "-d",
                "--network",
                "host",
                "local/busybox:1",
                "sh",
                "-c",
                "echo hello from the worker > /www/hello.txt && exec httpd -f -p 8080 -h /www",
            ])
            .expect("docker run");
        // From the other host: the container's port is bound in the worker's namespace.
        let url = SocketAddr::from((net.a.ip, 8080));
        let body = warren_netns_tests::wait_for_value(
            "httpd in the container",
            Duration::from_secs(10),
            || http_get(&net.b.ns, url, "/hello.txt").ok(),
        )
        .unwrap_or_else(|e| panic!("{e:#}\n{}", dockerd.proc.describe()));
        assert!(
            body.starts_with("HTTP/1.1 200") && body.contains("hello from the worker"),
            "{body}"
        );
        let ps = dockerd.docker(&["ps", "-q"]).expect("docker ps");
        assert_eq!(ps.lines().count(), 1, "one container running: {ps}");
        let pid = dockerd.proc.pid();
        dockerd.stop().expect("stop dockerd");
        assert!(process_gone(pid), "dockerd {pid} still running");
        drop(dockerd);
        // Nothing is left in the worker's namespace (containerd, shims, httpd).
        let left = net.a.ns.pids().expect("pids");
        assert!(
            left.is_empty(),
            "processes left in the worker's namespace: {left:?}"
        );
    }
    assert_eq!(
        before,
        root_namespace_snapshot(),
        "the root namespace changed"
    );
}

#[test]
fn nfqueue_delay_adds_latency_each_way() {
    let lab = Lab::new("delay").expect("lab");
    let net = two_hosts(&lab).expect("topology");
    let echo = Reflector::start(&net.b.ns, (net.b.ip, 3478).into()).expect("echo");
    let sock = bind(&net.a.ns, (net.a.ip, 0));
    let base =
        udp::median(udp::round_trips(&sock, echo.addr, 5, Duration::from_secs(1)).expect("rtt"));
    let by = Duration::from_millis(20);
    let _a = impair::delay(&lab, &net.a.ns, &net.a.iface, by).expect("delay on a");
    let _b = impair::delay(&lab, &net.b.ns, &net.b.iface, by).expect("delay on b");
    let rtts = udp::round_trips(&sock, echo.addr, 15, Duration::from_secs(2)).expect("rtt");
    let med = udp::median(rtts.clone());
    assert!(
        med >= Duration::from_millis(40) && med < Duration::from_millis(80),
        "20 ms each way: median RTT {med:?} (baseline {base:?}), all {rtts:?}"
    );
}

#[test]
fn programs_start_with_sigint_at_default_and_report_how_they_exit() {
    use std::os::unix::process::ExitStatusExt;
    use warren_netns_tests::Signal;

    let lab = Lab::new("signal").expect("lab");
    let ns = lab.netns("h").expect("netns");
    // Even if the test process ignores SIGINT (as a background job of a
    // non-interactive shell does), the program must get the default.
    // SAFETY: plain signal(2) calls; restored right after the spawn.
    let old = unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let sleeper = lab.spawn(&ns, Spawn::new("sleep").arg("100").name("sleeper"));
    unsafe { libc::signal(libc::SIGINT, old) };
    let sleeper = sleeper.expect("spawn");
    assert!(sleeper.is_running());
    sleeper.signal(Signal::Int).expect("SIGINT");
    let status = sleeper
        .wait_exit(Duration::from_secs(5))
        .expect("exits on SIGINT");
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    assert!(
        sleeper.signal(Signal::Term).is_err(),
        "signalling an exited process fails"
    );

    // A clean exit with output: the log is there to read.
    let talker = lab
        .spawn(
            &ns,
            Spawn::new("sh")
                .args(["-c", "echo starting; echo \"x=$X\"; exit 3"])
                .env("X", "42"),
        )
        .expect("spawn");
    let status = talker.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(3));
    assert_eq!(talker.log(), "starting\nx=42\n");
    assert!(talker.describe().contains("exit code 3") && talker.describe().contains("x=42"));

    // Waiting on a process that dies says so, with its log.
    let dying = lab
        .spawn(
            &ns,
            Spawn::new("sh").args(["-c", "echo fatal: no config; exit 1"]),
        )
        .expect("spawn");
    let err = dying
        .wait_for("a file that never appears", Duration::from_secs(5), || {
            false
        })
        .expect_err("the process exits first");
    assert!(format!("{err:#}").contains("fatal: no config"), "{err:#}");
}

#[test]
fn block_udp_cuts_the_direct_path_but_not_the_relay() {
    let lab = Lab::new("block").expect("lab");
    let net = Internet::new(&lab).expect("internet");
    let relay = net.add_public_host(&lab, "relay").expect("relay");
    let reflector = Reflector::start(&relay.ns, (relay.ip, 3478).into()).expect("reflector");
    let a = net.add_host(&lab, "a", Nat::Cone).expect("a");
    let b = net.add_host(&lab, "b", Nat::Cone).expect("b");
    let sa = bind(&a.ns, (Ipv4Addr::UNSPECIFIED, 7000));
    let sb = bind(&b.ns, (Ipv4Addr::UNSPECIFIED, 7000));
    let rules = impair::block_udp(&a, &b).expect("block");
    let ra = udp::reflexive_addr(&sa, reflector.addr, Duration::from_secs(3))
        .expect("relay reachable from a");
    let rb = udp::reflexive_addr(&sb, reflector.addr, Duration::from_secs(3))
        .expect("relay reachable from b");
    let interval = Duration::from_millis(100);
    let blocked = std::thread::scope(|s| {
        let ta = s.spawn(|| udp::punch(&sa, rb, 5, interval).expect("punch"));
        let tb = s.spawn(|| udp::punch(&sb, ra, 5, interval).expect("punch"));
        (ta.join().expect("a"), tb.join().expect("b"))
    });
    assert_eq!(blocked, (0, 0), "blocked path must not carry UDP");
    for r in &rules {
        r.remove().expect("unblock");
    }
    let open = std::thread::scope(|s| {
        let ta = s.spawn(|| udp::punch(&sa, rb, 10, interval).expect("punch"));
        let tb = s.spawn(|| udp::punch(&sb, ra, 10, interval).expect("punch"));
        (ta.join().expect("a"), tb.join().expect("b"))
    });
    assert!(
        open.0 > 0 && open.1 > 0,
        "unblocked path should punch again: {open:?}"
    );
}
