//! Who may join, decided without side effects: [`decide`] takes a snapshot
//! of the cluster (the registry, the token the hello names, the control
//! plane's own key), the hello, the time and fresh randomness, and returns
//! a [`Decision`] that the cluster's owner commits (store first, then the
//! registry) or a [`Refusal`] that changes nothing.
//!
//! The order of the checks is part of the contract: the hello's version
//! and shape first, then the token or credential, and only then anything
//! that tells whether a name or key exists in the cluster, so a stranger
//! without a valid token learns nothing about it.

use crate::nodes::{JoinRefused, JoinRequest, NodeRecord, Registry};
use crate::tokens::{secret_sha256, TokenRecord, TokenRefused};
use warren_proto::{
    Auth, Hello, Mode, RefusalCode, Secret, TokenId, OLDEST_VERSION, PROTOCOL_VERSION,
};
use warren_wire::PublicKey;

/// What admission looks at besides the hello.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    /// The nodes now.
    pub registry: &'a Registry,
    /// The stored token the hello names, if the hello names one that exists.
    pub token: Option<&'a TokenRecord>,
    /// The control plane's own WireGuard key, which no node may claim.
    pub control_key: PublicKey,
}

/// Why a hello was not admitted: a code for programs and a line for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    /// What kind of refusal.
    pub code: RefusalCode,
    /// The line the agent prints.
    pub reason: String,
}

impl Refusal {
    /// A refusal with `code` and `reason`.
    pub fn new(code: RefusalCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }

    /// A hello that could not be parsed.
    pub fn malformed(detail: impl std::fmt::Display) -> Refusal {
        Refusal::new(
            RefusalCode::MalformedHello,
            format!(
                "the agent's hello is malformed ({detail}): run the same warren release on both"
            ),
        )
    }
}

impl From<JoinRefused> for Refusal {
    fn from(refused: JoinRefused) -> Refusal {
        Refusal::new(refused.code(), refused.to_string())
    }
}

impl From<TokenRefused> for Refusal {
    fn from(refused: TokenRefused) -> Refusal {
        let code = match refused {
            TokenRefused::Unknown => RefusalCode::TokenUnknown,
            TokenRefused::Expired => RefusalCode::TokenExpired,
            TokenRefused::Revoked => RefusalCode::TokenRevoked,
            TokenRefused::UsedUp { .. } => RefusalCode::TokenUsedUp,
        };
        Refusal::new(code, refused.to_string())
    }
}

/// What admitting a hello takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A first join: store `node` and count one use of `token` in one
    /// transaction, then hand `credential` out in the welcome.
    Join {
        /// The new node.
        node: NodeRecord,
        /// The token it redeems.
        token: TokenId,
        /// The token's secret as presented (the store checks it again,
        /// atomically with the use count).
        token_secret: Secret,
        /// The credential it will rejoin with (only its hash is stored).
        credential: Secret,
    },
    /// A rejoin with a known credential; `changed` when its mode, private
    /// address or port differ from what is stored (store, then tell peers).
    Rejoin {
        /// The node as it will be stored.
        node: NodeRecord,
        /// Whether anything differs from the stored node.
        changed: bool,
    },
}

/// The decision on `hello` at `now` (unix seconds); `random` becomes the
/// new node's credential on a first join.
pub fn decide(
    snapshot: &Snapshot<'_>,
    hello: &Hello,
    now: u64,
    random: [u8; 32],
) -> Result<Decision, Refusal> {
    check_version(hello.version)?;
    match &hello.auth {
        Auth::Token { id, secret } => {
            let token = snapshot
                .token
                .filter(|token| token.id == id.0)
                .ok_or(TokenRefused::Unknown)?;
            token.check(&secret.0, now)?;
            check_key(snapshot, &hello.public_key)?;
            let request = JoinRequest {
                name: hello.name.clone(),
                public_key: hello.public_key,
                mode: hello.mode,
                private_address: hello.private_address,
                wg_port: hello.wg_port,
            };
            let credential = Secret(random);
            let node = snapshot
                .registry
                .plan_join(&request, secret_sha256(&credential.0), now)?;
            Ok(Decision::Join {
                node,
                token: *id,
                token_secret: secret.clone(),
                credential,
            })
        }
        Auth::Credential { secret } => {
            let hash = secret_sha256(&secret.0);
            let stored = snapshot
                .registry
                .nodes()
                .find(|node| node.credential_sha256 == hash)
                .ok_or_else(|| {
                    Refusal::new(
                        RefusalCode::CredentialUnknown,
                        "this node's credential is not known here (was it removed with `warren node rm`?): join again with a new token",
                    )
                })?;
            if stored.public_key != hello.public_key {
                return Err(Refusal::new(
                    RefusalCode::KeyMismatch,
                    format!(
                        "node {:?} joined with another WireGuard key: a node cannot change or claim keys",
                        stored.name
                    ),
                ));
            }
            // A node may come back with a new mode, private address or port.
            let node = NodeRecord {
                mode: hello.mode,
                private_address: hello.private_address,
                wg_port: hello.wg_port,
                ..stored.clone()
            };
            if node.mode == Mode::Control {
                return Err(JoinRefused::InvalidMode(node.mode).into());
            }
            if node.mode == Mode::Direct && node.private_address.is_none() {
                return Err(JoinRefused::NoPrivateAddress.into());
            }
            let changed = node != *stored;
            Ok(Decision::Rejoin { node, changed })
        }
    }
}

/// Refuses a version outside [`OLDEST_VERSION`]..=[`PROTOCOL_VERSION`].
pub fn check_version(version: u32) -> Result<(), Refusal> {
    if (OLDEST_VERSION..=PROTOCOL_VERSION).contains(&version) {
        return Ok(());
    }
    let advice = if version > PROTOCOL_VERSION {
        "upgrade the control plane first"
    } else {
        "upgrade this agent"
    };
    Err(Refusal::new(
        RefusalCode::UnsupportedVersion,
        format!(
            "this agent speaks protocol version {version}, the control plane versions {OLDEST_VERSION} to {PROTOCOL_VERSION}: {advice}"
        ),
    ))
}

/// A node's key must be a usable X25519 key that is not the control
/// plane's own.
fn check_key(snapshot: &Snapshot<'_>, key: &PublicKey) -> Result<(), Refusal> {
    if *key == snapshot.control_key {
        return Err(Refusal::new(
            RefusalCode::KeyRefused,
            "the agent claims the control plane's own WireGuard key",
        ));
    }
    if key.is_low_order() {
        return Err(Refusal::new(
            RefusalCode::KeyRefused,
            "the agent's WireGuard key is a low-order point, which authenticates nothing: generate a real key",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "admission_tests.rs"]
mod tests;
