//! The agent's link to the control plane as a state: connected (frames
//! flow) or reconnecting (an attempt is under way, after a short backoff
//! with jitter). [`Session::next`] yields what happened; the driver never
//! nests loops of its own.

use crate::join::JoinError;
use crate::outbox::{Kind, Outbox};
use crate::pinned;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use warren_proto::{
    frame, read_frame, write_frame, AgentMessage, ControlMessage, Hello, Report, StreamError,
    Welcome, MAX_FRAME,
};

/// How long one connection attempt to one control-plane address may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The first wait before reconnecting.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);

/// The longest wait between reconnection attempts: a restarted control
/// plane has its agents back within seconds.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// The wait before reconnection attempt `attempt` (0 for the first):
/// doubling from [`RECONNECT_FIRST`] up to [`RECONNECT_MAX`], then scaled
/// into its upper half by `jitter`, so agents that lost the control plane
/// together do not come back in lockstep.
pub fn reconnect_delay(attempt: u32, jitter: u8) -> Duration {
    let base = RECONNECT_FIRST
        .saturating_mul(1u32 << attempt.min(16))
        .min(RECONNECT_MAX);
    base / 2 + base / 2 * u32::from(jitter) / 255
}

/// What the session saw.
#[derive(Debug)]
pub enum SessionEvent {
    /// A message from the control plane.
    Message(ControlMessage),
    /// The connection was lost; the session is reconnecting.
    Lost(String),
    /// Reconnected: the welcome of the new connection.
    Relinked(Welcome),
    /// The control plane removed this node, or refused it for good.
    Ended(JoinError),
}

/// An open connection and its stream, read and written by tasks of their
/// own: a frame read cut short by `select!` would lose bytes, and a write
/// stalled by flow control must not stall the agent.
pub struct Link {
    connection: quinn::Connection,
    /// Frames for the control plane, the latest of each kind.
    outgoing: Outbox,
    /// Writes what `outgoing` holds; stopped with the link.
    writer: JoinHandle<()>,
    /// What the control plane sends after the welcome.
    updates: mpsc::Receiver<Result<ControlMessage, StreamError>>,
}

/// The link's state (see the module doc).
pub enum Session {
    /// Frames flow.
    Connected(Link),
    /// An attempt is under way.
    Reconnecting {
        /// Attempts made since the link was lost.
        attempt: u32,
        /// The attempt.
        task: JoinHandle<Result<(Link, Welcome), JoinError>>,
    },
}

/// Where and how the session (re)connects.
#[derive(Debug, Clone)]
pub struct Target {
    /// The control plane's addresses, tried in order.
    pub control: Vec<SocketAddr>,
    /// Its certificate's SHA-256.
    pub pin: [u8; 32],
    /// What to say (a rejoin with the credential, after the first join).
    pub hello: Hello,
}

impl Session {
    /// The next thing that happens; `target` is used when reconnecting.
    pub async fn next(&mut self, target: &Target) -> SessionEvent {
        loop {
            match self {
                Session::Connected(link) => {
                    let message = link.updates.recv().await;
                    if let Some(Ok(message)) = message {
                        return SessionEvent::Message(message);
                    }
                    if was_removed(&link.connection) {
                        return SessionEvent::Ended(JoinError::Removed);
                    }
                    let reason = match message {
                        Some(Err(error)) => error.to_string(),
                        _ => "the connection ended".to_owned(),
                    };
                    *self = Session::reconnecting(0, target);
                    return SessionEvent::Lost(reason);
                }
                Session::Reconnecting { attempt, task } => {
                    let outcome = match task.await {
                        Ok(outcome) => outcome,
                        Err(error) => Err(JoinError::Protocol(format!("reconnecting: {error}"))),
                    };
                    match outcome {
                        Ok((link, welcome)) => {
                            *self = Session::Connected(link);
                            return SessionEvent::Relinked(welcome);
                        }
                        Err(JoinError::Refused { code, reason }) if !code.is_transient() => {
                            return SessionEvent::Ended(JoinError::Refused { code, reason });
                        }
                        Err(error) => {
                            tracing::debug!(%error, attempt = *attempt, "reconnecting");
                            let next = *attempt + 1;
                            *self = Session::reconnecting(next, target);
                        }
                    }
                }
            }
        }
    }

    /// A session that is not connected yet: the first attempt starts at
    /// once (after the shortest backoff).
    pub fn reconnect(target: &Target) -> Session {
        Session::reconnecting(0, target)
    }

