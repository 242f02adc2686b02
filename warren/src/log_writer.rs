//! Where log lines go: stderr, in batches written by a thread of its own.
//!
//! The proxy logs a line per request from each of its worker threads; a
//! write to stderr per line, under stderr's lock, cost it a quarter of its
//! throughput (`docs/benchmarks.md`), and waking a writer thread per line
//! cost more. Here a line is appended to a shared buffer (a short,
//! uncontended lock, no system call) and the writer thread writes what has
//! gathered every [`FLUSH_EVERY`]. Past [`MAX_BUFFER`] (stderr not keeping
//! up) lines are dropped and counted rather than stalling a request, and
//! the count is logged.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tracing_subscriber::fmt::MakeWriter;

/// How often the writer thread writes what has gathered.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// The most bytes waiting to be written.
pub const MAX_BUFFER: usize = 4 << 20;

#[derive(Default)]
struct Shared {
    buffer: Mutex<Vec<u8>>,
    /// Held while a batch is written, so batches keep their order.
    writing: Mutex<()>,
    dropped: AtomicU64,
}

impl Shared {
    /// Appends `line`, or counts it dropped when the buffer is full.
    fn push(&self, line: &[u8]) {
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        if buffer.len() + line.len() > MAX_BUFFER {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        buffer.extend_from_slice(line);
    }

    /// Writes what has gathered to `out`.
    fn write_to(&self, out: &mut impl Write) {
        let _order = self.writing.lock().unwrap_or_else(PoisonError::into_inner);
        let batch =
            std::mem::take(&mut *self.buffer.lock().unwrap_or_else(PoisonError::into_inner));
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
        }
        let lost = self.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(
                out,
                "warren: {lost} log lines dropped (stderr could not keep up)"
            );
        }
        let _ = out.flush();
    }
}

/// The writer's entrance, for `tracing_subscriber::fmt().with_writer`.
#[derive(Clone)]
pub struct BatchedStderr {
    shared: Arc<Shared>,
}

/// Writes what is still gathered when dropped (at the end of `main`).
pub struct LogFlush {
    shared: Arc<Shared>,
}

impl BatchedStderr {
    /// Starts the writer thread; `None` if it cannot be started (then log
    /// straight to stderr).
    pub fn start() -> Option<(BatchedStderr, LogFlush)> {
        let shared = Arc::new(Shared::default());
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("warren-log".to_owned())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                writer.write_to(&mut std::io::stderr());
            })
            .ok()?;
        Some((
            BatchedStderr {
                shared: Arc::clone(&shared),
            },
            LogFlush { shared },
        ))
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = GatheredLine;

    fn make_writer(&'a self) -> GatheredLine {
        GatheredLine {
            line: Vec::new(),
            shared: Arc::clone(&self.shared),
        }
    }
}

/// One event's line, added to the buffer when the formatter is done.
pub struct GatheredLine {
    line: Vec<u8>,
    shared: Arc<Shared>,
}

impl Write for GatheredLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for GatheredLine {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.shared.push(&self.line);
        }
    }
}

impl Drop for LogFlush {
    fn drop(&mut self) {
        self.shared.write_to(&mut std::io::stderr());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_in_order_and_a_full_buffer_drops_and_counts() {
        let log = BatchedStderr {
            shared: Arc::new(Shared::default()),
        };
        for text in [&b"one\n"[..], b"two\n"] {
            log.make_writer().write_all(text).unwrap();
        }
        let mut out = Vec::new();
        log.shared.write_to(&mut out);
        assert_eq!(out, b"one\ntwo\n");
        let big = vec![b'x'; MAX_BUFFER - 1];
        log.make_writer().write_all(&big).unwrap();
        log.make_writer().write_all(b"lost\n").unwrap();
        let mut out = Vec::new();
        log.shared.write_to(&mut out);
        assert_eq!(
            out.len(),
            big.len() + "warren: 1 log lines dropped (stderr could not keep up)\n".len()
        );
        assert!(out.ends_with(b"1 log lines dropped (stderr could not keep up)\n"));
    }
}
