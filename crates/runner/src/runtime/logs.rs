//! A container's output as lines ([`LogLine`]): [`Runtime::logs`] streams
//! them from the daemon (with tail, since and follow), and [`LogLines`]
//! turns Docker's frames, which need not end at line ends, into lines;
//! exec output ([`super::exec`]) goes through the same.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptionsBuilder;
use futures::{Stream, StreamExt};

use super::engine::Runtime;
use super::error::RuntimeError;

/// The longest line kept whole; a longer one is cut into pieces this long,
/// so a process that never writes a newline cannot grow a buffer forever.
pub const MAX_LINE: usize = 16 * 1024;

/// Which of a process's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a container's (or an exec's) output, without its newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Where it came from.
    pub stream: LogStream,
    /// The text (invalid UTF-8 replaced).
    pub text: String,
}

/// Which logs to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Keep streaming new output until the container stops.
    pub follow: bool,
    /// Only the last this many lines of what is there already (`None`: all).
    pub tail: Option<usize>,
    /// Only output since this time (whole seconds).
    pub since: Option<SystemTime>,
}

/// Bytes in, complete lines out: one per output stream.
#[derive(Debug, Default, Clone)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Adds `bytes` and appends every line they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        for &b in bytes {
            if b == b'\n' {
                out.push(self.take());
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE {
                    out.push(self.take());
                }
            }
        }
    }

    /// The unfinished last line, if any (at the end of the output).
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut line = std::mem::take(&mut self.partial);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        String::from_utf8_lossy(&line).into_owned()
    }
}

/// The daemon's frames, boxed.
type Frames = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// A stream of [`LogLine`]s over Docker's output frames.
pub struct LogLines {
    frames: Frames,
    what: &'static str,
    stdout: LineSplitter,
    stderr: LineSplitter,
    ready: VecDeque<LogLine>,
    done: bool,
}

impl std::fmt::Debug for LogLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogLines")
            .field("what", &self.what)
            .field("ready", &self.ready.len())
            .field("done", &self.done)
            .finish()
    }
}

impl LogLines {
    /// Lines of `frames`, errors labelled as operation `what`.
    pub(crate) fn new(frames: Frames, what: &'static str) -> LogLines {
        LogLines {
            frames,
            what,
            stdout: LineSplitter::default(),
            stderr: LineSplitter::default(),
            ready: VecDeque::new(),
            done: false,
        }
    }

    /// Splits one frame into the ready queue.
    fn handle_frame(&mut self, frame: LogOutput) {
        let (stream, splitter, bytes) = match frame {
            LogOutput::StdErr { message } => (LogStream::Stderr, &mut self.stderr, message),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                (LogStream::Stdout, &mut self.stdout, message)
            }
            LogOutput::StdIn { .. } => return,
        };
        let mut lines = Vec::new();
        splitter.push(&bytes, &mut lines);
        self.ready
            .extend(lines.into_iter().map(|text| LogLine { stream, text }));
    }

    /// Queues the unfinished last lines at the end of the output.
    fn handle_end(&mut self) {
        self.done = true;
        for (stream, splitter) in [
            (LogStream::Stdout, &mut self.stdout),
            (LogStream::Stderr, &mut self.stderr),
        ] {
            if let Some(text) = splitter.finish() {
                self.ready.push_back(LogLine { stream, text });
            }
        }
    }
}

impl Stream for LogLines {
    type Item = Result<LogLine, RuntimeError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(line)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match self.frames.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => self.handle_frame(frame),
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(RuntimeError::from_docker(self.what, e))));
                }
                Poll::Ready(None) => self.handle_end(),
            }
        }
    }
}

impl Runtime {
    /// The output of one of warren's containers, stdout and stderr, as
    /// lines; with [`LogOptions::follow`] the stream goes on until the
    /// container stops (or the caller drops it).
    pub async fn logs(&self, id: &str, options: LogOptions) -> Result<LogLines, RuntimeError> {
        self.inspect_ours(id).await?;
        let tail = options
            .tail
            .map_or_else(|| "all".to_owned(), |n| n.to_string());
        let mut query = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(options.follow)
            .tail(&tail);
        if let Some(since) = options.since {
            let secs = since
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX));
            query = query.since(secs);
        }
        let frames = self.docker.logs(id, Some(query.build()));
        Ok(LogLines::new(Box::pin(frames), "container logs"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_become_lines_whatever_their_boundaries() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(b"hel", &mut out);
        assert!(out.is_empty());
        s.push(b"lo\nwor", &mut out);
        s.push(b"ld\r\n\nlast", &mut out);
        assert_eq!(out, ["hello", "world", ""]);
        assert_eq!(s.finish().as_deref(), Some("last"));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn long_lines_are_cut() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(&vec![b'x'; MAX_LINE * 2 + 3], &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|l| l.len() == MAX_LINE));
        assert_eq!(s.finish().map(|l| l.len()), Some(3));
    }

    #[test]
    fn a_stream_of_frames() {
        let frames = futures::stream::iter(vec![
            Ok(LogOutput::StdOut {
                message: "a\nb".into(),
            }),
            Ok(LogOutput::StdErr {
                message: "oops\n".into(),
            }),
            Ok(LogOutput::StdOut {
                message: "c\n".into(),
            }),
            Ok(LogOutput::StdErr {
                message: "tail".into(),
            }),
        ]);
        let lines = LogLines::new(Box::pin(frames), "test");
        let got: Vec<_> = futures::executor::block_on(lines.collect::<Vec<_>>())
            .into_iter()
            .filter_map(Result::ok)
            .map(|l| (l.stream, l.text))
            .collect();
        use LogStream::{Stderr, Stdout};
        let want = [
            (Stdout, "a"),
            (Stderr, "oops"),
            (Stdout, "bc"),
            (Stderr, "tail"),
        ];
        let want: Vec<_> = want.iter().map(|(s, t)| (*s, (*t).to_owned())).collect();
        assert_eq!(got, want);
    }
}
