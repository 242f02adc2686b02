//! The circumstances of a run, for the report: date, machine, versions.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use warren_netns_tests::{cmd, wg::warren_bin};

use crate::paths::{PathKind, WarrenBins};

/// Where and with what a run happened.
#[derive(Clone, Debug, Default)]
pub struct About {
    /// `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// Cores available to this process.
    pub nproc: usize,
    /// Total memory, e.g. "24 GiB".
    pub memory: String,
    /// `Linux 6.18.44-...`.
    pub kernel: String,
    /// The 1, 5 and 15 minute load averages when the run started (the
    /// machine may be shared).
    pub loadavg: String,
    /// Version of each measured implementation, and of iperf3, as
    /// `(name, version)`.
    pub versions: Vec<(String, String)>,
}

impl About {
    /// Gathers everything; versions only of the programs in `paths`, the
    /// warren ones of the binaries in `bins`.
    pub fn gather(paths: &[PathKind], bins: &WarrenBins) -> Result<About> {
        let mut versions = Vec::new();
        for kind in paths {
            let v = match kind {
                PathKind::Warren => warren_version(bins.current.as_deref())?,
                PathKind::WarrenBaseline => {
                    baseline_version(bins.baseline.as_deref().context("no baseline binary")?)?
                }
                PathKind::WireguardGo => first_line("wireguard-go", &["--version"])?,
                PathKind::BoringtunCli => first_line("boringtun-cli", &["--version"])?,
                PathKind::Veth => continue,
            };
            versions.push((kind.name().to_owned(), v));
        }
        versions.push(("iperf3".to_owned(), crate::iperf::version()?));
        Ok(About {
            date: now_utc(),
            cpu: cpu_model(),
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory: memory(),
            kernel: format!(
                "{} {}",
                read_trim("/proc/sys/kernel/ostype"),
                read_trim("/proc/sys/kernel/osrelease")
            ),
            loadavg: loadavg(),
            versions,
        })
    }
}

/// The 1, 5 and 15 minute load averages now, as `/proc/loadavg` gives
/// them (`"1.06 0.55 0.95"`).
pub fn loadavg() -> String {
    read_trim("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_default()
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// The first line `PROGRAM ARGS...` prints.
pub fn first_line(program: &str, args: &[&str]) -> Result<String> {
    let bin = cmd::require_bin(program)?;
    let out = cmd::run(Command::new(bin).args(args))?;
    Ok(out.lines().next().unwrap_or_default().trim().to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn memory() -> String {
    let kib = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    });
    kib.map_or_else(
        || "?".to_owned(),
        |k| format!("{:.0} GiB", k / 1024.0 / 1024.0),
    )
}

/// `warren --version` of the benchmarked binary (`bin`, else the one
/// found as usual), with the workspace's git commit (and a note if
/// warren's sources have uncommitted changes).
fn warren_version(bin: Option<&Path>) -> Result<String> {
    let bin = match bin {
        Some(b) => b.to_path_buf(),
        None => warren_bin()?,
    };
    let version = first_line_of(&bin)?;
    Ok(match git_commit(&workspace_root()) {
        Some(commit) => format!("{version}, commit {commit}"),
        None => version,
    })
}

/// `warren --version` of the baseline binary, and where it is (relative to
/// the workspace when inside it: `make bench-baseline` builds into
/// `target/baseline/COMMIT/`, so the path names the commit).
fn baseline_version(bin: &Path) -> Result<String> {
    let version = first_line_of(bin)?;
    let root = workspace_root();
    let shown = bin.strip_prefix(&root).unwrap_or(bin);
    Ok(format!("{version}, {}", shown.display()))
}

fn first_line_of(bin: &Path) -> Result<String> {
    let out = cmd::run(Command::new(bin).arg("--version"))?;
    Ok(out.lines().next().unwrap_or_default().trim().to_owned())
}

/// The workspace root (this package's parent directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `HEAD`'s short hash, "+ uncommitted changes" if warren's crates differ
/// from it; `None` outside a git checkout.
fn git_commit(root: &Path) -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "--short=12", "HEAD"])?;
    let dirty = git(&["status", "--porcelain", "--", "crates"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{head} + uncommitted changes in crates/")
    } else {
        head
    })
}
