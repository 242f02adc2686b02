//! `warren exec`: a command run inside one of warren's containers, its
//! output as lines and then its exit code ([`ExecSession`]).

use std::pin::Pin;
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures::{Stream, StreamExt};
use tokio::io::AsyncWrite;

use super::engine::Runtime;
use super::error::RuntimeError;
use super::logs::{LogLine, LogLines};

/// How long [`ExecSession::exit_code`] waits, once the output has ended,
/// for the daemon to record the process's exit (it usually has already).
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// How often it asks meanwhile.
const EXIT_POLL: Duration = Duration::from_millis(50);

/// A command running in a container: read its output with
/// [`ExecSession::next_line`] (or as a [`Stream`]), then take its
/// [`ExecSession::exit_code`].
pub struct ExecSession {
    runtime: Runtime,
    exec_id: String,
    output: LogLines,
    // The connection's write half: kept open until the output ends, since
    // closing it may end the exec's output early.
    _input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("exec_id", &self.exec_id)
            .field("output", &self.output)
            .finish()
    }
}

impl ExecSession {
    /// The next line of output (`None` at the end).
    pub async fn next_line(&mut self) -> Option<Result<LogLine, RuntimeError>> {
        self.output.next().await
    }

    /// Reads the rest of the output (dropped) and returns the command's
    /// exit code.
    pub async fn exit_code(mut self) -> Result<i64, RuntimeError> {
        while let Some(line) = self.output.next().await {
            line?;
        }
        let deadline = tokio::time::Instant::now() + EXIT_WAIT;
        loop {
            let inspected = self
                .runtime
                .docker
                .inspect_exec(&self.exec_id)
                .await
                .map_err(|e| RuntimeError::from_docker("inspect exec", e))?;
            match (inspected.running, inspected.exit_code) {
                (Some(false), Some(code)) => return Ok(code),
                _ if tokio::time::Instant::now() >= deadline => {
                    return Err(RuntimeError::Malformed {
                        what: "inspect exec",
                        field: "an exit code after the output ended",
                    })
                }
                _ => tokio::time::sleep(EXIT_POLL).await,
            }
        }
    }

    /// Every line of output and the exit code.
    pub async fn collect(mut self) -> Result<(Vec<LogLine>, i64), RuntimeError> {
        let mut lines = Vec::new();
        while let Some(line) = self.next_line().await {
            lines.push(line?);
        }
        Ok((lines, self.exit_code().await?))
    }
}

impl Stream for ExecSession {
    type Item = Result<LogLine, RuntimeError>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.output.poll_next_unpin(cx)
    }
}

impl Runtime {
    /// Runs `cmd` (program and arguments, no shell) in one of warren's
    /// running containers, stdout and stderr attached, no TTY, no stdin.
    pub async fn exec(&self, id: &str, cmd: &[String]) -> Result<ExecSession, RuntimeError> {
        if cmd.is_empty() {
            return Err(RuntimeError::InvalidSpec(
                "an empty exec command".to_owned(),
            ));
        }
        self.inspect_ours(id).await?;
        let options = CreateExecOptions {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            attach_stdin: Some(false),
            tty: Some(false),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(id, options)
            .await
            .map_err(|e| RuntimeError::from_docker_for("create exec", id, e))?;
        let start = StartExecOptions {
            detach: false,
            tty: false,
            output_capacity: None,
        };
        match self.docker.start_exec(&created.id, Some(start)).await {
            Ok(StartExecResults::Attached { output, input }) => Ok(ExecSession {
                runtime: self.clone(),
                exec_id: created.id,
                output: LogLines::new(output, "exec output"),
                _input: input,
            }),
            Ok(StartExecResults::Detached) => Err(RuntimeError::Malformed {
                what: "start exec",
                field: "an attached output",
            }),
            Err(e) => Err(RuntimeError::from_docker("start exec", e)),
        }
    }
}
