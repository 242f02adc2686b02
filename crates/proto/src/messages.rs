//! The messages of the agent–control protocol and the types they carry.
//!
//! Every enum that travels has a catch-all (`Unknown`) that an older build
//! decodes a newer build's additions into and then ignores, so new message
//! kinds, refusal codes and capabilities never break an older peer. Path
//! kinds and node modes are closed sets: later versions add detail as new
//! fields, never new kinds.

use crate::assignment::{Assignment, NodeReport, ReplicaStatus};
use crate::secret::{Secret, TokenId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use warren_wire::{PublicKey, Ticket};

/// How a node is part of the mesh; named after the flag it joined with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The control plane itself.
    Control,
    /// `warren join --direct`: on a private network, reached at its private
    /// address.
    Direct,
    /// `warren join --relay`: behind NAT, through relays until a direct
    /// path is found.
    Relay,
}

impl Mode {
    /// The word the CLI, the API and the protocol use.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Control => "control",
            Mode::Direct => "direct",
            Mode::Relay => "relay",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How one node reaches another right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PathKind {
    /// Straight to the peer.
    Direct,
    /// Through a relay.
    Relayed,
    /// No session yet (never a handshake).
    None,
}

impl PathKind {
    /// The word `warren mesh` and the JSON use.
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Relayed => "relayed",
            PathKind::None => "none",
        }
    }
}

impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How an agent proves it may join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Auth {
    /// A first join, with a join token's id (16 hex digits) and secret
    /// (base64url).
    Token {
        /// Which token.
        id: TokenId,
        /// Its secret.
        secret: Secret,
    },
    /// A rejoin, with the credential (base64url) the first join handed out.
    Credential {
        /// The credential.
        secret: Secret,
    },
}

/// The agent's first message.
///
/// ```json
/// {"version":2,"capabilities":["peers","ticket","candidates"],
///  "auth":{"kind":"token","id":"0102030405060708","secret":"…"},
///  "name":"pi","public_key":"…base64…","mode":"relay","private_address":null,"wg_port":51820}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the agent speaks ([`crate::PROTOCOL_VERSION`]).
    pub version: u32,
    /// The optional control-message kinds the agent handles (see
    /// [`ControlMessage::kind`]); a version-1 agent sends none and is
    /// taken to handle [`V1_CONTROL_KINDS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// How it proves it may join.
    pub auth: Auth,
    /// The node name it asks for (its hostname by default).
    pub name: String,
    /// Its WireGuard public key.
    pub public_key: PublicKey,
    /// `direct` or `relay`.
    pub mode: Mode,
    /// The private address a direct node is reachable at.
    pub private_address: Option<IpAddr>,
    /// Its WireGuard UDP port.
    pub wg_port: u16,
    /// What the node offers to replicas, from an agent that runs them: in
    /// the hello, so a node can be placed on as soon as it is admitted
    /// (later changes come as [`AgentMessage::Node`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<NodeReport>,
}

/// The control-message kinds every version-1 agent handles after its
/// welcome.
pub const V1_CONTROL_KINDS: &[&str] = &["peers", "ticket", "candidates"];

/// Just the version of a hello: read first, so that a hello of another
/// version is refused for its version rather than for its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct HelloVersion {
    /// The agent's protocol version.
    pub version: u32,
}

/// A node in an agent's peer map (the control plane is one, named
/// `control`); direct nodes list their private address as an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    /// The node's name.
    pub name: String,
    /// Its WireGuard public key.
    pub public_key: PublicKey,
    /// Its mesh address.
    pub mesh_ip: Ipv4Addr,
    /// How it is part of the mesh.
    pub mode: Mode,
    /// Addresses to try directly, likeliest first (empty: relay only).
    pub endpoints: Vec<SocketAddr>,
}

/// What an admitted agent gets: its place in the mesh and everything it
/// needs to bring the mesh up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The node's name.
    pub name: String,
    /// The node's mesh address.
    pub mesh_ip: Ipv4Addr,
    /// The mesh prefix length (the CIDR's).
    pub mesh_prefix: u8,
    /// The credential to rejoin with, on a first join only.
    pub credential: Option<Secret>,
    /// The relays to register with, in order of preference.
    pub relays: Vec<SocketAddr>,
    /// The node's relay ticket.
    #[serde(with = "ticket_base64")]
    pub ticket: Ticket,
    /// Every other node, the control plane first.
    pub peers: Vec<Peer>,
}

