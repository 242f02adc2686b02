//! Work on a thread of its own: a packet path (a mesh device, a relay)
//! runs on its own current-thread runtime, so nothing else the process
//! does (TLS handshakes, the admin API, JSON) delays its packets.
//!
//! A task's sockets must be created inside it (they belong to the runtime
//! they were made on); what the caller needs back (a handle, an address)
//! comes through a channel the task is given.

use std::future::Future;
use tokio::sync::oneshot;

/// A task running on a dedicated thread; [`Dedicated::join`] waits for
/// what it returns.
#[derive(Debug)]
pub struct Dedicated<T> {
    done: oneshot::Receiver<T>,
}

impl<T> Dedicated<T> {
    /// Waits until the task ends; `None` if its thread panicked or could not
    /// start its runtime.
    pub async fn join(self) -> Option<T> {
        self.done.await.ok()
    }
}

/// Runs the future `task` makes on a new thread called `name`, on a
/// current-thread runtime of its own with I/O and timers.
pub fn spawn<F, Fut>(name: &str, task: F) -> std::io::Result<Dedicated<Fut::Output>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future,
    Fut::Output: Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (finished, done) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let _ = finished.send(runtime.block_on(task()));
        })?;
    Ok(Dedicated { done })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_task_runs_on_its_own_thread_and_hands_back_its_result() {
        let caller = std::thread::current().id();
        let (ready, started) = oneshot::channel();
        let task = spawn("warren-test", move || async move {
            let _ = ready.send(std::thread::current().name().map(str::to_owned));
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            std::thread::current().id()
        })
        .unwrap();
        assert_eq!(started.await.unwrap().as_deref(), Some("warren-test"));
        assert_ne!(task.join().await, Some(caller));
    }
}
