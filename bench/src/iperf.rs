//! iperf3 runs across a path: a one-shot server (`iperf3 -s -1`) in the
//! server namespace, a `-J` client in the client namespace, the JSON report
//! read into a [`Report`] with serde.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use warren_netns_tests::{Proc, Spawn};

use crate::paths::{Ends, MTU};

/// The iperf3 port (in the path's own namespaces).
const PORT: u16 = 5201;
/// UDP datagram size: fills a 1420-byte tunnel MTU (1420 − 20 IP − 8 UDP).
pub const UDP_LEN: u32 = MTU - 28;
/// How long a client may take beyond its test length before it is killed.
const CLIENT_SLACK: Duration = Duration::from_secs(30);

/// The outcome of a TCP run.
#[derive(Clone, Copy, Debug)]
pub struct Tcp {
    /// Received throughput, Gbit/s.
    pub gbps: f64,
    /// Bytes the receiver got.
    pub bytes: u64,
}

/// The outcome of a UDP run.
#[derive(Clone, Copy, Debug)]
pub struct Udp {
    /// Throughput of the datagrams that arrived, Gbit/s.
    pub gbps: f64,
    /// Datagrams lost, percent of those sent.
    pub loss_pct: f64,
}

/// `iperf3 --version`'s first line.
pub fn version() -> Result<String> {
    let out = warren_netns_tests::run_args(["iperf3", "--version"])?;
    Ok(out.lines().next().unwrap_or_default().trim().to_owned())
}

/// Starts `iperf3 -s -1` in the path's server namespace and waits until it
/// listens. The guard stops it on drop (it also exits after one test).
fn server(path: &impl Ends) -> Result<Proc> {
    let spec = Spawn::new("iperf3")
        .args(["-s", "-1", "-p", &PORT.to_string()])
        .name("iperf3-server");
    let proc = path.lab().spawn(path.server(), spec)?;
    let pid = proc.pid();
    proc.wait_for(
        &format!("iperf3 to listen on port {PORT}"),
        Duration::from_secs(10),
        || listening(pid, PORT),
    )?;
    Ok(proc)
}

/// Whether process `pid`'s network namespace has a TCP socket listening on
/// `port` (`/proc/PID/net/tcp{,6}` show the process's namespace). Polling
/// this, rather than connecting, keeps the one-shot server's one test free.
fn listening(pid: u32, port: u16) -> bool {
    let port = format!("{port:04X}");
    ["tcp", "tcp6"].iter().any(|f| {
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).unwrap_or_default();
        table.lines().skip(1).any(|line| {
            // Columns: sl, local_address (ADDR:PORT in hex), rem_address, st (0A = LISTEN).
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() > 3
                && cols[1].rsplit_once(':').is_some_and(|(_, p)| p == port)
                && cols[3] == "0A"
        })
    })
}

/// The client's arguments for a `seconds`-long test, TCP or UDP.
fn client_args(path: &impl Ends, udp: bool, seconds: u32) -> Vec<String> {
    let mut args = vec![
        "-c".to_owned(),
        path.server_ip().to_string(),
        "-p".to_owned(),
        PORT.to_string(),
        "-t".to_owned(),
        seconds.to_string(),
        "-J".to_owned(),
    ];
    if udp {
        args.extend(["-u", "-b", "0", "-l"].map(str::to_owned));
        args.push(UDP_LEN.to_string());
    }
    args
}

/// The part of iperf3's `-J` report the benchmark reads. Every field is
/// optional, so that a report of a failed test (an `error` and little
/// else) still parses; [`Report::tcp`] and [`Report::udp`] name what is
/// missing.
#[derive(Clone, Debug, Default, Deserialize)]
struct Report {
    /// Why the test failed, if it did.
    error: Option<String>,
    #[serde(default)]
    end: End,
}

