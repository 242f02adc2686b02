//! End-to-end tests of `warren serve` and `warren token` on a lab host: the
//! control plane creates its identities once, issues join tokens that pin
//! its certificate and name where agents reach it, lists and revokes them
//! through the admin API with the admin credential only, and keeps
//! everything it acknowledged across a SIGKILL.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;
use warren_netns_tests::wg::warren_bin;
use warren_netns_tests::{Host, Internet, Lab, Proc, Signal, Spawn};
use warren_wire::JoinToken;

const UP: Duration = Duration::from_secs(10);

/// A control plane on a public lab host.
struct Control {
    lab: Lab,
    host: Host,
    data_dir: PathBuf,
    _net: Internet,
}

impl Control {
    fn new(tag: &str) -> Control {
        let lab = Lab::new(tag).unwrap();
        let net = Internet::new(&lab).unwrap();
        let host = net.add_public_host(&lab, "control").unwrap();
        let data_dir = lab.dir().join("control-data");
        Control {
            lab,
            host,
            data_dir,
            _net: net,
        }
    }

    /// Starts `warren serve` with `extra` arguments and waits until it is up.
    fn serve(&self, extra: &[&str]) -> Proc {
        let iface = self.lab.iface_name("wctl");
        let proc = self
            .lab
            .spawn(
                &self.host.ns,
                Spawn::new(warren_bin().unwrap())
                    .arg("serve")
                    .arg("--data-dir")
                    .arg(&self.data_dir)
                    .args(["--iface", &iface])
                    .args(extra)
                    .name("serve"),
            )
            .unwrap();
        proc.wait_for_log("control plane up", UP).unwrap();
        proc
    }

    /// Runs `warren ARGS` in the control host's namespace, the data
    /// directory given by the environment as an operator would.
    fn warren(&self, args: &[&str]) -> Output {
        self.warren_with(&self.data_dir, args)
    }

    /// Like [`Control::warren`], with another data directory.
    fn warren_with(&self, data_dir: &Path, args: &[&str]) -> Output {
        self.host
            .ns
            .command("env")
            .arg(format!("WARREN_DATA_DIR={}", data_dir.display()))
            .arg(warren_bin().unwrap())
            .args(args)
            .output()
            .unwrap()
    }

    /// Like [`Control::warren`], expecting success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.warren(args);
        assert!(
            out.status.success(),
            "warren {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Like [`Control::warren`], expecting one clear line on stderr and a
    /// non-zero exit; returns that line.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.warren(args);
        assert!(!out.status.success(), "warren {args:?} succeeded");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("warren: error: "), "{stderr}");
        stderr
    }

    fn tokens(&self) -> Vec<Value> {
        let listed: Value = serde_json::from_str(&self.ok(&["token", "list", "--json"])).unwrap();
        listed["tokens"].as_array().unwrap().clone()
    }
}

fn sha256_of(path: &Path) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, &std::fs::read(path).unwrap());
    digest.as_ref().try_into().unwrap()
}