    fn reconnecting(attempt: u32, target: &Target) -> Session {
        let target = target.clone();
        let jitter = warren_os::random::<1>().map_or(128, |[byte]| byte);
        let delay = reconnect_delay(attempt, jitter);
        Session::Reconnecting {
            attempt,
            task: tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                open(&target).await
            }),
        }
    }

    /// Queues `report` if connected (replacing one not written yet).
    pub fn send_report(&self, report: &Report, version: u32) {
        if version == 1 {
            self.send_frame(Kind::Report, frame::encode(report));
        } else {
            self.send(&AgentMessage::Report(report.clone()));
        }
    }

    /// Queues `message` if connected, replacing one of its kind not written
    /// yet (every message the agent sends is the whole of its state of that
    /// kind, and all of them are sent again after a reconnect).
    pub fn send(&self, message: &AgentMessage) {
        let kind = match message {
            AgentMessage::Node(_) => Kind::Node,
            AgentMessage::Replicas { .. } => Kind::Replicas,
            AgentMessage::Report(_) => Kind::Report,
            AgentMessage::Leave => Kind::Leave,
            // A kind a newer build knows: as often as reports, at most.
            _ => Kind::Report,
        };
        self.send_frame(kind, frame::encode(message));
    }

    fn send_frame(&self, kind: Kind, frame: Result<Vec<u8>, warren_proto::FrameError>) {
        let Session::Connected(link) = self else {
            return;
        };
        match frame {
            Ok(frame) => {
                if link.outgoing.put(kind, frame) {
                    tracing::debug!(
                        ?kind,
                        "the link to the control plane is slow; an unsent message was replaced by a newer one"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "encoding a message for the control plane"),
        }
    }

    /// The open connection, if connected: the control plane opens replica
    /// streams on it ([`crate::streams`]).
    pub fn connection(&self) -> Option<quinn::Connection> {
        match self {
            Session::Connected(link) => Some(link.connection.clone()),
            Session::Reconnecting { .. } => None,
        }
    }

    /// Closes the connection, if any.
    pub fn close(&self) {
        match self {
            Session::Connected(link) => link.connection.close(0u32.into(), b"bye"),
            Session::Reconnecting { task, .. } => task.abort(),
        }
    }
}

/// Connects, says hello and reads the answer.
pub async fn open(target: &Target) -> Result<(Link, Welcome), JoinError> {
    let (connection, mut send, mut recv) = connect(&target.control, target.pin).await?;
    write_frame(&mut send, &target.hello)
        .await
        .map_err(|e| JoinError::Protocol(e.to_string()))?;
    let answer = read_frame::<ControlMessage, _>(&mut recv, MAX_FRAME)
        .await
        .map_err(|e| JoinError::Protocol(e.to_string()))?;
    match answer {
        ControlMessage::Welcome(welcome) => {
            let (forward, updates) = mpsc::channel(16);
            tokio::spawn(async move {
                loop {
                    let message = read_frame(&mut recv, MAX_FRAME).await;
                    let ended = message.is_err();
                    if forward.send(message).await.is_err() || ended {
                        return;
                    }
                }
            });
            let outgoing = Outbox::default();
            let waiting = outgoing.clone();
            let writer = tokio::spawn(async move {
                loop {
                    for frame in waiting.take().await {
                        if let Err(error) = send.write_all(&frame).await {
                            tracing::debug!(%error, "writing to the control plane");
                            return;
                        }
                    }
                }
            });
            Ok((
                Link {
                    connection,
                    outgoing,
                    writer,
                    updates,
                },
                welcome,
            ))
        }
        ControlMessage::Refused { code, reason } => Err(JoinError::Refused {
            code,
            reason: printable(&reason),
        }),
        other => Err(JoinError::Protocol(format!(
            "a {} message before the welcome",
            other.kind()
        ))),
    }
}

/// `text` without control characters, so a refusal cannot drive the
/// terminal it is printed on.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Whether the control plane closed the connection because the node was removed.
fn was_removed(connection: &quinn::Connection) -> bool {
    matches!(
        connection.close_reason(),
        Some(quinn::ConnectionError::ApplicationClosed(close))
            if close.error_code == quinn::VarInt::from_u32(warren_proto::REMOVED_CODE)
    )
}

/// Connects to the first control address that answers within
/// [`CONNECT_TIMEOUT`].
async fn connect(
    control: &[SocketAddr],
    pin: [u8; 32],
) -> Result<(quinn::Connection, quinn::SendStream, quinn::RecvStream), JoinError> {
    let addrs = control
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let unreachable = |reason: String| JoinError::Unreachable {
        addrs: addrs.clone(),
        reason,
    };
    let config = pinned::client_config(pin).map_err(unreachable)?;
    let mut last = "no address to try".to_owned();
    for addr in control {
        let bind = if addr.is_ipv6() {
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
        };
        let mut endpoint = quinn::Endpoint::client(bind).map_err(|e| unreachable(e.to_string()))?;
        endpoint.set_default_client_config(config.clone());
        let attempt = async {
            let connection = endpoint
                .connect(*addr, "warren-control")
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let (send, recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((connection, send, recv))
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(Ok(connected)) => return Ok(connected),
            Ok(Err(error)) => last = error,
            Err(_) => last = format!("no answer within {CONNECT_TIMEOUT:?}"),
        }
    }
    Err(unreachable(last))
}

impl Drop for Link {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_grow_to_five_seconds_with_jitter_in_the_upper_half() {
        assert_eq!(reconnect_delay(0, 255), RECONNECT_FIRST);
        assert_eq!(reconnect_delay(0, 0), RECONNECT_FIRST / 2);
        assert_eq!(reconnect_delay(1, 255), RECONNECT_FIRST * 2);
        for attempt in 0..100 {
            for jitter in [0, 77, 255] {
                let delay = reconnect_delay(attempt, jitter);
                assert!(delay <= RECONNECT_MAX, "{attempt} {jitter}: {delay:?}");
                assert!(delay >= RECONNECT_FIRST / 2);
            }
        }
        assert_eq!(reconnect_delay(40, 255), RECONNECT_MAX);
        assert!(reconnect_delay(40, 0) >= RECONNECT_MAX / 2);
    }

    #[test]
    fn refusals_are_printed_without_control_characters() {
        assert_eq!(printable("no\u{1b}[2J way\n"), "no?[2J way?");
    }
}
