//! What the agent has to tell the control plane and has not written yet:
//! the latest frame of each kind of message. A newer frame replaces an
//! unwritten older one of its kind, so a stalled link delays what the
//! control plane hears but never loses the agent's latest state (a health
//! change, say, which is sent only when it happens).

use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;

/// The kinds of message, in the order a waiting batch is written (their
/// declaration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// What the node offers.
    Node,
    /// Its replicas and how they are.
    Replicas,
    /// Its paths and candidates.
    Report,
    /// Its request to leave the cluster.
    Leave,
}

#[derive(Debug, Default)]
struct Shared {
    /// The unwritten frame of each kind, indexed by [`Kind`].
    waiting: Mutex<[Option<Vec<u8>>; 4]>,
    ready: Notify,
}

/// The agent's side: puts frames in.
#[derive(Debug, Clone, Default)]
pub struct Outbox {
    shared: Arc<Shared>,
}

impl Outbox {
    /// Puts `frame` in as the latest of `kind`; returns whether it replaced
    /// one that was still waiting.
    pub fn put(&self, kind: Kind, frame: Vec<u8>) -> bool {
        let replaced = {
            let mut waiting = self
                .shared
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            waiting[kind as usize].replace(frame).is_some()
        };
        self.shared.ready.notify_one();
        replaced
    }

    /// Waits until something is waiting and takes all of it, in [`Kind`]'s
    /// order.
    pub async fn take(&self) -> Vec<Vec<u8>> {
        loop {
            let taken: Vec<Vec<u8>> = {
                let mut waiting = self
                    .shared
                    .waiting
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                waiting.iter_mut().filter_map(Option::take).collect()
            };
            if !taken.is_empty() {
                return taken;
            }
            self.shared.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_latest_of_each_kind_is_written_in_order_and_none_is_lost() {
        let outbox = Outbox::default();
        assert!(!outbox.put(Kind::Report, b"report 1".to_vec()));
        assert!(!outbox.put(Kind::Replicas, b"replicas 1".to_vec()));
        assert!(
            outbox.put(Kind::Replicas, b"replicas 2".to_vec()),
            "replaced"
        );
        assert!(!outbox.put(Kind::Node, b"node".to_vec()));
        assert_eq!(
            outbox.take().await,
            [
                b"node".to_vec(),
                b"replicas 2".to_vec(),
                b"report 1".to_vec()
            ]
        );
        // Nothing waiting: take waits for the next put.
        let later = outbox.clone();
        let taker = tokio::spawn(async move { later.take().await });
        tokio::task::yield_now().await;
        outbox.put(Kind::Replicas, b"replicas 3".to_vec());
        assert_eq!(taker.await.unwrap(), [b"replicas 3".to_vec()]);
    }
}
