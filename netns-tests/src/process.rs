//! Long-running programs inside a namespace: how they are started
//! ([`Spawn`]) and the guard that stops them ([`Proc`]); [`crate::wait`] has
//! the free-standing polls.
//!
//! Every program writes stdout and stderr, interleaved, to one log file in the
//! lab's directory; error messages about a process end with its last log lines
//! so a failing test says why.

use std::ffi::OsString;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::netns::Netns;

/// How long [`Proc::stop`] waits after SIGTERM before it sends SIGKILL,
/// unless [`Spawn::grace`] says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// How many log lines error messages quote.
pub const LOG_TAIL_LINES: usize = 20;

/// How a program is put into its namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enter {
    /// `ip netns exec NS prog`: also gives the program a private mount
    /// namespace with the namespace's /sys (the usual choice).
    IpNetnsExec,
    /// `nsenter --net=/var/run/netns/NS prog`: only the network namespace
    /// changes (dockerd needs this: under `ip netns exec` it fails with
    /// "Devices cgroup isn't mounted").
    Nsenter,
}

/// What to start: program, arguments, environment and a name for the log.
#[derive(Clone, Debug)]
pub struct Spawn {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(OsString, OsString)>,
    pub(crate) name: Option<String>,
    pub(crate) enter: Enter,
    pub(crate) grace: Duration,
}

impl Spawn {
    /// A program to start (a name looked up on `PATH`, or a path).
    pub fn new(program: impl Into<OsString>) -> Spawn {
        Spawn {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            name: None,
            enter: Enter::IpNetnsExec,
            grace: DEFAULT_GRACE,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> Spawn {
        self.args.push(a.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Spawn
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable (the rest of the test's environment is
    /// inherited).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Spawn {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Names the process in messages and its log file (`NAME.log`); defaults
    /// to the program's file name.
    pub fn name(mut self, name: impl Into<String>) -> Spawn {
        self.name = Some(name.into());
        self
    }

    /// Enters the namespace with `nsenter --net=` instead of `ip netns exec`.
    pub fn nsenter(mut self) -> Spawn {
        self.enter = Enter::Nsenter;
        self
    }

    /// How long a stop waits between SIGTERM and SIGKILL.
    pub fn grace(mut self, grace: Duration) -> Spawn {
        self.grace = grace;
        self
    }

    pub(crate) fn default_name(&self) -> String {
        let p = Path::new(&self.program);
        p.file_name()
            .unwrap_or(p.as_os_str())
            .to_string_lossy()
            .into_owned()
    }

    /// Builds the command that runs this program inside `ns`, with stdin
    /// closed, output to `log`, and SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGPIPE at
    /// their default disposition with no signal blocked (a non-interactive
    /// shell starts background jobs with SIGINT ignored, which would hide a
    /// Ctrl-C handler's bugs).
    pub(crate) fn command(&self, ns: &Netns, log: &std::fs::File) -> Result<Command> {
        let mut c = match self.enter {
            Enter::IpNetnsExec => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.name()]);
                c
            }
            Enter::Nsenter => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.path().display()));
                c
            }
        };
        c.arg(&self.program).args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.stdin(Stdio::null())
            .stdout(log.try_clone().context("dup log file")?)
            .stderr(log.try_clone().context("dup log file")?);
        // SAFETY: the closure only calls async-signal-safe functions
        // (signal, sigemptyset, sigprocmask) between fork and exec.
        unsafe {
            c.pre_exec(|| {
                for sig in [
                    libc::SIGINT,
                    libc::SIGTERM,
                    libc::SIGHUP,
                    libc::SIGQUIT,
                    libc::SIGPIPE,
                ] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        Ok(c)
    }
}

/// A signal a test may send to a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM.
    Term,
    /// SIGKILL.
    Kill,
    /// SIGHUP.
    Hup,
    /// SIGSTOP: the process freezes (a laptop asleep, a stalled host).
    Stop,
    /// SIGCONT: a stopped process runs on.
    Cont,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Signal::Int => libc::SIGINT,
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Hup => libc::SIGHUP,
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
        }
    }
}

