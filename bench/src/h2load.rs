//! h2load (nghttp2), the HTTP/2-over-TLS load generator of the proxy
//! section: one run against `https://HOST:PORT/` with `--connect-to` the
//! proxy's address (so the URI's host is the SNI and `:authority` without
//! any name resolution), and what it measured: requests, errors and time
//! from its summary, latency percentiles from its per-request `--log-file`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use warren_netns_tests::Netns;

use crate::stats::percentile;
use crate::wrk::{Load, LoadRun};

/// Concurrent streams per connection (`-m`).
pub const STREAMS: u32 = 10;

/// `h2load --version`'s first line, e.g. `h2load nghttp2/1.52.0`.
pub fn version() -> String {
    crate::about::first_line("h2load", &["--version"]).unwrap_or_else(|_| "?".to_owned())
}

/// How long (or how many requests) a run goes on.
#[derive(Clone, Copy, Debug)]
pub enum Length {
    /// `-D SECONDS`.
    Duration(Duration),
    /// `-n N`.
    Requests(u64),
}

/// Runs h2load in `ns` against `https://host:port/`, connecting to `addr`,
/// with `load`'s threads and connections and [`STREAMS`] streams each; its
/// per-request log goes to `log` (overwritten). Fails unless the
/// connections negotiated HTTP/2.
pub fn run(
    ns: &Netns,
    log: &Path,
    addr: SocketAddr,
    host: &str,
    load: Load,
    length: Length,
) -> Result<LoadRun> {
    let _ = std::fs::remove_file(log);
    let mut command = ns.command("h2load");
    command
        .arg(format!("-t{}", load.threads))
        .arg(format!("-c{}", load.connections))
        .arg(format!("-m{STREAMS}"))
        .arg("-T")
        .arg("5")
        .arg("--log-file")
        .arg(log)
        .arg(format!("--connect-to={addr}"));
    match length {
        Length::Duration(d) => command.arg("-D").arg(d.as_secs().max(1).to_string()),
        Length::Requests(n) => command.arg("-n").arg(n.to_string()),
    };
    command.arg(format!("https://{host}:{}/", addr.port()));
    let stdout = warren_netns_tests::cmd::run(&mut command)
        .with_context(|| format!("h2load against {addr}"))?;
    let log_text =
        std::fs::read_to_string(log).with_context(|| format!("h2load's log {}", log.display()))?;
    parse(&stdout, &log_text).with_context(|| format!("h2load against {addr} printed:\n{stdout}"))
}

/// A duration as h2load formats it (`523.10ms`, `3.00s`, `812us`), seconds.
fn duration_seconds(text: &str) -> Option<f64> {
    let text = text.trim().trim_end_matches(',');
    for (suffix, scale) in [("us", 1e-6), ("ms", 1e-3), ("s", 1.0)] {
        if let Some(n) = text.strip_suffix(suffix) {
            return n.parse::<f64>().ok().map(|v| v * scale);
        }
    }
    None
}

/// What h2load's summary (`stdout`) and per-request log (`log`: start µs,
/// status, µs to the response's end, tab-separated) say.
fn parse(stdout: &str, log: &str) -> Result<LoadRun> {
    let protocol = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Application protocol:"))
        .map(str::trim);
    if protocol != Some("h2") {
        bail!("the connections did not negotiate h2 (application protocol {protocol:?})");
    }
    let finished = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("finished in "))
        .context("no `finished in` line")?;
    let seconds = finished
        .split(',')
        .next()
        .and_then(duration_seconds)
        .with_context(|| format!("cannot read the time in `{finished}`"))?;
    let counts = |prefix: &str| -> Result<Vec<(String, u64)>> {
        let line = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .with_context(|| format!("no `{prefix}` line"))?;
        line.split(',')
            .map(|part| {
                let mut words = part.split_whitespace();
                let n = words
                    .next()
                    .and_then(|w| w.parse().ok())
                    .with_context(|| format!("cannot read `{part}`"))?;
                Ok((words.next().unwrap_or_default().to_owned(), n))
            })
            .collect()
    };
    let count = |list: &[(String, u64)], name: &str| -> Result<u64> {
        list.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .with_context(|| format!("no `{name}` count"))
    };
    let requests = counts("requests:")?;
    let status = counts("status codes:")?;
    let mut latencies = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        let (_, code, us) = (cols.next(), cols.next(), cols.next());
        let ok = code
            .and_then(|c| c.trim().parse::<u16>().ok())
            .is_some_and(|c| (200..400).contains(&c));
        let us: f64 = us
            .and_then(|u| u.trim().parse().ok())
            .with_context(|| format!("log line `{line}`"))?;
        if ok {
            latencies.push(us);
        }
    }
    let pct = |p: f64| percentile(&latencies, p).unwrap_or(0.0);
    Ok(LoadRun {
        requests: count(&requests, "succeeded")?,
        seconds,
        errors: count(&requests, "failed")?
            + count(&requests, "errored")?
            + count(&requests, "timeout")?
            + count(&status, "4xx")?
            + count(&status, "5xx")?,
        p50_us: pct(50.0),
        p99_us: pct(99.0),
        p999_us: pct(99.9),
        max_us: latencies.iter().copied().fold(0.0, f64::max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUT: &str = "starting benchmark...\nspawning thread #0: 32 total client(s). Timing-based test with 0s of warm-up time and 3s of main duration for measurements.\n\
        Application protocol: h2\n\
        finished in 3.00s, 20000.00 req/s, 21.50MB/s\n\
        requests: 60000 total, 60640 started, 60000 done, 59990 succeeded, 10 failed, 0 errored, 2 timeout\n\
        status codes: 59990 2xx, 0 3xx, 0 4xx, 10 5xx\n";

    #[test]
    fn reads_the_summary_and_the_log() -> Result<()> {
        let log = "1764612000000000\t200\t1000\n1764612000000001\t200\t3000\n\
                   1764612000000002\t502\t9000\n1764612000000003\t200\t2000\n";
        let run = parse(OUT, log)?;
        assert_eq!(run.requests, 59_990);
        assert_eq!(run.errors, 10 + 2 + 10);
        assert!((run.seconds - 3.0).abs() < 1e-9);
        assert_eq!(run.p50_us, 2000.0);
        assert_eq!(run.max_us, 3000.0);
        assert!(parse(&OUT.replace(": h2", ": http/1.1"), log).is_err());
        assert!(parse("nothing", log).is_err());
        Ok(())
    }

    #[test]
    fn reads_durations() {
        assert_eq!(duration_seconds("3.00s"), Some(3.0));
        assert_eq!(duration_seconds("250.00ms"), Some(0.25));
        assert_eq!(duration_seconds("812us"), Some(0.000812));
        assert_eq!(duration_seconds("x"), None);
    }
}
