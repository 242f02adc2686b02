//! CPU accounting of the tunnel processes, from `/proc/PID/stat`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use warren_netns_tests::WgImpl;

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of
/// `/proc/PID/stat`'s utime and stime.
pub fn clock_ticks() -> Result<f64> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        bail!("sysconf(_SC_CLK_TCK) failed");
    }
    Ok(hz as f64)
}

/// utime + stime of process `pid` (all its threads), in clock ticks.
pub fn ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_ticks(&stat).with_context(|| format!("cannot parse {path}: {stat:?}"))
}

/// utime + stime from the text of `/proc/PID/stat`. The command name (field
/// 2) may hold spaces and parentheses, so fields are counted from its last `)`.
fn parse_ticks(stat: &str) -> Result<u64> {
    let rest = stat
        .rsplit_once(')')
        .context("no ')' after the command name")?
        .1;
    // After ')': field 3 (state) is index 0, so utime (14) is 11, stime (15) 12.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .context("too few fields")?
            .parse()
            .context("not a number")
    };
    Ok(field(11)? + field(12)?)
}

/// Each thread of process `pid`: its name (`comm`) and utime + stime so
/// far, in clock ticks. A thread that ends while they are read is left out.
pub fn thread_ticks(pid: u32) -> Result<Vec<(String, u64)>> {
    let dir = format!("/proc/{pid}/task");
    let mut threads = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot read {dir}"))? {
        let path = entry.with_context(|| format!("cannot read {dir}"))?.path();
        let (Ok(stat), Ok(comm)) = (
            std::fs::read_to_string(path.join("stat")),
            std::fs::read_to_string(path.join("comm")),
        ) else {
            continue;
        };
        let ticks = parse_ticks(&stat)
            .with_context(|| format!("cannot parse {}: {stat:?}", path.display()))?;
        threads.push((comm.trim().to_owned(), ticks));
    }
    Ok(threads)
}

/// Total CPU seconds used so far by all of `pids`.
pub fn cpu_seconds(pids: &[u32]) -> Result<f64> {
    let hz = clock_ticks()?;
    let mut total = 0;
    for &pid in pids {
        total += ticks(pid)?;
    }
    Ok(total as f64 / hz)
}

/// Checks that `pid` runs the implementation's program itself, not a
/// wrapper such as `ip netns exec` (which execs in place, so it should), so
/// that its CPU time is the tunnel's.
pub fn check_is_program(pid: u32, imp: WgImpl) -> Result<()> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .with_context(|| format!("cannot read /proc/{pid}/exe"))?;
    let name = exe
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let expected = match imp {
        WgImpl::Warren => "warren",
        WgImpl::WireguardGo => "wireguard-go",
        WgImpl::BoringtunCli => "boringtun-cli",
    };
    if name != expected {
        bail!(
            "pid {pid} runs {} rather than {expected}: its CPU time would not be the tunnel's",
            exe.display()
        );
    }
    Ok(())
}

/// Checks that `pid` runs the binary `bin` itself (by its resolved path),
/// so that its CPU time is that binary's: the `warren` and
/// `warren-baseline` paths run two files of the same name.
pub fn check_runs(pid: u32, bin: &Path) -> Result<()> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .with_context(|| format!("cannot read /proc/{pid}/exe"))?;
    let want =
        std::fs::canonicalize(bin).with_context(|| format!("cannot resolve {}", bin.display()))?;
    if exe != want {
        bail!(
            "pid {pid} runs {} rather than {}: its CPU time would not be that binary's",
            exe.display(),
            want.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() -> Result<()> {
        let stat = "4242 (wire guard) go)) S 1 4242 4242 0 -1 4194560 1386 0 0 0 \
                    150 37 0 0 20 0 9 0 12345 1000000 500 18446744073709551615";
        assert_eq!(parse_ticks(stat)?, 187);
        assert!(parse_ticks("1 (x) S 1 2").is_err());
        Ok(())
    }

    #[test]
    fn reads_own_process() -> Result<()> {
        ticks(std::process::id())?;
        let threads = thread_ticks(std::process::id())?;
        assert!(!threads.is_empty());
        Ok(())
    }
}