/// `end`: the totals of the test.
#[derive(Clone, Debug, Default, Deserialize)]
struct End {
    /// What the receiver got (UDP: iperf3 ≥ 3.11 only).
    #[serde(default)]
    sum_received: Sum,
    /// UDP: what was sent, with the loss the receiver counted.
    #[serde(default)]
    sum: Sum,
}

/// One of `end`'s sums. Numbers are read as f64, as iperf3 writes some of
/// them with a fraction; its byte counts fit an f64 exactly below 2⁵³.
#[derive(Clone, Debug, Default, Deserialize)]
struct Sum {
    bits_per_second: Option<f64>,
    bytes: Option<f64>,
    packets: Option<f64>,
    lost_packets: Option<f64>,
}

/// `value`, or an error naming its place in the report.
fn need(value: Option<f64>, path: &str) -> Result<f64> {
    value.with_context(|| format!("{path} is missing"))
}

impl Report {
    fn parse(text: &str) -> Result<Report> {
        serde_json::from_str(text).context("invalid JSON")
    }

    /// The receiver's rate and byte count of a TCP test.
    fn tcp(&self) -> Result<Tcp> {
        let recv = &self.end.sum_received;
        Ok(Tcp {
            gbps: need(recv.bits_per_second, "end.sum_received.bits_per_second")? / 1e9,
            bytes: need(recv.bytes, "end.sum_received.bytes")? as u64,
        })
    }

    /// The receiver's rate (`end.sum_received`, iperf3 ≥ 3.11) and the
    /// datagrams lost (`end.sum`, counted by the receiver, in percent of
    /// those sent) of a UDP test; `label` names the path in errors.
    fn udp(&self, label: &str) -> Result<Udp> {
        let sum = &self.end.sum;
        let packets = need(sum.packets, "end.sum.packets")?;
        let lost = need(sum.lost_packets, "end.sum.lost_packets")?.max(0.0);
        if packets <= 0.0 {
            bail!("iperf3 UDP over {label} sent nothing");
        }
        let gbps = match self.end.sum_received.bits_per_second {
            Some(bps) => bps / 1e9,
            // Older iperf3: what was sent, scaled by what arrived.
            None => {
                need(sum.bits_per_second, "end.sum.bits_per_second")? * (1.0 - lost / packets) / 1e9
            }
        };
        Ok(Udp {
            gbps,
            loss_pct: 100.0 * lost / packets,
        })
    }
}

/// Runs one iperf3 test over `path` and returns the client's JSON report.
fn run(path: &impl Ends, udp: bool, seconds: u32) -> Result<Report> {
    let _server = server(path)?;
    let mut cmd = path.client().command("iperf3");
    cmd.args(client_args(path, udp, seconds));
    let limit = Duration::from_secs(u64::from(seconds)) + CLIENT_SLACK;
    let out = run_with_timeout(&mut cmd, limit)?;
    let report = Report::parse(&out.stdout).with_context(|| {
        format!(
            "iperf3 over {} printed no JSON report: {} {}",
            path.label(),
            out.stdout.trim(),
            out.stderr.trim()
        )
    })?;
    if let Some(err) = &report.error {
        bail!("iperf3 over {}: {err}", path.label());
    }
    if !out.ok {
        bail!("iperf3 over {} failed: {}", path.label(), out.stderr.trim());
    }
    Ok(report)
}

/// One TCP single-stream run.
pub fn tcp(path: &impl Ends, seconds: u32) -> Result<Tcp> {
    run(path, false, seconds)?.tcp()
}

/// One UDP run at full offered rate with [`UDP_LEN`]-byte datagrams (see
/// [`Report::udp`] for what is read).
pub fn udp(path: &impl Ends, seconds: u32) -> Result<Udp> {
    run(path, true, seconds)?.udp(path.label())
}

/// A TCP stream running through a path in the background (server and
/// client processes), for latency under load. Dropping it stops both.
pub struct Load {
    _client: Proc,
    _server: Proc,
}

