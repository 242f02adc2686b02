//! One-shot commands: run a program to completion and turn any failure into an
//! error that names the command and carries its stderr.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{bail, Context, Result};

/// Renders a command line for messages (`prog arg arg`).
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion with stdin closed and returns its stdout.
///
/// A non-zero exit is an error whose message holds the command line, the exit
/// status, stderr and (if any) stdout.
pub fn run(cmd: &mut Command) -> Result<String> {
    let out = output(cmd)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Like [`run`], but returns the whole [`Output`] of a successful command.
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(std::process::Stdio::null());
    let line = display(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{line}`"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut msg = format!("`{line}` failed ({})", out.status);
        if !stderr.trim().is_empty() {
            msg.push_str(&format!("\nstderr: {}", stderr.trim_end()));
        }
        if !stdout.trim().is_empty() {
            msg.push_str(&format!("\nstdout: {}", stdout.trim_end()));
        }
        bail!(msg);
    }
    Ok(out)
}

/// Runs a program given as an argument list (`["ip", "-br", "link"]`) and
/// returns its stdout; see [`run`].
pub fn run_args<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut it = args.into_iter();
    let Some(prog) = it.next() else {
        bail!("run_args: empty command line");
    };
    run(Command::new(prog.as_ref()).args(it))
}

/// Finds `name` on `PATH` (and, for programs installed with `cargo install`,
/// in `~/.cargo/bin`), or fails with a message telling to run `scripts/setup`.
pub fn require_bin(name: &str) -> Result<PathBuf> {
    find_bin(name).with_context(|| {
        format!("`{name}` is not installed (not on PATH nor in ~/.cargo/bin): run scripts/setup as root")
    })
}

/// Finds `name` on `PATH` or in `~/.cargo/bin`; `None` when absent.
pub fn find_bin(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    dirs.push(PathBuf::from("/root/.cargo/bin"));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds a binary built in this workspace's target directory: the path in
/// environment variable `env` if set, else `NAME` in the directory of the
/// running test binary's profile (`target/<profile>/`, the parent of the
/// `deps/` directory where test binaries live).
pub fn locate_target_bin(env: &str, name: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        if !is_executable(&p) {
            bail!(
                "${env} points to {}, which is not an executable file",
                p.display()
            );
        }
        return Ok(p);
    }
    let exe = std::env::current_exe().context("cannot find the running executable")?;
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let p = dir.join(name);
    if !is_executable(&p) {
        bail!("{} does not exist (set ${env} to override)", p.display());
    }
    Ok(p)
}