/// Why the control plane refused a hello, for scripts and for the agent to
/// decide what to do (the line to print travels beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RefusalCode {
    /// The agent's protocol version is not one the control plane accepts.
    UnsupportedVersion,
    /// The hello could not be parsed.
    MalformedHello,
    /// No token with this id and secret (or a malformed one).
    TokenUnknown,
    /// The token expired.
    TokenExpired,
    /// Every use of the token is spent.
    TokenUsedUp,
    /// The token was revoked.
    TokenRevoked,
    /// The name is not a valid node name, or is reserved.
    InvalidName,
    /// Another node has this name.
    NameTaken,
    /// Another node has this WireGuard key.
    KeyTaken,
    /// The key cannot be a node's (the control plane's own, or a low-order
    /// point).
    KeyRefused,
    /// A `direct` join without a private address, or a mode other than
    /// `direct` and `relay`.
    InvalidMode,
    /// The mesh has no address left.
    MeshFull,
    /// The credential is not known (the node was removed).
    CredentialUnknown,
    /// The credential belongs to a node with another key.
    KeyMismatch,
    /// The control plane failed; trying again may work.
    Internal,
    /// A code this build does not know (from a newer control plane).
    #[default]
    #[serde(other)]
    Unknown,
}

impl RefusalCode {
    /// Whether trying the same hello again later can succeed.
    pub fn is_transient(self) -> bool {
        matches!(self, RefusalCode::Internal | RefusalCode::Unknown)
    }
}

/// What the control plane sends an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ControlMessage {
    /// The agent is admitted.
    Welcome(Welcome),
    /// The agent is not admitted; nothing changed on the control plane.
    Refused {
        /// Why, for programs.
        #[serde(default)]
        code: RefusalCode,
        /// Why, in one line for the agent to print.
        reason: String,
    },
    /// A fresh relay ticket for the node's key (tickets are short-lived and
    /// renewed while the node is connected; a removed node gets none).
    Ticket {
        /// The ticket.
        #[serde(with = "ticket_base64")]
        ticket: Ticket,
    },
    /// Where a peer could be reached directly, as it last reported (NAT
    /// traversal candidates, passed on by the control plane).
    Candidates {
        /// The peer's public key.
        public_key: PublicKey,
        /// Its candidates, likeliest first.
        candidates: Vec<SocketAddr>,
    },
    /// Changes to the peer map since the welcome or the last update.
    Peers {
        /// Nodes that joined (or whose details changed).
        added: Vec<Peer>,
        /// Public keys of nodes that left.
        removed: Vec<PublicKey>,
    },
    /// Every replica the node should run, replacing the previous set (sent
    /// only to agents that list `assignments`).
    Assignments {
        /// Grows with every change, so an old set never replaces a newer one.
        revision: u64,
        /// The replicas.
        replicas: Vec<Assignment>,
    },
    /// A kind this build does not know (from a newer control plane):
    /// ignored.
    #[serde(other)]
    Unknown,
}

impl ControlMessage {
    /// The message's `type`, which capability lists name.
    pub fn kind(&self) -> &'static str {
        match self {
            ControlMessage::Welcome(_) => "welcome",
            ControlMessage::Refused { .. } => "refused",
            ControlMessage::Ticket { .. } => "ticket",
            ControlMessage::Candidates { .. } => "candidates",
            ControlMessage::Peers { .. } => "peers",
            ControlMessage::Assignments { .. } => "assignments",
            ControlMessage::Unknown => "unknown",
        }
    }
}

/// What an admitted agent sends after its hello (version 2; a version-1
/// agent sends bare [`Report`]s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentMessage {
    /// Its paths and candidates, every few seconds.
    Report(Report),
    /// What the node offers to replicas.
    Node(NodeReport),
    /// Every replica the node runs and how it is, at once when one changes.
    Replicas {
        /// The replicas.
        replicas: Vec<ReplicaStatus>,
    },
    /// The node asks to leave the cluster (`warren leave`, run on it): it
    /// is drained and then removed, as `warren node rm` does.
    Leave,
    /// A kind this build does not know (from a newer agent): ignored.
    #[serde(other)]
    Unknown,
}

/// How the reporting node reaches one peer (see `docs/mesh.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathReport {
    /// The peer's WireGuard public key.
    pub public_key: PublicKey,
    /// Direct, relayed or none.
    pub kind: PathKind,
    /// Where the node sends to it (the relay while relayed).
    pub endpoint: Option<SocketAddr>,
    /// Round trip through the mesh, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Seconds since the last handshake.
    pub last_handshake_secs: Option<u64>,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
    /// Bytes received from it.
    pub rx_bytes: u64,
}

/// A node's view of its paths, sent every few seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Its view of every peer.
    pub paths: Vec<PathReport>,
    /// Where peers could reach it directly (the relays' view of it, then its
    /// own addresses), passed on to the other nodes for NAT traversal.
    #[serde(default)]
    pub candidates: Vec<SocketAddr>,
}

/// Relay tickets travel as base64 text.
mod ticket_base64 {
    use serde::{Deserialize, Deserializer, Serializer};
    use warren_wire::Ticket;

    pub fn serialize<S: Serializer>(ticket: &Ticket, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&ticket.to_base64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Ticket, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Ticket::from_base64(&text).map_err(serde::de::Error::custom)
    }
}
