//! One scheduling pass: a decision's window on node views it is given,
//! kept up to date as it places and removes replicas. The views are
//! borrowed; a node's view is copied only when the pass first changes it,
//! so that a decision never rebuilds the views of nodes it does not touch.

use super::{choose, name_ranks, NodeView, Placement, Request, Resources, Unplaceable};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The nodes as a decision sees them while it places and removes replicas.
///
/// Nodes are named by their index in the views [`Pass::new`] was given.
#[derive(Debug, Clone)]
pub struct Pass<'a> {
    /// The views as they stood before the pass.
    base: &'a [NodeView<'a>],
    /// The views of the nodes the pass changed, by index.
    changed: BTreeMap<usize, NodeView<'a>>,
    /// Each node's place in the order of names (names do not change).
    ranks: Vec<u32>,
}

impl<'a> Pass<'a> {
    /// A pass over `nodes`, as they stand before it places anything.
    pub fn new(nodes: &'a [NodeView<'a>]) -> Pass<'a> {
        Pass {
            base: nodes,
            changed: BTreeMap::new(),
            ranks: name_ranks(nodes),
        }
    }

    /// How many nodes the pass looks at.
    pub(super) fn len(&self) -> usize {
        self.base.len()
    }

    /// The node at `index` as the pass sees it now.
    pub(super) fn node(&self, index: usize) -> Option<&NodeView<'a>> {
        self.changed.get(&index).or_else(|| self.base.get(index))
    }

    /// Every node as the pass sees it now, with its index.
    pub(super) fn nodes(&self) -> impl Iterator<Item = (usize, &NodeView<'a>)> {
        (0..self.len()).filter_map(|index| Some((index, self.node(index)?)))
    }

    /// The place of the node at `index` in the order of names.
    pub(super) fn rank(&self, index: usize) -> u32 {
        self.ranks.get(index).copied().unwrap_or(u32::MAX)
    }

    /// The node at `index`, to change: its view copied on the first change
    /// (the name and labels stay borrowed).
    fn node_mut(&mut self, index: usize) -> Option<&mut NodeView<'a>> {
        let base: &'a NodeView<'a> = self.base.get(index)?;
        Some(self.changed.entry(index).or_insert_with(|| {
            NodeView {
                name: Cow::Borrowed(base.name.as_ref()),
                online: base.online,
                drained: base.drained,
                labels: Cow::Borrowed(base.labels.as_ref()),
                capacity: base.capacity,
                allocated: base.allocated,
                ports_in_use: base.ports_in_use.clone(),
                replicas: base
                    .replicas
                    .iter()
                    .map(|(service, count)| (Cow::Borrowed(service.as_ref()), *count))
                    .collect(),
                reach: base.reach,
            }
        }))
    }

    /// Counts a replica in on node `node`: what it reserves, the host ports
    /// it holds and one more of its `service` there. An index out of range
    /// changes nothing.
    pub fn add(&mut self, node: usize, service: &str, reserved: Resources, ports: &[u16]) {
        let Some(view) = self.node_mut(node) else {
            return;
        };
        view.allocated = view.allocated.plus(reserved);
        view.ports_in_use.extend(ports.iter().copied());
        match view.replicas.get_mut(service) {
            Some(count) => *count += 1,
            None => {
                view.replicas.insert(Cow::Owned(service.to_owned()), 1);
            }
        }
    }

    /// Counts a replica that [`Pass::add`] (or the views given to
    /// [`Pass::new`]) counted in out again.
    pub fn remove(&mut self, node: usize, service: &str, reserved: Resources, ports: &[u16]) {
        let Some(view) = self.node_mut(node) else {
            return;
        };
        view.allocated = view.allocated.minus(reserved);
        for port in ports {
            view.ports_in_use.remove(port);
        }
        if let Some(count) = view.replicas.get_mut(service) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                view.replicas.remove(service);
            }
        }
    }

    /// Places `request.count` replicas and counts them in, or says why the
    /// first one that does not fit cannot be placed (nothing is placed or
    /// counted then). See the [module doc](super) for the rules.
    pub fn place(&mut self, request: &Request<'_>) -> Result<Vec<Placement>, Unplaceable> {
        let chosen = choose(self, request)?;
        let mut placements = Vec::with_capacity(chosen.len());
        for (index, host_ports) in chosen {
            self.add(index, request.service, request.resources, &host_ports);
            if let Some(view) = self.node(index) {
                placements.push(Placement {
                    node: view.name.to_string(),
                    host_ports,
                });
            }
        }
        Ok(placements)
    }
}