enum State {
    Running(Child),
    Exited(ExitStatus),
}

/// Run just before the process is sent SIGTERM by a stop (e.g. removing a
/// Docker daemon's containers while it can still do it).
pub(crate) type PreStop = Box<dyn Fn() + Send + Sync>;

/// Shared between a [`Proc`] guard and the [`crate::Lab`] registry: whoever
/// stops the process first reaps it; the other sees it exited.
pub(crate) struct ProcInner {
    name: String,
    pid: u32,
    log: PathBuf,
    cmdline: String,
    grace: Duration,
    state: Mutex<State>,
    pub(crate) pre_stop: Mutex<Option<PreStop>>,
}

impl ProcInner {
    pub(crate) fn new(
        name: String,
        log: PathBuf,
        cmdline: String,
        grace: Duration,
        child: Child,
    ) -> Self {
        ProcInner {
            name,
            pid: child.id(),
            log,
            cmdline,
            grace,
            state: Mutex::new(State::Running(child)),
            pre_stop: Mutex::new(None),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked while holding
        // it; the state itself is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Polls for exit; reaps the child if it has exited.
    fn try_status(&self) -> Result<Option<ExitStatus>> {
        let mut st = self.state();
        match &mut *st {
            State::Exited(s) => Ok(Some(*s)),
            State::Running(child) => match child.try_wait() {
                Ok(Some(s)) => {
                    *st = State::Exited(s);
                    Ok(Some(s))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e).with_context(|| format!("waitpid {}", self.pid)),
            },
        }
    }

    /// Sends `sig` unless the process was already reaped (so a recycled pid
    /// is never signalled). Returns false if it had exited.
    fn signal(&self, sig: libc::c_int) -> Result<bool> {
        let st = self.state();
        match &*st {
            State::Exited(_) => Ok(false),
            State::Running(_) => {
                let pid = libc::pid_t::try_from(self.pid).context("pid out of range")?;
                // SAFETY: plain kill(2) on our own unreaped child.
                let rc = unsafe { libc::kill(pid, sig) };
                if rc != 0 {
                    return Err(std::io::Error::last_os_error())
                        .with_context(|| format!("kill({pid}, {sig})"));
                }
                Ok(true)
            }
        }
    }

    fn is_daemon(&self) -> bool {
        self.pre_stop.lock().map(|p| p.is_some()).unwrap_or(false)
    }

    fn run_pre_stop(&self) {
        let hook = self.pre_stop.lock().ok().and_then(|mut p| p.take());
        if let (Some(hook), Ok(None)) = (hook, self.try_status()) {
            hook();
        }
    }

    fn kill_and_reap(&self) -> Result<ExitStatus> {
        let mut st = self.state();
        match &mut *st {
            State::Exited(s) => Ok(*s),
            State::Running(child) => {
                // kill() fails only if the child is already gone; wait reaps it.
                let _ = child.kill();
                let s = child
                    .wait()
                    .with_context(|| format!("waitpid {}", self.pid))?;
                *st = State::Exited(s);
                Ok(s)
            }
        }
    }

    fn tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    fn describe(&self) -> String {
        let status = match self.try_status() {
            Ok(Some(s)) => format!("exited: {}", describe_status(s)),
            Ok(None) => "running".to_owned(),
            Err(e) => format!("status unknown: {e:#}"),
        };
        format!(
            "process {} (pid {}, {status}; `{}`), log {}, last lines:\n{}",
            self.name,
            self.pid,
            self.cmdline,
            self.log.display(),
            self.tail(LOG_TAIL_LINES)
        )
    }
}

/// Stops every running process in `procs`: SIGTERM to all, then waits up to
/// the longest grace period, then SIGKILL for those still running. Daemons
/// (processes with a pre-stop hook) are stopped after the others, one by one.
pub(crate) fn stop_all(procs: &[Arc<ProcInner>]) {
    let (daemons, plain): (Vec<_>, Vec<_>) = procs.iter().partition(|p| p.is_daemon());
    stop_group(&plain);
    for d in daemons {
        d.run_pre_stop();
        stop_group(&[d]);
    }
}

fn stop_group(procs: &[&Arc<ProcInner>]) {
    let grace = procs.iter().map(|p| p.grace).max().unwrap_or_default();
    for p in procs {
        if let Err(e) = p.signal(libc::SIGTERM) {
            eprintln!("lab: cannot stop {}: {e:#}", p.name);
        }
    }
    let deadline = Instant::now() + grace;
    let mut interval = Duration::from_millis(2);
    while Instant::now() < deadline && procs.iter().any(|p| matches!(p.try_status(), Ok(None))) {
        std::thread::sleep(interval);
        interval = (interval * 2).min(Duration::from_millis(50));
    }
    for p in procs {
        if let Err(e) = p.kill_and_reap() {
            eprintln!("lab: cannot kill {}: {e:#}", p.name);
        }
    }
}

/// A program running inside a lab namespace. Dropping it stops it (SIGTERM,
/// a grace period, SIGKILL) and reaps it; the [`crate::Lab`] also stops it
/// when the lab is dropped, whichever comes first.
pub struct Proc {
    pub(crate) inner: Arc<ProcInner>,
}

impl std::fmt::Debug for Proc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proc")
            .field("name", &self.inner.name)
            .field("pid", &self.inner.pid)
            .finish()
    }
}

