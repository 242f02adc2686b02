//! wrk, the HTTP/1.1 load generator of the proxy section: one run, and
//! what it measured, read from a line its Lua `done` callback prints (wrk's
//! own `--latency` output stops at p99; the script also gives p99.9).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use warren_netns_tests::Netns;

/// The first word of the line [`SCRIPT`] prints.
const MARK: &str = "warren-bench-wrk";

/// wrk's Lua script: on `done`, one line of `key=value` pairs after
/// [`MARK`]; latencies in µs.
pub const SCRIPT: &str = r#"done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "warren-bench-wrk requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d p50=%.0f p99=%.0f p999=%.0f max=%.0f\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"#;

/// How much load a run offers: wrk's threads and connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// `-t`.
    pub threads: u32,
    /// `-c`.
    pub connections: u32,
}

/// What one run of a load generator measured (wrk's today; h2load's,
/// read from its per-request log, would fill the same figures).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadRun {
    /// Responses completed.
    pub requests: u64,
    /// How long it ran, seconds.
    pub seconds: f64,
    /// Socket errors (connect, read, write, timeout) and non-2xx/3xx
    /// responses.
    pub errors: u64,
    /// Latency percentiles, µs.
    pub p50_us: f64,
    /// p99, µs.
    pub p99_us: f64,
    /// p99.9, µs.
    pub p999_us: f64,
    /// The slowest response, µs.
    pub max_us: f64,
}

impl LoadRun {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// `wrk --version`'s first words (wrk prints it on stdout and exits 1).
pub fn version() -> String {
    let out = std::process::Command::new("wrk").arg("--version").output();
    out.ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.lines()
                .next()
                .map(|l| l.split(" Copyright").next().unwrap_or(l).trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// Runs wrk in `ns` against `http://addr/` with `Host: host` (or the
/// address itself when `None`) for `duration`, with [`SCRIPT`] at
/// `script`.
pub fn run(
    ns: &Netns,
    script: &Path,
    addr: SocketAddr,
    host: Option<&str>,
    load: Load,
    duration: Duration,
) -> Result<LoadRun> {
    let mut command = ns.command("wrk");
    command
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .arg("--timeout")
        .arg("5s")
        .arg("-s")
        .arg(script);
    if let Some(host) = host {
        command.arg("-H").arg(format!("Host: {host}"));
    }
    command.arg(format!("http://{addr}/"));
    let stdout = warren_netns_tests::cmd::run(&mut command)
        .with_context(|| format!("wrk against {addr}"))?;
    parse(&stdout).with_context(|| format!("wrk against {addr} printed:\n{stdout}"))
}

/// The figures of the [`MARK`] line in wrk's output.
fn parse(out: &str) -> Result<LoadRun> {
    let line = out
        .lines()
        .find_map(|l| l.trim().strip_prefix(MARK))
        .context("no line from the Lua script")?;
    let field = |name: &str| -> Result<f64> {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no {name}="))?
            .parse::<f64>()
            .with_context(|| format!("{name} is not a number"))
    };
    let count = |name: &str| -> Result<u64> { Ok(field(name)?.max(0.0) as u64) };
    let errors = ["connect", "read", "write", "status", "timeout"]
        .iter()
        .map(|name| count(name))
        .sum::<Result<u64>>()?;
    Ok(LoadRun {
        requests: count("requests")?,
        seconds: field("duration_us")? / 1e6,
        errors,
        p50_us: field("p50")?,
        p99_us: field("p99")?,
        p999_us: field("p999")?,
        max_us: field("max")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_script_line() -> Result<()> {
        let out = "Running 5s test @ http://203.0.113.10:80/\n  2 threads and 64 connections\n\
                   warren-bench-wrk requests=100000 duration_us=5000000 bytes=1 connect=0 \
                   read=1 write=0 status=2 timeout=0 p50=812 p99=2400 p999=5100 max=9000\n";
        let run = parse(out)?;
        assert_eq!(run.requests, 100_000);
        assert_eq!(run.errors, 3);
        assert!((run.rps() - 20_000.0).abs() < 1e-6);
        assert_eq!(
            (run.p50_us, run.p99_us, run.p999_us),
            (812.0, 2400.0, 5100.0)
        );
        assert!(parse("Running 5s test\n").is_err());
        assert!(parse("warren-bench-wrk requests=x\n").is_err());
        Ok(())
    }

    #[test]
    fn the_script_prints_every_field_parse_reads() {
        for name in [
            "requests=",
            "duration_us=",
            "connect=",
            "read=",
            "write=",
            "status=",
            "timeout=",
            "p50=",
            "p99=",
            "p999=",
            "max=",
        ] {
            assert!(SCRIPT.contains(name), "{name}");
        }
        assert!(SCRIPT.contains(MARK));
    }
}
