//! `warren logs` and `warren exec` end to end: a control plane, a
//! `--direct` worker in a VPC and a `--relay` worker behind a symmetric NAT,
//! each with its own Docker daemon. The CLI runs on the control host, which
//! cannot reach the relayed node's address: everything about its replica
//! goes through the agent's own QUIC connection to the control plane.
//! Logs (all, --tail, --since, --follow), --previous after a restart, exec
//! with its output and exit status, and one line naming the node when its
//! agent is down.

#![allow(clippy::unwrap_used)]

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use warren_netns_tests::cluster::{Cluster, DockerNode, BUSYBOX_IMAGE};
use warren_netns_tests::{wait_for_value, Nat};

/// A workload that prints a numbered line, with its container's hostname
/// (its short id), every half second.
const TICKER: &str = "i=0; while true; do echo $HOSTNAME line $i; i=$((i+1)); sleep 0.5; done";

/// What `warren ARGS` on the control host did: its exit status, stdout and
/// (trimmed) stderr.
#[derive(Debug, PartialEq, Eq)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn warren(cluster: &Cluster, args: &[&str]) -> Ran {
    let out = cluster.admin_output(args).unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

impl Ran {
    /// Its stdout; it must have succeeded.
    fn succeeded(self) -> String {
        assert_eq!(self.code, 0, "{self:?}");
        self.stdout
    }
}

/// `warren ARGS`, which must succeed: its stdout.
fn ok(cluster: &Cluster, args: &[&str]) -> String {
    warren(cluster, args).succeeded()
}

/// The numbers of the ticker's lines in `text` from the container
/// `hostname`, in order.
fn ticks(text: &str, hostname: &str) -> Vec<u64> {
    let marker = format!("{hostname} line ");
    text.lines()
        .filter_map(|line| line.split_once(&marker))
        .filter_map(|(_, n)| n.trim().parse().ok())
        .collect()
}

/// Whether `numbers` go up by one from the first.
fn consecutive(numbers: &[u64]) -> bool {
    numbers.windows(2).all(|w| w[1] == w[0] + 1)
}

/// The one running warren container on `node`.
fn only_container(node: &DockerNode) -> String {
    let running = node.running().unwrap();
    assert_eq!(running.len(), 1, "{}: {running:?}", node.name);
    running[0].clone()
}

/// `warren logs ARGS --follow` started, and a channel of the lines it
/// prints on stdout.
fn follow(cluster: &Cluster, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = cluster
        .admin_command(&[args, &["--follow"]].concat())
        .unwrap()
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    (child, received)
}

