//! `warren leave`, run on a node: a local request to the node's own agent.
//!
//! The agent listens on a Unix socket in its data directory
//! ([`socket_path`], reachable by root only, as the directory is). A
//! client writes [`REQUEST`]; the agent sends [`AgentMessage::Leave`] over
//! its connection to the control plane, which drains the node (its
//! replicas are placed elsewhere, and each goes once its replacement is
//! healthy) and then removes it. The agent answers with [`Answer`] lines:
//! whether the request went out, then how many replicas are still on the
//! node each time that changes. Once the node is removed the agent stops
//! and exits, which closes the socket: the client's sign that it is done.
//!
//! [`AgentMessage::Leave`]: warren_proto::AgentMessage::Leave

use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch};

/// What a client writes: one line.
pub const REQUEST: &str = "leave";

/// The agent's socket in `data_dir` (the one `warren join --data-dir`
/// uses).
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join("leave.sock")
}

/// One line the agent answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The request went to the control plane.
    Leaving,
    /// The agent is not connected to the control plane now: nothing was
    /// sent.
    Unreachable,
    /// This many replicas are still on the node.
    Replicas(usize),
}

impl Answer {
    /// The line, without its newline.
    pub fn line(self) -> String {
        match self {
            Answer::Leaving => "leaving".to_owned(),
            Answer::Unreachable => "unreachable".to_owned(),
            Answer::Replicas(n) => format!("replicas {n}"),
        }
    }

    /// The answer `line` says, if it is one.
    pub fn parse(line: &str) -> Option<Answer> {
        match line.trim_end() {
            "leaving" => Some(Answer::Leaving),
            "unreachable" => Some(Answer::Unreachable),
            other => other
                .strip_prefix("replicas ")?
                .parse()
                .ok()
                .map(Answer::Replicas),
        }
    }
}

/// A request to leave, for the agent's loop: it answers whether it sent
/// it on (`true`) or is not connected (`false`).
pub type LeaveRequest = oneshot::Sender<bool>;

/// Binds the socket in `data_dir`, replacing one a previous agent left.
pub fn bind(data_dir: &Path) -> std::io::Result<UnixListener> {
    let path = socket_path(data_dir);
    match std::fs::remove_file(&path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
        _ => {}
    }
    UnixListener::bind(path)
}

/// Serves `warren leave` clients on `listener`: each request goes to the
/// agent's loop through `requests`; `replicas` says how many replicas the
/// node runs (`None` before the first report).
pub async fn serve(
    listener: UnixListener,
    requests: mpsc::Sender<LeaveRequest>,
    replicas: watch::Receiver<Option<usize>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(answer(stream, requests.clone(), replicas.clone()));
    }
}

async fn answer(
    stream: UnixStream,
    requests: mpsc::Sender<LeaveRequest>,
    mut replicas: watch::Receiver<Option<usize>>,
) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    if BufReader::new(read).read_line(&mut line).await.is_err() || line.trim_end() != REQUEST {
        return;
    }
    let (sent, reply) = oneshot::channel();
    if requests.send(sent).await.is_err() {
        return;
    }
    let first = match reply.await {
        Ok(true) => Answer::Leaving,
        _ => Answer::Unreachable,
    };
    if write_answer(&mut write, first).await.is_err() || first == Answer::Unreachable {
        return;
    }
    loop {
        let count = *replicas.borrow_and_update();
        if let Some(count) = count {
            if write_answer(&mut write, Answer::Replicas(count))
                .await
                .is_err()
            {
                return;
            }
        }
        // The agent's loop ended: the node was removed, or it stopped.
        if replicas.changed().await.is_err() {
            return;
        }
    }
}

async fn write_answer(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    answer: Answer,
) -> std::io::Result<()> {
    write
        .write_all(format!("{}\n", answer.line()).as_bytes())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_back_as_written() {
        for answer in [Answer::Leaving, Answer::Unreachable, Answer::Replicas(3)] {
            assert_eq!(Answer::parse(&format!("{}\n", answer.line())), Some(answer));
        }
        assert_eq!(Answer::parse("replicas many"), None);
        assert_eq!(Answer::parse("bye"), None);
    }

    #[tokio::test]
    async fn a_client_hears_the_request_went_out_then_the_replicas_left() {
        let dir = std::env::temp_dir().join(format!("warren-leave-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("agent")).unwrap();
        let listener = bind(&dir).unwrap();
        let (requests, mut asked) = mpsc::channel(1);
        let (count, replicas) = watch::channel(Some(2));
        tokio::spawn(serve(listener, requests, replicas));
        let client = tokio::spawn({
            let path = socket_path(&dir);
            async move {
                let mut stream = UnixStream::connect(path).await.unwrap();
                stream.write_all(b"leave\n").await.unwrap();
                let mut lines = BufReader::new(stream).lines();
                let mut heard = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    heard.push(Answer::parse(&line).unwrap());
                }
                heard
            }
        });
        let reply: LeaveRequest = asked.recv().await.unwrap();
        reply.send(true).unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        count.send_replace(Some(0));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(count);
        let heard = client.await.unwrap();
        assert_eq!(
            heard,
            [Answer::Leaving, Answer::Replicas(2), Answer::Replicas(0)]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
