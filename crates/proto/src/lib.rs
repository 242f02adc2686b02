//! The agent–control protocol: what `warren join` and `warren serve` say
//! to each other over QUIC (`docs/protocol.md`, "The agent–control
//! protocol").
//!
//! The agent opens one bidirectional stream and sends a [`Hello`]; the
//! control plane answers [`ControlMessage::Welcome`] or
//! [`ControlMessage::Refused`]. After a welcome the control plane keeps
//! sending peer-map changes, tickets and candidates on the same stream, and
//! the agent sends an [`AgentMessage::Report`] of its paths every few
//! seconds. Each message is a frame ([`frame`]): a 4-byte big-endian
//! length, then that many bytes of JSON; [`stream`] reads and writes them.
//!
//! **Versions.** The hello carries the agent's [`PROTOCOL_VERSION`] and the
//! optional control-message kinds it handles. A control plane accepts
//! agents of its own version and of the one before ([`OLDEST_VERSION`]),
//! and sends each only the kinds it handles; both sides ignore message
//! kinds, fields and refusal codes they do not know. So a cluster upgrades
//! control plane first, then agents, then relays. Version 2 added the
//! hello's capabilities, the refusal code and tagged agent messages
//! (version 1 agents send bare [`Report`]s).
//!
//! Agents that run replicas also serve [`replica_stream`]s: `warren logs`
//! and `warren exec`, each on a stream the control plane opens.
//!
//! The TLS application protocol [`ALPN`] names the framing, which every
//! version shares.

#![forbid(unsafe_code)]

pub mod assignment;
pub mod frame;
mod messages;
pub mod replica_stream;
mod secret;
pub mod service;
pub mod status;
pub mod stream;

pub use frame::{FrameError, MAX_FRAME, MAX_HELLO};
pub use messages::{
    AgentMessage, Auth, ControlMessage, Hello, HelloVersion, Mode, PathKind, PathReport, Peer,
    RefusalCode, Report, Welcome, V1_CONTROL_KINDS,
};
pub use replica_stream::{
    OutputStream, StreamErrorCode, StreamFrame, StreamRequest, MAX_REQUEST, STREAMS_KIND,
};
pub use secret::{BearerParseError, Secret, TokenId};
pub use service::{
    Constraint, HealthCheck, Probe, RestartPolicy, ServiceSpec, SpecError, TlsMode, UpdateOrder,
    UpdatePolicy,
};
pub use status::{PeerStatus, Status, StatusOf, STATUS_FILE};
pub use stream::{read_frame, write_frame, StreamError};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 2;

/// The oldest agent version this build's control plane admits.
pub const OLDEST_VERSION: u32 = PROTOCOL_VERSION - 1;

/// The TLS application protocol: the framing, shared by every version.
pub const ALPN: &[u8] = b"warren/1";

/// The QUIC close code with which the control plane tells an agent that
/// its node was removed (`warren node rm`): the agent stops, it does not
/// reconnect.
pub const REMOVED_CODE: u32 = 0x5245;

/// The control-message kinds this build's agent handles after its welcome.
pub const CONTROL_KINDS: &[&str] = V1_CONTROL_KINDS;

/// The kind an agent lists besides [`CONTROL_KINDS`] when it runs
/// replicas (`warren join --docker-host`).
pub const ASSIGNMENTS_KIND: &str = "assignments";

#[cfg(test)]
mod tests;
