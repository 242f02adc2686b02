//! The cluster's nodes and the rules for admitting one: a valid, unused
//! name; a WireGuard key no other node has; a mesh address from the
//! allocator; a credential to rejoin with.
//!
//! [`Registry`] decides without side effects ([`Registry::plan_join`]
//! returns the record a join would create) and changes only when told the
//! plan was stored ([`Registry::insert`]): a store failure leaves it as it
//! was.

use crate::ipam::{AllocError, Allocator};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use warren_proto::service::{is_dns_label, MAX_NAME_LEN};
use warren_proto::{Mode, RefusalCode};
use warren_wire::PublicKey;

/// The control plane's name in peer maps and `warren mesh`.
pub const CONTROL_NAME: &str = "control";

/// One node, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// Its unique name.
    pub name: String,
    /// Its WireGuard public key.
    pub public_key: PublicKey,
    /// Its mesh address.
    pub mesh_ip: Ipv4Addr,
    /// How it joined: `direct` or `relay`.
    pub mode: Mode,
    /// The private address a direct node advertises.
    pub private_address: Option<IpAddr>,
    /// Its WireGuard UDP port.
    pub wg_port: u16,
    /// SHA-256 of the credential it rejoins with.
    pub credential_sha256: [u8; 32],
    /// When it joined, unix seconds.
    pub joined: u64,
}

/// What a joining agent asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The name it wants.
    pub name: String,
    /// Its WireGuard public key.
    pub public_key: PublicKey,
    /// How it joins: `direct` or `relay`.
    pub mode: Mode,
    /// Its private address (direct nodes).
    pub private_address: Option<IpAddr>,
    /// Its WireGuard UDP port.
    pub wg_port: u16,
}

/// Why a node cannot join.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinRefused {
    /// Not a usable name.
    #[error("invalid node name {0:?}: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'")]
    InvalidName(String),
    /// The control plane's own name.
    #[error("the name {CONTROL_NAME:?} is the control plane's: pick another with --name")]
    ReservedName,
    /// A node joins `direct` or `relay`.
    #[error("a node joins --direct or --relay, not as {0}")]
    InvalidMode(Mode),
    /// Another node has this name.
    #[error("the name {0:?} is taken by another node: pick another with --name, or remove the old node with `warren node rm {0}`")]
    NameTaken(String),
    /// Another node has this key.
    #[error("this WireGuard key belongs to node {0:?} already: rejoin with that node's data directory, or remove it with `warren node rm {0}`")]
    KeyTaken(String),
    /// A direct node must say where it is reachable.
    #[error("a --direct node needs its --private-address")]
    NoPrivateAddress,
    /// No mesh address left.
    #[error(transparent)]
    Exhausted(#[from] AllocError),
}

impl JoinRefused {
    /// The code the protocol carries beside the line to print.
    pub fn code(&self) -> RefusalCode {
        match self {
            JoinRefused::InvalidName(_) | JoinRefused::ReservedName => RefusalCode::InvalidName,
            JoinRefused::InvalidMode(_) | JoinRefused::NoPrivateAddress => RefusalCode::InvalidMode,
            JoinRefused::NameTaken(_) => RefusalCode::NameTaken,
            JoinRefused::KeyTaken(_) => RefusalCode::KeyTaken,
            JoinRefused::Exhausted(_) => RefusalCode::MeshFull,
        }
    }
}

/// The nodes, and the addresses they hold.
#[derive(Debug, Clone)]
pub struct Registry {
    nodes: BTreeMap<String, NodeRecord>,
    allocator: Allocator,
}

impl Registry {
    /// An empty registry over `allocator`.
    pub fn new(allocator: Allocator) -> Registry {
        Registry {
            nodes: BTreeMap::new(),
            allocator,
        }
    }

    /// The address allocator.
    pub fn allocator(&self) -> &Allocator {
        &self.allocator
    }

