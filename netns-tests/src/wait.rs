//! Polling with a deadline: what tests wait on instead of fixed sleeps.

use anyhow::{bail, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// Polls `cond` (with a short, growing interval) until it returns true, or
/// fails after `timeout` with "timed out ... waiting for WHAT".
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    wait_for_value(what, timeout, || cond().then_some(())).map(drop)
}

/// Polls `probe` until it returns `Some(value)` and returns the value, or
/// fails after `timeout`.
pub fn wait_for_value<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(2);
    loop {
        if let Some(v) = probe() {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(50));
    }
}

/// Waits until `path` exists.
pub fn wait_for_file(path: &Path, timeout: Duration) -> Result<()> {
    wait_for(&format!("{} to exist", path.display()), timeout, || {
        path.exists()
    })
}
