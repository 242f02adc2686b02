//! Mesh address allocation: one address per node from the mesh CIDR.
//!
//! [`Allocator`] is a plain in-memory set of taken addresses with a cursor;
//! the store persists every allocation before it is acknowledged, and
//! [`Allocator::claim`] rebuilds the set on start. It never hands out the
//! network address, the broadcast address or the control plane's own
//! address (the first host), and it hands out a released address again only
//! after every other free one (the cursor moves on), so a stale peer map
//! rarely points a removed node's address at a new node.

use ip_network::Ipv4Network;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Why an address could not be allocated or claimed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    /// Every usable address of the CIDR is taken.
    #[error("the mesh CIDR {cidr} is full ({usable} node addresses); remove nodes or start over with a larger --mesh-cidr")]
    Exhausted {
        /// The mesh CIDR.
        cidr: Ipv4Network,
        /// How many node addresses it holds.
        usable: u32,
    },
    /// The CIDR leaves no address for a node (a /31 or /32).
    #[error("the mesh CIDR {0} is too small: it needs room for the control plane and at least one node (/30 or larger)")]
    TooSmall(Ipv4Network),
    /// The address is outside the CIDR, or one never given to a node.
    #[error("{addr} is not a node address of the mesh CIDR {cidr}")]
    NotAssignable {
        /// The address.
        addr: Ipv4Addr,
        /// The mesh CIDR.
        cidr: Ipv4Network,
    },
    /// The address is taken already.
    #[error("{0} is already allocated")]
    Taken(Ipv4Addr),
}

/// The set of allocated mesh addresses.
#[derive(Debug, Clone)]
pub struct Allocator {
    cidr: Ipv4Network,
    taken: BTreeSet<u32>,
    /// The last address handed out; the search for a free one starts after it.
    cursor: u32,
}

impl Allocator {
    /// An allocator for `cidr` with nothing allocated.
    pub fn new(cidr: Ipv4Network) -> Result<Allocator, AllocError> {
        if cidr.netmask() > 30 {
            return Err(AllocError::TooSmall(cidr));
        }
        let control = u32::from(cidr.network_address()) + 1;
        Ok(Allocator {
            cidr,
            taken: BTreeSet::new(),
            cursor: control,
        })
    }

    /// The mesh CIDR.
    pub fn cidr(&self) -> Ipv4Network {
        self.cidr
    }