    /// Every node, by name.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values()
    }

    /// The node called `name`.
    pub fn get(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.get(name)
    }

    /// The node holding `public_key`.
    pub fn by_key(&self, public_key: &PublicKey) -> Option<&NodeRecord> {
        self.nodes.values().find(|n| n.public_key == *public_key)
    }

    /// The record a join would create, or why it is refused. Changes nothing.
    pub fn plan_join(
        &self,
        request: &JoinRequest,
        credential_sha256: [u8; 32],
        now: u64,
    ) -> Result<NodeRecord, JoinRefused> {
        // The name is echoed back only when it is short enough to be one.
        if request.name.len() > MAX_NAME_LEN {
            return Err(JoinRefused::InvalidName(format!(
                "{}…",
                request.name.chars().take(MAX_NAME_LEN).collect::<String>()
            )));
        }
        if !is_dns_label(&request.name) {
            return Err(JoinRefused::InvalidName(request.name.clone()));
        }
        if request.name == CONTROL_NAME {
            return Err(JoinRefused::ReservedName);
        }
        if request.mode == Mode::Control {
            return Err(JoinRefused::InvalidMode(request.mode));
        }
        if self.nodes.contains_key(&request.name) {
            return Err(JoinRefused::NameTaken(request.name.clone()));
        }
        if let Some(owner) = self.by_key(&request.public_key) {
            return Err(JoinRefused::KeyTaken(owner.name.clone()));
        }
        if request.mode == Mode::Direct && request.private_address.is_none() {
            return Err(JoinRefused::NoPrivateAddress);
        }
        let mesh_ip = self.allocator.next_free()?;
        Ok(NodeRecord {
            name: request.name.clone(),
            public_key: request.public_key,
            mesh_ip,
            mode: request.mode,
            private_address: request.private_address,
            wg_port: request.wg_port,
            credential_sha256,
            joined: now,
        })
    }

    /// Adds a node that is stored (a planned join, or one loaded at start).
    pub fn insert(&mut self, node: NodeRecord) -> Result<(), AllocError> {
        self.allocator.claim(node.mesh_ip)?;
        self.nodes.insert(node.name.clone(), node);
        Ok(())
    }

    /// Replaces the stored details of a node that is already here (same
    /// name; its address stays).
    pub fn replace(&mut self, node: NodeRecord) {
        if let Some(stored) = self.nodes.get_mut(&node.name) {
            *stored = NodeRecord {
                mesh_ip: stored.mesh_ip,
                ..node
            };
        }
    }

    /// Removes a node and frees its address.
    pub fn remove(&mut self, name: &str) -> Option<NodeRecord> {
        let node = self.nodes.remove(name)?;
        self.allocator.release(node.mesh_ip);
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn registry() -> Registry {
        Registry::new(Allocator::new("100.96.0.0/29".parse().unwrap()).unwrap())
    }

    fn request(name: &str, key: u8) -> JoinRequest {
        JoinRequest {
            name: name.to_owned(),
            public_key: PublicKey::from_bytes([key; 32]),
            mode: Mode::Relay,
            private_address: None,
            wg_port: 51820,
        }
    }

    #[test]
    fn names_and_keys_are_unique_and_addresses_come_from_the_cidr() {
        let mut nodes = registry();
        let pi = nodes.plan_join(&request("pi", 1), [0; 32], 10).unwrap();
        assert_eq!(pi.mesh_ip, Ipv4Addr::new(100, 96, 0, 2));
        assert_eq!(nodes.allocator().allocated(), 0, "planning takes nothing");
        nodes.insert(pi).unwrap();
        assert_eq!(
            nodes.plan_join(&request("pi", 2), [0; 32], 11),
            Err(JoinRefused::NameTaken("pi".to_owned()))
        );
        assert_eq!(
            nodes.plan_join(&request("vps", 1), [0; 32], 11),
            Err(JoinRefused::KeyTaken("pi".to_owned()))
        );
        let direct = JoinRequest {
            mode: Mode::Direct,
            ..request("vm", 3)
        };
        assert_eq!(
            nodes.plan_join(&direct, [0; 32], 11),
            Err(JoinRefused::NoPrivateAddress)
        );
        assert_eq!(
            nodes.plan_join(&request("control", 5), [0; 32], 11),
            Err(JoinRefused::ReservedName)
        );
        let control_mode = JoinRequest {
            mode: Mode::Control,
            ..request("sneaky", 5)
        };
        assert_eq!(
            nodes.plan_join(&control_mode, [0; 32], 11),
            Err(JoinRefused::InvalidMode(Mode::Control))
        );
        assert_eq!(
            nodes.plan_join(&request(&"a".repeat(1000), 4), [0; 32], 11),
            Err(JoinRefused::InvalidName(format!("{}…", "a".repeat(63))))
        );
        for bad in ["", "-pi", "pi-", "Pi", "pi.home"] {
            assert_eq!(
                nodes.plan_join(&request(bad, 4), [0; 32], 11),
                Err(JoinRefused::InvalidName(bad.to_owned()))
            );
        }
        let removed = nodes.remove("pi").unwrap();
        assert!(!nodes.allocator().is_allocated(removed.mesh_ip));
        assert!(nodes.plan_join(&request("pi", 1), [0; 32], 12).is_ok());
    }

    proptest! {
        /// Any sequence of joins and removals keeps names, keys and mesh
        /// addresses unique, and a refusal changes nothing.
        #[test]
        fn joins_and_removals_keep_everything_unique(
            ops in proptest::collection::vec((any::<bool>(), 0u8..8, 0u8..8), 0..100),
        ) {
            let mut nodes = registry();
            for (join, name, key) in ops {
                let name = format!("n{name}");
                if join {
                    let before: Vec<NodeRecord> = nodes.nodes().cloned().collect();
                    match nodes.plan_join(&request(&name, key), [key; 32], 0) {
                        Ok(node) => nodes.insert(node).unwrap(),
                        Err(_) => prop_assert_eq!(nodes.nodes().cloned().collect::<Vec<_>>(), before),
                    }
                } else {
                    nodes.remove(&name);
                }
                let all: Vec<&NodeRecord> = nodes.nodes().collect();
                for (i, a) in all.iter().enumerate() {
                    for b in &all[i + 1..] {
                        prop_assert_ne!(a.public_key, b.public_key);
                        prop_assert_ne!(a.mesh_ip, b.mesh_ip);
                    }
                }
                prop_assert_eq!(nodes.allocator().allocated(), all.len());
            }
        }
    }
}