/// Starts an iperf3 TCP stream over `path` lasting up to `seconds`, as
/// fast as it goes or paced at `rate` (iperf3's `-b`, e.g. `"150M"`).
pub fn start_load(path: &impl Ends, seconds: u32, rate: Option<&str>) -> Result<Load> {
    let server = server(path)?;
    let mut args = client_args(path, false, seconds);
    args.retain(|a| a != "-J");
    if let Some(rate) = rate {
        args.extend(["-b".to_owned(), rate.to_owned()]);
    }
    let spec = Spawn::new("iperf3").args(args).name("iperf3-load");
    let client = path.lab().spawn(path.client(), spec)?;
    Ok(Load {
        _client: client,
        _server: server,
    })
}

/// What a finished command printed.
struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` with its output captured, killing it after `limit` (or when
/// the benchmark is interrupted).
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Result<Output> {
    let line = warren_netns_tests::cmd::display(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{line}`"))?;
    let mut stdout = child.stdout.take().context("no stdout pipe")?;
    let mut stderr = child.stderr.take().context("no stderr pipe")?;
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().context("waitpid")? {
            break Some(s);
        }
        if Instant::now() >= deadline || crate::interrupted() {
            // Our own child, signalled through its handle (by pid).
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    match status {
        Some(s) => Ok(Output {
            ok: s.success(),
            stdout,
            stderr,
        }),
        None if crate::interrupted() => bail!("interrupted"),
        None => bail!("`{line}` did not finish within {limit:?}; killed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of iperf 3.12's `-J` report, cut down to what is read
    /// (and a little around it).
    const TCP: &str = r#" {"start": {"version": "iperf 3.12", "x": [1, 2.5e3, -3]},
        "intervals": [],
        "end": {"sum_sent": {"bytes": 1, "bits_per_second": 2.0},
                "sum_received": {"start": 0, "end": 5.0001, "seconds": 5.0001,
                                 "bytes": 123456789, "bits_per_second": 1.5e9, "sender": true}}} "#;

    #[test]
    fn reads_a_tcp_report() -> Result<()> {
        let t = Report::parse(TCP)?.tcp()?;
        assert_eq!(t.bytes, 123_456_789);
        assert_eq!(t.gbps, 1.5);
        Ok(())
    }

    #[test]
    fn reads_udp_reports_old_and_new() -> Result<()> {
        let new = Report::parse(
            r#"{"end": {"sum": {"bits_per_second": 4e9, "packets": 1000, "lost_packets": 250},
                        "sum_received": {"bits_per_second": 3e9}}}"#,
        )?
        .udp("p")?;
        assert_eq!((new.gbps, new.loss_pct), (3.0, 25.0));
        // iperf3 < 3.11 has no sum_received for UDP; negative loss (reordering) is none.
        let old = Report::parse(
            r#"{"end": {"sum": {"bits_per_second": 4e9, "packets": 1000, "lost_packets": -2}}}"#,
        )?
        .udp("p")?;
        assert_eq!((old.gbps, old.loss_pct), (4.0, 0.0));
        let none = Report::parse(r#"{"end": {"sum": {"packets": 0, "lost_packets": 0}}}"#)?;
        assert!(none.udp("p").is_err());
        Ok(())
    }

    #[test]
    fn a_failed_test_parses_and_names_what_is_missing() -> Result<()> {
        let r = Report::parse(
            r#"{"start": {}, "intervals": [], "end": {},
                "error": "unable to connect: a \"quoted\" \u00e9"}"#,
        )?;
        assert_eq!(
            r.error.as_deref(),
            Some("unable to connect: a \"quoted\" é")
        );
        let err = format!("{:#}", r.tcp().err().context("no error")?);
        assert!(
            err.contains("end.sum_received.bits_per_second is missing"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn rejects_broken_documents() {
        for bad in ["", "{", "{\"a\" 1}", "[1,]", "{} x", "\"open"] {
            assert!(Report::parse(bad).is_err(), "{bad:?}");
        }
    }
}