    /// The control plane's own mesh address: the CIDR's first host.
    pub fn control_address(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.first())
    }

    /// How many addresses nodes can have (all hosts but the control plane's).
    pub fn capacity(&self) -> u32 {
        self.last() - self.first()
    }

    /// How many are allocated.
    pub fn allocated(&self) -> usize {
        self.taken.len()
    }

    /// Hands out the next free address after the last one handed out,
    /// wrapping around the CIDR.
    pub fn allocate(&mut self) -> Result<Ipv4Addr, AllocError> {
        let addr = self.next_free()?;
        self.claim(addr)?;
        Ok(addr)
    }

    /// The address [`Allocator::allocate`] would hand out, without taking it.
    pub fn next_free(&self) -> Result<Ipv4Addr, AllocError> {
        let (first_node, last) = (self.first() + 1, self.last());
        let start = self.cursor.clamp(first_node - 1, last);
        let after = (start + 1..=last).find(|a| !self.taken.contains(a));
        let found = after.or_else(|| (first_node..=start).find(|a| !self.taken.contains(a)));
        found.map(Ipv4Addr::from).ok_or(AllocError::Exhausted {
            cidr: self.cidr,
            usable: self.capacity(),
        })
    }

    /// Marks `addr` taken (a node's address loaded from the store, or asked
    /// for again by a node that rejoins).
    pub fn claim(&mut self, addr: Ipv4Addr) -> Result<(), AllocError> {
        let raw = u32::from(addr);
        if !self.is_assignable(raw) {
            return Err(AllocError::NotAssignable {
                addr,
                cidr: self.cidr,
            });
        }
        if !self.taken.insert(raw) {
            return Err(AllocError::Taken(addr));
        }
        self.cursor = raw;
        Ok(())
    }

    /// Frees `addr`; returns whether it was allocated.
    pub fn release(&mut self, addr: Ipv4Addr) -> bool {
        self.taken.remove(&u32::from(addr))
    }

    /// Whether `addr` is allocated.
    pub fn is_allocated(&self, addr: Ipv4Addr) -> bool {
        self.taken.contains(&u32::from(addr))
    }

    fn is_assignable(&self, raw: u32) -> bool {
        raw > self.first() && raw <= self.last()
    }

    /// The control plane's address (the network address + 1).
    fn first(&self) -> u32 {
        u32::from(self.cidr.network_address()) + 1
    }

    /// The last host (the broadcast address - 1).
    fn last(&self) -> u32 {
        u32::from(self.cidr.broadcast_address()) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cidr(text: &str) -> Ipv4Network {
        text.parse().unwrap()
    }

    #[test]
    fn a_slash_30_holds_one_node_and_says_so_when_full() {
        let mut alloc = Allocator::new(cidr("10.0.0.0/30")).unwrap();
        assert_eq!(alloc.control_address(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(alloc.allocate(), Ok(Ipv4Addr::new(10, 0, 0, 2)));
        let full = alloc.allocate().unwrap_err();
        assert_eq!(
            full,
            AllocError::Exhausted {
                cidr: cidr("10.0.0.0/30"),
                usable: 1
            }
        );
        assert!(full.to_string().contains("--mesh-cidr"), "{full}");
        assert_eq!(
            Allocator::new(cidr("10.0.0.0/31")).unwrap_err(),
            AllocError::TooSmall(cidr("10.0.0.0/31"))
        );
    }

    #[test]
    fn a_released_address_comes_back_only_after_the_others() {
        let mut alloc = Allocator::new(cidr("100.96.0.0/29")).unwrap();
        let first = alloc.allocate().unwrap();
        assert_eq!(first, Ipv4Addr::new(100, 96, 0, 2));
        assert!(alloc.release(first));
        let next: Vec<Ipv4Addr> = (0..5).map(|_| alloc.allocate().unwrap()).collect();
        assert_eq!(next.last(), Some(&first), "{next:?}");
    }

    #[test]
    fn claims_rebuild_the_set_and_refuse_what_no_node_may_have() {
        let mut alloc = Allocator::new(cidr("100.96.0.0/24")).unwrap();
        let refused = |alloc: &mut Allocator, addr: [u8; 4]| alloc.claim(Ipv4Addr::from(addr));
        for addr in [
            [100, 96, 0, 0],
            [100, 96, 0, 1],
            [100, 96, 0, 255],
            [10, 0, 0, 2],
        ] {
            assert!(
                matches!(
                    refused(&mut alloc, addr),
                    Err(AllocError::NotAssignable { .. })
                ),
                "{addr:?}"
            );
        }
        alloc.claim(Ipv4Addr::new(100, 96, 0, 7)).unwrap();
        assert_eq!(
            alloc.claim(Ipv4Addr::new(100, 96, 0, 7)),
            Err(AllocError::Taken(Ipv4Addr::new(100, 96, 0, 7)))
        );
        assert_eq!(alloc.allocate(), Ok(Ipv4Addr::new(100, 96, 0, 8)));
    }

    proptest! {
        /// Whatever the sequence of allocations and releases, addresses are
        /// unique, inside the CIDR, never the network, broadcast or control
        /// address, and the CIDR is full exactly when every node address is
        /// taken.
        #[test]
        fn addresses_are_unique_usable_and_exhaustion_is_exact(
            prefix in 26u8..=30,
            ops in proptest::collection::vec(any::<(bool, u8)>(), 0..300),
        ) {
            let cidr = Ipv4Network::new(Ipv4Addr::new(100, 96, 0, 0), prefix).unwrap();
            let mut alloc = Allocator::new(cidr).unwrap();
            let mut held: Vec<Ipv4Addr> = Vec::new();
            for (allocate, pick) in ops {
                if allocate || held.is_empty() {
                    match alloc.allocate() {
                        Ok(addr) => {
                            prop_assert!(!held.contains(&addr));
                            prop_assert!(cidr.contains(addr));
                            prop_assert_ne!(addr, cidr.network_address());
                            prop_assert_ne!(addr, cidr.broadcast_address());
                            prop_assert_ne!(addr, alloc.control_address());
                            held.push(addr);
                        }
                        Err(AllocError::Exhausted { usable, .. }) => {
                            prop_assert_eq!(held.len() as u32, usable);
                        }
                        Err(other) => prop_assert!(false, "{}", other),
                    }
                } else {
                    let addr = held.swap_remove(usize::from(pick) % held.len());
                    prop_assert!(alloc.release(addr));
                }
                prop_assert_eq!(alloc.allocated(), held.len());
            }
        }
    }
}