impl Proc {
    /// The process id (of the program itself: `ip netns exec` and `nsenter`
    /// exec it in place).
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The name used in messages and for the log file.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The log file holding the program's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.inner.log
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read(&self.inner.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.inner.tail(lines)
    }

    /// Name, pid, state, command line and the last log lines: for error and
    /// panic messages.
    pub fn describe(&self) -> String {
        self.inner.describe()
    }

    /// Sends `sig`. Fails if the process has already exited.
    pub fn signal(&self, sig: Signal) -> Result<()> {
        if !self.inner.signal(sig.raw())? {
            bail!("cannot send {sig:?}: {}", self.describe());
        }
        Ok(())
    }

    /// The exit status if the process has exited (reaping it), else `None`.
    pub fn try_status(&self) -> Result<Option<ExitStatus>> {
        self.inner.try_status()
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        matches!(self.inner.try_status(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit by itself and returns its
    /// status; on timeout the process keeps running and this is an error.
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let mut interval = Duration::from_millis(2);
        loop {
            if let Some(s) = self.inner.try_status()? {
                return Ok(s);
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not exit within {timeout:?}: {}",
                    self.inner.name,
                    self.describe()
                );
            }
            std::thread::sleep(interval);
            interval = (interval * 2).min(Duration::from_millis(50));
        }
    }

    /// Stops the process now (SIGTERM, grace period, SIGKILL) and returns how
    /// it ended.
    pub fn stop(&self) -> Result<ExitStatus> {
        self.inner.run_pre_stop();
        stop_group(&[&self.inner]);
        self.inner
            .try_status()?
            .ok_or_else(|| anyhow!("{} survived SIGKILL", self.inner.name))
    }

    /// Polls `cond` until it holds, like [`crate::wait_for`], but fails at once if
    /// the process exits meanwhile; either error quotes the log's last lines.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut() -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut interval = Duration::from_millis(2);
        loop {
            if cond() {
                return Ok(());
            }
            if self.inner.try_status()?.is_some() {
                bail!(
                    "{} exited while waiting for {what}: {}",
                    self.inner.name,
                    self.describe()
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after {timeout:?} waiting for {what}: {}",
                    self.describe()
                );
            }
            std::thread::sleep(interval);
            interval = (interval * 2).min(Duration::from_millis(50));
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        self.wait_for(&format!("{needle:?} in the log"), timeout, || {
            self.log().contains(needle)
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.inner.run_pre_stop();
        stop_group(&[&self.inner]);
    }
}

/// "exit code N" or "killed by signal N".
pub fn describe_status(s: ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("{s}"),
    }
}

/// The last `lines` lines of a file (empty if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
