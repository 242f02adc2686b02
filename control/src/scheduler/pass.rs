//! One scheduling pass: the node views built once for a decision, then kept
//! up to date as it places and removes replicas, so that placing many
//! services one after the other never rebuilds them.

use super::{choose, name_ranks, NodeView, Placement, Request, Resources, Unplaceable};
use std::borrow::Cow;

/// The nodes as a decision sees them while it places and removes replicas.
///
/// Nodes are named by their index in the views [`Pass::new`] was given.
#[derive(Debug, Clone)]
pub struct Pass<'a> {
    pub(super) nodes: Vec<NodeView<'a>>,
    /// Each node's place in the order of names (names do not change).
    ranks: Vec<u32>,
}

impl<'a> Pass<'a> {
    /// A pass over `nodes`, as they stand before it places anything.
    pub fn new(nodes: Vec<NodeView<'a>>) -> Pass<'a> {
        let ranks = name_ranks(&nodes);
        Pass { nodes, ranks }
    }

    /// Counts a replica in on node `node`: what it reserves, the host ports
    /// it holds and, with its `service`, one more of that service there (a
    /// pass that places only other services may leave it uncounted). An
    /// index out of range changes nothing.
    pub fn add(
        &mut self,
        node: usize,
        service: Option<Cow<'a, str>>,
        reserved: Resources,
        ports: &[u16],
    ) {
        let Some(view) = self.nodes.get_mut(node) else {
            return;
        };
        view.allocated = view.allocated.plus(reserved);
        view.ports_in_use.extend(ports.iter().copied());
        let Some(service) = service else {
            return;
        };
        match view.replicas.get_mut(service.as_ref()) {
            Some(count) => *count += 1,
            None => {
                view.replicas.insert(service, 1);
            }
        }
    }

    /// Counts a replica that [`Pass::add`] (or the views given to
    /// [`Pass::new`]) counted in out again.
    pub fn remove(&mut self, node: usize, service: &str, reserved: Resources, ports: &[u16]) {
        let Some(view) = self.nodes.get_mut(node) else {
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
        let chosen = choose(&self.nodes, &self.ranks, request)?;
        let mut placements = Vec::with_capacity(chosen.len());
        for (index, host_ports) in chosen {
            let service = Cow::Owned(request.service.to_owned());
            self.add(index, Some(service), request.resources, &host_ports);
            if let Some(view) = self.nodes.get(index) {
                placements.push(Placement {
                    node: view.name.to_string(),
                    host_ports,
                });
            }
        }
        Ok(placements)
    }
}