#[test]
fn logs_and_exec_reach_a_relayed_node_and_say_when_it_is_down() {
    let cluster = Cluster::new("logsexec").unwrap();
    let mut vm = DockerNode::in_vpc(&cluster, "vm").unwrap();
    let mut pi = DockerNode::behind(&cluster, "pi", Nat::Symmetric).unwrap();
    vm.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    pi.join(&cluster, Some(&cluster.token().unwrap())).unwrap();
    // Two tickers, spread: one on each node.
    let deploy = [
        "deploy",
        "ticker",
        "--image",
        BUSYBOX_IMAGE,
        "--replicas",
        "2",
        "--wait",
        "--",
        "sh",
        "-c",
        TICKER,
    ];
    let ran = warren(&cluster, &deploy);
    assert_eq!(
        ran.code,
        0,
        "{ran:?}\n{}\n{}",
        vm.agent_log_tail(30),
        pi.agent_log_tail(30)
    );
    let replicas = cluster.replicas().unwrap();
    let id_on = |node: &str| {
        let replica = replicas.iter().find(|r| r["node"] == node);
        let replica = replica.unwrap_or_else(|| panic!("nothing on {node}: {replicas:?}"));
        replica["id"].as_str().unwrap().to_owned()
    };
    let (on_pi, on_vm) = (id_on("pi"), id_on("vm"));
    let (pi_box, vm_box) = (only_container(&pi), only_container(&vm));
    // `warren logs ticker --replica PI ARGS...`, `warren exec ticker
    // --replica PI -- COMMAND...`: the relayed replica's.
    let pi_logs = |args: &[&str]| {
        let logs = ["logs", "ticker", "--replica", on_pi.as_str()];
        warren(&cluster, &[&logs[..], args].concat())
    };
    let pi_exec = |command: &[&str]| {
        let exec = ["exec", "ticker", "--replica", on_pi.as_str(), "--"];
        warren(&cluster, &[&exec[..], command].concat())
    };

    // The relayed replica's output from its start, as it is (no prefix
    // with --replica); by its number too.
    let logs = wait_for_value("three lines from pi", Duration::from_secs(10), || {
        let logs = pi_logs(&[]).succeeded();
        (ticks(&logs, &pi_box).len() >= 3).then_some(logs)
    })
    .unwrap();
    assert!(logs.starts_with(&format!("{pi_box} line 0\n")), "{logs}");
    assert!(consecutive(&ticks(&logs, &pi_box)), "{logs}");
    let number = on_pi.rsplit_once('-').unwrap().1;
    let by_number = ok(&cluster, &["logs", "ticker", "--replica", number]);
    assert!(by_number.starts_with(&format!("{pi_box} line 0\n")));

    // Every replica's lines, each prefixed with its replica.
    let all = ok(&cluster, &["logs", "ticker"]);
    for (id, hostname) in [(&on_pi, &pi_box), (&on_vm, &vm_box)] {
        let prefix = format!("{id} | {hostname} line ");
        assert!(all.lines().any(|l| l.starts_with(&prefix)), "{id}: {all}");
    }
    assert!(all.lines().all(|l| l.starts_with("ticker-")), "{all}");

    // --tail: the last N lines.
    let tail = pi_logs(&["--tail", "2"]).succeeded();
    let tailed = ticks(&tail, &pi_box);
    assert_eq!((tail.lines().count(), tailed.len()), (2, 2), "{tail}");
    assert!(consecutive(&tailed), "{tail}");

    // --follow: lines printed after it started, as they come.
    let (mut child, lines) = follow(
        &cluster,
        &["logs", "ticker", "--replica", &on_pi, "--tail", "0"],
    );
    let mut followed = Vec::new();
    while followed.len() < 3 {
        match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => followed.push(line),
            Err(error) => panic!("--follow: {error} after {followed:?}"),
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let after = ticks(&followed.join("\n"), &pi_box);
    assert_eq!(after.len(), 3, "{followed:?}");
    assert!(after[0] > tailed[1], "{after:?} after {tailed:?}");
    assert!(consecutive(&after), "{after:?}");

    // --since: only the last second's lines (Docker counts whole seconds,
    // two lines a second).
    let since = pi_logs(&["--since", "1s"]).succeeded();
    let recent = ticks(&since, &pi_box);
    let everything = ticks(&pi_logs(&[]).succeeded(), &pi_box);
    assert!(!recent.is_empty() && recent.len() <= 6, "{since}");
    assert!(recent[0] > 0 && consecutive(&recent), "{since}");
    assert!(everything.len() > recent.len(), "{everything:?} {recent:?}");

    // exec in the relayed replica: its output where it went, its status.
    let ran = pi_exec(&["sh", "-c", "echo hi; echo oops >&2; exit 3"]);
    let expected = Ran {
        code: 3,
        stdout: "hi\n".to_owned(),
        stderr: "oops".to_owned(),
    };
    assert_eq!(ran, expected);
    let hostname = pi_exec(&["cat", "/etc/hostname"]).succeeded();
    assert_eq!(hostname.trim(), pi_box);
    let ran = pi_exec(&["/no/such"]);
    // What `docker exec` does: 126, and the runtime's reason in the
    // output (on stdout, as the daemon sends it).
    assert_eq!(ran.code, 126, "{ran:?}");
    assert!(ran.stdout.contains("no such file"), "{ran:?}");

    // Unknown services and replicas: one line, exit status 4.
    let unknown: [&[&str]; 4] = [
        &["logs", "nope"],
        &["logs", "ticker", "--replica", "9"],
        &["exec", "nope", "--", "true"],
        &["exec", "ticker", "--replica", "ticker-9", "--", "true"],
    ];
    for args in unknown {
        let ran = warren(&cluster, args);
        assert_eq!(ran.code, 4, "{args:?}: {ran:?}");
        assert_eq!(ran.stderr.lines().count(), 1, "{args:?}: {ran:?}");
    }

    // --previous: nothing before a crash; after `docker kill` and the
    // agent's restart, the killed container's output and not the new one's.
    let ran = pi_logs(&["--previous"]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(
        ran.stderr,
        format!("{on_pi}: no exited container: it has not crashed or been restarted")
    );
    pi.dockerd.docker(&["kill", &pi_box]).unwrap();
    let restarted = wait_for_value("pi's replica restarted", Duration::from_secs(15), || {
        let running = pi.running().unwrap();
        (running.len() == 1 && running[0] != pi_box).then(|| running[0].clone())
    })
    .unwrap();
    let previous = pi_logs(&["--previous"]).succeeded();
    let before_kill = ticks(&previous, &pi_box);
    assert!(before_kill.len() >= everything.len(), "{previous}");
    assert!(consecutive(&before_kill), "{previous}");
    assert!(ticks(&previous, &restarted).is_empty(), "{previous}");
    let current = wait_for_value(
        "the new container's output",
        Duration::from_secs(10),
        || {
            let logs = pi_logs(&[]).succeeded();
            (!ticks(&logs, &restarted).is_empty()).then_some(logs)
        },
    )
    .unwrap();
    assert!(ticks(&current, &pi_box).is_empty(), "{current}");

    // pi's agent stopped: its replica is one line naming the node, the
    // exit status is 1, and vm's replica is still shown.
    pi.agent.take().unwrap().stop().unwrap();
    let ran = wait_for_value("pi down", Duration::from_secs(20), || {
        let ran = warren(&cluster, &["logs", "ticker"]);
        ran.stderr.contains("node pi is down").then_some(ran)
    })
    .unwrap();
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(ran.stderr, format!("{on_pi}: node pi is down"), "{ran:?}");
    assert!(!ticks(&ran.stdout, &vm_box).is_empty(), "{ran:?}");
    assert!(ticks(&ran.stdout, &restarted).is_empty(), "{ran:?}");
    let ran = pi_logs(&[]);
    assert_eq!(
        (ran.code, ran.stdout.as_str(), ran.stderr.as_str()),
        (1, "", format!("{on_pi}: node pi is down").as_str())
    );
    let ran = pi_exec(&["true"]);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert_eq!(ran.stderr.lines().count(), 1, "{ran:?}");
    assert!(ran.stderr.contains("node pi is down"), "{ran:?}");
    // exec without --replica goes to the replica that can run it.
    assert_eq!(
        ok(&cluster, &["exec", "ticker", "--", "cat", "/etc/hostname"]).trim(),
        vm_box
    );
}
