//! [`DeviceHandle`]: configuring and reading a running [`Device`](crate::Device)
//! from the same process (the agent adding peers, renewing its relay
//! ticket, reading paths). Requests travel typed on a channel of their own,
//! so nothing is formatted as UAPI text only to be parsed back.

use std::net::SocketAddr;
use tokio::sync::{mpsc, oneshot};
use warren_uapi::{DeviceState, SetRequest};
use warren_wire::PublicKey;
use warren_wire::Ticket;

/// One in-process request and where its answer goes.
#[derive(Debug)]
pub(crate) enum HandleCommand {
    /// A UAPI `set`; the answer is the negated errno on failure.
    Set(SetRequest, oneshot::Sender<Result<(), i32>>),
    /// The device's state, as `get=1` reports it.
    State(oneshot::Sender<DeviceState>),
    /// A fresh relay ticket for the device's key.
    RenewRelayTicket(Ticket),
    /// Each relay and whether the device is registered there.
    RelayRegistrations(oneshot::Sender<Vec<(SocketAddr, bool)>>),
    /// The device's own NAT traversal candidates.
    Candidates(oneshot::Sender<Vec<SocketAddr>>),
    /// A peer's candidates from the control plane; the answer says whether
    /// the peer is known.
    PeerCandidates(PublicKey, Vec<SocketAddr>, oneshot::Sender<bool>),
}

/// Configures a running device from the same process, as `wg set` would
/// through the UAPI socket, and reads what an agent needs of it.
#[derive(Debug, Clone)]
pub struct DeviceHandle {
    pub(crate) commands: mpsc::Sender<HandleCommand>,
}

/// Why a [`DeviceHandle`] request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The device is not running any more.
    #[error("the device has stopped")]
    Stopped,
    /// The device refused the configuration with this errno (negated, as
    /// UAPI says).
    #[error("the device refused the configuration (errno {0})")]
    Refused(i32),
    /// The request names a peer the device does not have.
    #[error("the device has no such peer")]
    UnknownPeer,
}

impl DeviceHandle {
    /// Applies `set`, as a UAPI `set=1` request.
    pub async fn set(&self, set: SetRequest) -> Result<(), HandleError> {
        self.ask(|reply| HandleCommand::Set(set, reply))
            .await?
            .map_err(HandleError::Refused)
    }

    /// The device's state: keys, peers, endpoints, handshakes, bytes.
    pub async fn state(&self) -> Result<DeviceState, HandleError> {
        self.ask(HandleCommand::State).await
    }

    /// Each relay and whether it acknowledged the registration.
    pub async fn relay_registrations(&self) -> Result<Vec<(SocketAddr, bool)>, HandleError> {
        self.ask(HandleCommand::RelayRegistrations).await
    }

    /// This device's own candidates (the relays' view of it, then the
    /// host's addresses), for the control plane to pass on.
    pub async fn own_candidates(&self) -> Result<Vec<SocketAddr>, HandleError> {
        self.ask(HandleCommand::Candidates).await
    }

    /// Candidates for the peer `key`, learned from the control plane.
    pub async fn set_peer_candidates(
        &self,
        key: PublicKey,
        candidates: Vec<SocketAddr>,
    ) -> Result<(), HandleError> {
        let known = self
            .ask(|reply| HandleCommand::PeerCandidates(key, candidates, reply))
            .await?;
        known.then_some(()).ok_or(HandleError::UnknownPeer)
    }

    /// Renews the relay registrations with a fresh ticket for the device's key.
    pub async fn renew_relay_ticket(&self, ticket: Ticket) -> Result<(), HandleError> {
        self.commands
            .send(HandleCommand::RenewRelayTicket(ticket))
            .await
            .map_err(|_| HandleError::Stopped)
    }

    /// Sends the command `make` builds around a reply channel, and waits
    /// for the reply.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> HandleCommand,
    ) -> Result<T, HandleError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| HandleError::Stopped)?;
        answer.await.map_err(|_| HandleError::Stopped)
    }
}