fn state_of(tokens: &[Value], id: &str) -> String {
    tokens
        .iter()
        .find(|t| t["id"] == id)
        .map(|t| t["state"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no token {id} in {tokens:?}"))
}

#[test]
fn tokens_are_issued_pinned_listed_revoked_and_survive_a_sigkill() {
    let control = Control::new("ctl-tokens");
    let serve = control.serve(&[]);

    // The token names where agents reach the control plane (the host's own
    // address, as nothing else was given) and pins its certificate.
    let text = control.ok(&["token", "create", "--ttl", "2h", "--uses", "3"]);
    assert_eq!(text.lines().count(), 1, "only the token on stdout: {text}");
    let token: JoinToken = text.trim().parse().unwrap();
    assert_eq!(
        token.control,
        vec![SocketAddr::from((control.host.ip, 7443))]
    );
    assert_eq!(
        token.cert_sha256,
        sha256_of(&control.data_dir.join("tls.crt"))
    );
    let id = token.id_hex();
    let short: JoinToken = control
        .ok(&["token", "create", "--ttl", "1s"])
        .trim()
        .parse()
        .unwrap();

    let tokens = control.tokens();
    assert_eq!(tokens.len(), 2);
    let first = tokens.iter().find(|t| t["id"] == id.as_str()).unwrap();
    assert_eq!(first["uses"], 3);
    assert_eq!(first["used"], 0);
    assert_eq!(first["state"], "active");
    let table = control.ok(&["token", "list"]);
    assert!(table.contains(&id) && table.contains("0/3"), "{table}");

    // Revoking: by id; an unknown id is one clear error that changes nothing.
    control.ok(&["token", "revoke", &id]);
    let unknown = control.fails(&["token", "revoke", "0123456789abcdef"]);
    assert!(unknown.contains("no token has the id"), "{unknown}");
    control.fails(&["token", "create", "--uses", "0"]);
    std::thread::sleep(Duration::from_millis(1100));
    let tokens = control.tokens();
    assert_eq!(tokens.len(), 2, "refused requests created nothing");
    assert_eq!(state_of(&tokens, &id), "revoked");
    assert_eq!(state_of(&tokens, &short.id_hex()), "expired");

    // Without the admin credential, or with a wrong one, the API refuses.
    let elsewhere = control.lab.dir();
    let missing = control.warren_with(elsewhere, &["token", "list"]);
    assert!(!missing.status.success());
    std::fs::write(elsewhere.join("admin.token"), "AAAA\n").unwrap();
    let wrong = control.warren_with(elsewhere, &["token", "list"]);
    assert!(!wrong.status.success());
    let wrong = String::from_utf8_lossy(&wrong.stderr);
    assert!(wrong.contains("wrong admin credential"), "{wrong}");

    // SIGKILL, restart: same identities, every token as it was.
    let kept = control.ok(&["token", "create"]);
    serve.signal(Signal::Kill).unwrap();
    serve.wait_exit(Duration::from_secs(5)).unwrap();
    let _serve = control.serve(&[]);
    let tokens = control.tokens();
    assert_eq!(tokens.len(), 3, "{tokens:?}");
    let kept: JoinToken = kept.trim().parse().unwrap();
    assert_eq!(state_of(&tokens, &kept.id_hex()), "active");
    assert_eq!(state_of(&tokens, &id), "revoked");
    assert_eq!(
        kept.cert_sha256,
        sha256_of(&control.data_dir.join("tls.crt")),
        "the certificate tokens pin is the same after a restart"
    );
}

#[test]
fn serve_refuses_bad_options_with_one_clear_line() {
    let control = Control::new("ctl-refuse");
    let small = control.fails(&["serve", "--mesh-cidr", "10.0.0.0/31"]);
    assert!(small.contains("too small"), "{small}");
    control
        .host
        .ns
        .add_route("10.88.0.0/16", control.host.ip)
        .unwrap();
    let routed = control.fails(&["serve", "--mesh-cidr", "10.88.4.0/24"]);
    assert!(
        routed.contains("overlaps the route to 10.88.0.0/16"),
        "{routed}"
    );
    control.host.ns.add_addr("eth0", "100.96.7.1/24").unwrap();
    let overlap = control.fails(&["serve"]);
    assert!(
        overlap.contains("100.96.0.0/16 overlaps 100.96.7.1 on eth0")
            && overlap.contains("--mesh-cidr"),
        "{overlap}"
    );
    let busy = control.serve(&[
        "--mesh-cidr",
        "10.77.0.0/16",
        "--api-listen",
        "127.0.0.1:7080",
    ]);
    // A second control plane on the host: its mesh would overlap the first's.
    let twice = control.fails(&["serve", "--mesh-cidr", "10.77.0.0/16"]);
    assert!(twice.contains("overlaps 10.77.0.1"), "{twice}");
    let taken = control.fails(&[
        "serve",
        "--mesh-cidr",
        "10.78.0.0/16",
        "--relay-listen",
        "127.0.0.1:3479",
    ]);
    assert!(taken.contains("admin API on 127.0.0.1:7080"), "{taken}");
    drop(busy);
    // The relay key standalone relays trust is the one the data dir holds.
    let key = control.ok(&["control-key"]);
    assert_eq!(key.trim().len(), 44, "{key}");
}
