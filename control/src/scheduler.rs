//! Where replicas go: a pure function from a snapshot of the nodes and a
//! request to placements, after Nomad's pipeline — feasibility, then
//! ranking — with an explanation when nothing fits.
//!
//! **Feasible** means: online, not drained, every label constraint holds
//! (the architecture is the built-in `arch` label), the request's CPU and
//! memory fit in what the node has left of its capacity, and the node has
//! enough free host ports. Each node that is not feasible records one
//! [`Infeasible`] reason (the first check it fails), which users see.
//!
//! **Ranking** among feasible nodes, in order: fewest replicas of this
//! service already there (spread); then, while the service has no replica
//! on a node reached directly, direct nodes before relayed ones (so a
//! service does not end up entirely behind relays when direct nodes can
//! take it); then the least loaded (the larger of CPU and memory use as a
//! share of capacity); then the name, so a snapshot always gives the same
//! answer. Replicas are placed one at a time, each seeing the previous
//! ones.
//!
//! A decision places and removes through one [`Pass`] over node views it
//! is given (the cluster keeps them across commands): the pass copies a
//! node's view only when it changes it, so a decision costs a walk over the
//! nodes, not a rebuild of their views, however many services it places.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::fmt;
use std::ops::RangeInclusive;
use warren_proto::Constraint;

mod pass;
pub use pass::Pass;

/// CPU and memory, as capacities, reservations or use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resources {
    /// CPU, millicores.
    pub cpu_millis: u64,
    /// Memory, bytes.
    pub memory: u64,
}

impl Resources {
    /// `0.5 cores`.
    pub fn cores_text(self) -> String {
        format!("{:.1} cores", self.cpu_millis as f64 / 1000.0)
    }

    /// `2.0 GiB`.
    pub fn memory_text(self) -> String {
        format!("{:.1} GiB", self.memory as f64 / f64::from(1u32 << 30))
    }

    pub(crate) fn plus(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory: self.memory.saturating_add(other.memory),
        }
    }

    pub(crate) fn minus(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory: self.memory.saturating_sub(other.memory),
        }
    }

    fn fits_within(self, capacity: Resources) -> bool {
        self.cpu_millis <= capacity.cpu_millis && self.memory <= capacity.memory
    }
}

/// How the control plane reaches a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reach {
    /// Straight (a measured direct path, or a `--direct` node not yet measured).
    Direct,
    /// Through a relay.
    Relayed,
}

/// One node as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView<'a> {
    /// The node's name.
    pub name: Cow<'a, str>,
    /// Whether its agent is connected.
    pub online: bool,
    /// Whether it is drained (`warren node drain`): nothing new goes there.
    pub drained: bool,
    /// Its labels, including `arch` and `node`.
    pub labels: Cow<'a, BTreeMap<String, String>>,
    /// What it offers to replicas.
    pub capacity: Resources,
    /// What the replicas already there reserve.
    pub allocated: Resources,
    /// Host ports already taken there.
    pub ports_in_use: BTreeSet<u16>,
    /// Replicas already there, by service.
    pub replicas: BTreeMap<Cow<'a, str>, u32>,
    /// How the control plane reaches it.
    pub reach: Reach,
}

/// What to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The service.
    pub service: &'a str,
    /// How many replicas to add.
    pub count: u32,
    /// What each reserves.
    pub resources: Resources,
    /// Host ports each needs.
    pub ports: usize,
    /// Where they may run.
    pub constraints: &'a [Constraint],
    /// The host ports replicas may publish on.
    pub port_range: RangeInclusive<u16>,
}

/// One replica's place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The node.
    pub node: String,
    /// Its host ports, one per container port of the request.
    pub host_ports: Vec<u16>,
}

/// Why a node cannot take a replica.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Infeasible {
    /// Its agent is not connected.
    Offline,
    /// It is drained.
    Drained,
    /// A constraint does not hold there (the first that fails).
    Constraint(String),
    /// Not enough CPU left.
    Cpu,
    /// Not enough memory left.
    Memory,
    /// Not enough free host ports.
    Ports,
}

impl fmt::Display for Infeasible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Infeasible::Offline => f.write_str("offline"),
            Infeasible::Drained => f.write_str("drained"),
            Infeasible::Constraint(constraint) => write!(f, "fail {constraint}"),
            Infeasible::Cpu => f.write_str("lack CPU"),
            Infeasible::Memory => f.write_str("lack memory"),
            Infeasible::Ports => f.write_str("have no free host port"),
        }
    }
}

/// Nothing can take the next replica: how many nodes were looked at, and
/// why each was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Unplaceable {
    /// How many of the request's replicas were placed before this one.
    pub placed: u32,
    /// The nodes looked at.
    pub nodes: usize,
    /// How many nodes were refused for each reason.
    pub reasons: BTreeMap<Infeasible, usize>,
    /// What the replica reserves (what nodes lacking CPU or memory lack).
    pub needs: Resources,
}

impl fmt::Display for Unplaceable {
    /// `3 nodes: 1 drained, 2 lack 2.0 GiB memory`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nodes == 0 {
            return f.write_str("no nodes have joined");
        }
        let plural = if self.nodes == 1 { "" } else { "s" };
        write!(f, "{} node{plural}: ", self.nodes)?;
        let reasons: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, count)| match reason {
                Infeasible::Cpu => format!("{count} lack {}", self.needs.cores_text()),
                Infeasible::Memory => {
                    format!("{count} lack {} memory", self.needs.memory_text())
                }
                _ => format!("{count} {reason}"),
            })
            .collect();
        f.write_str(&reasons.join(", "))
    }
}

/// Chooses nodes for `request.count` replicas on the nodes of `pass` (by
/// index, with their host ports), or says why the first one that does not fit cannot be
/// placed (nothing is chosen then). [`Pass::place`] is how callers get here.
///
/// Each node is judged once per request; after a replica is placed only
/// the node that took it is judged again (placing on one node changes no
/// other node's feasibility or rank), so a request costs one pass over the
/// nodes plus a heap operation per replica.
///
/// The last tie-break is each node's place in the order of names
/// ([`Pass::rank`]).
fn choose(pass: &Pass<'_>, request: &Request<'_>) -> Result<Vec<(usize, Vec<u16>)>, Unplaceable> {
    let nodes = pass.len();
    // What this request put on each node so far; none is nothing yet.
    let mut added: BTreeMap<usize, Added> = BTreeMap::new();
    let nothing = Added::default();
    let mut direct_wanted = !pass
        .nodes()
        .any(|(_, node)| node.reach == Reach::Direct && count_of(node, request.service) > 0);
    let mut refused = Refusals::new(request.constraints.len());
    let mut feasible = Vec::with_capacity(nodes);
    for (index, node) in pass.nodes() {
        match judge(node, &nothing, request, direct_wanted) {
            Ok(key) => feasible.push(Reverse((key, pass.rank(index), index))),
            Err(reason) => refused.count(reason),
        }
    }
    let mut candidates = BinaryHeap::from(feasible);
    let mut chosen = Vec::with_capacity(request.count as usize);
    for placed in 0..request.count {
        let Some((index, node)) = candidates
            .pop()
            .and_then(|Reverse((_, _, index))| Some((index, pass.node(index)?)))
        else {
            return Err(refused.explain(placed, nodes, request));
        };
        let on_node = added.entry(index).or_default();
        let host_ports: Vec<u16> = free_ports(node, on_node, request)
            .take(request.ports)
            .collect();
        on_node.replicas += 1;
        on_node.ports.extend(host_ports.iter().copied());
        chosen.push((index, host_ports));
        if direct_wanted && node.reach == Reach::Direct {
            // Every relayed node's rank changes: judge them all again.
            direct_wanted = false;
            let mut rejudged = Vec::with_capacity(candidates.len() + 1);
            for Reverse((_, rank, other)) in candidates.drain() {
                let Some(other_node) = pass.node(other) else {
                    continue;
                };
                let other_added = added.get(&other).unwrap_or(&nothing);
                if let Ok(key) = judge(other_node, other_added, request, direct_wanted) {
                    rejudged.push(Reverse((key, rank, other)));
                }
            }
            candidates = BinaryHeap::from(rejudged);
        }
        let on_node = added.get(&index).unwrap_or(&nothing);
        match judge(node, on_node, request, direct_wanted) {
            Ok(key) => candidates.push(Reverse((key, pass.rank(index), index))),
            Err(reason) => refused.count(reason),
        }
    }
    Ok(chosen)
}

/// Each node's place in the order of names (nodes of one name in the order
/// they come): the rank's last tie-break as a number, so that the heap
/// compares no strings. Nodes that already come in name order (as the
/// registry lists them) cost one comparison each.
fn name_ranks(nodes: &[NodeView<'_>]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    if !nodes.windows(2).all(|pair| pair[0].name <= pair[1].name) {
        order.sort_by(|&a, &b| nodes[a].name.cmp(&nodes[b].name));
    }
    let mut ranks = vec![0; nodes.len()];
    for (rank, index) in order.into_iter().enumerate() {
        ranks[index] = rank as u32;
    }
    ranks
}

/// The rank of `node` for one more replica (lower is better, see the module
/// doc), or the first reason it cannot take one.
fn judge(
    node: &NodeView<'_>,
    added: &Added,
    request: &Request<'_>,
    direct_wanted: bool,
) -> Result<(u32, bool, u64), Refused> {
    if !node.online {
        return Err(Refused::Offline);
    }
    if node.drained {
        return Err(Refused::Drained);
    }
    if let Some(failed) = request.constraints.iter().position(|constraint| {
        !constraint.holds(node.labels.get(&constraint.key).map(String::as_str))
    }) {
        return Err(Refused::Constraint(failed));
    }
    let replicas = u64::from(added.replicas);
    let allocated = node.allocated.plus(Resources {
        cpu_millis: request.resources.cpu_millis.saturating_mul(replicas),
        memory: request.resources.memory.saturating_mul(replicas),
    });
    let after = allocated.plus(request.resources);
    if after.cpu_millis > node.capacity.cpu_millis {
        return Err(Refused::Cpu);
    }
    if !after.fits_within(node.capacity) {
        return Err(Refused::Memory);
    }
    if !enough_ports(node, added, request) {
        return Err(Refused::Ports);
    }
    Ok((
        count_of(node, request.service) + added.replicas,
        direct_wanted && node.reach == Reach::Relayed,
        load_per_million(allocated, node.capacity),
    ))
}

/// Whether the node has the request's host ports free: at once when the
/// range is larger than every port taken there could fill, else by walking
/// the free ones.
fn enough_ports(node: &NodeView<'_>, added: &Added, request: &Request<'_>) -> bool {
    let range = usize::from(*request.port_range.end())
        .checked_sub(usize::from(*request.port_range.start()))
        .map_or(0, |span| span + 1);
    let taken = node.ports_in_use.len() + added.ports.len();
    taken.saturating_add(request.ports) <= range
        || free_ports(node, added, request).take(request.ports).count() == request.ports
}

/// The node's free host ports in the request's range, lowest first: one
/// walk beside the node's taken ports, not a set look-up per port.
fn free_ports<'a>(
    node: &'a NodeView<'_>,
    added: &'a Added,
    request: &Request<'_>,
) -> impl Iterator<Item = u16> + 'a {
    let mut taken = node
        .ports_in_use
        .range(request.port_range.clone())
        .copied()
        .peekable();
    request.port_range.clone().filter(move |port| {
        while taken.next_if(|used| used < port).is_some() {}
        taken.peek() != Some(port) && !added.ports.contains(port)
    })
}

/// What one request has put on one node so far.
#[derive(Debug, Default)]
struct Added {
    replicas: u32,
    ports: Vec<u16>,
}

/// Why a node was refused, cheaply: a constraint by its index.
#[derive(Debug, Clone, Copy)]
enum Refused {
    Offline,
    Drained,
    Constraint(usize),
    Cpu,
    Memory,
    Ports,
}

/// Refusals counted while looking for a node.
struct Refusals {
    fixed: [usize; 5],
    constraints: Vec<usize>,
}

impl Refusals {
    fn new(constraints: usize) -> Refusals {
        Refusals {
            fixed: [0; 5],
            constraints: vec![0; constraints],
        }
    }

    fn count(&mut self, reason: Refused) {
        let slot = match reason {
            Refused::Constraint(index) => {
                if let Some(count) = self.constraints.get_mut(index) {
                    *count += 1;
                }
                return;
            }
            Refused::Offline => 0,
            Refused::Drained => 1,
            Refused::Cpu => 2,
            Refused::Memory => 3,
            Refused::Ports => 4,
        };
        if let Some(count) = self.fixed.get_mut(slot) {
            *count += 1;
        }
    }

    fn explain(&self, placed: u32, nodes: usize, request: &Request<'_>) -> Unplaceable {
        let constraints = request.constraints;
        let fixed = [
            Infeasible::Offline,
            Infeasible::Drained,
            Infeasible::Cpu,
            Infeasible::Memory,
            Infeasible::Ports,
        ];
        let mut reasons: BTreeMap<Infeasible, usize> = fixed
            .into_iter()
            .zip(self.fixed)
            .filter(|(_, count)| *count > 0)
            .collect();
        for (constraint, count) in constraints.iter().zip(&self.constraints) {
            if *count > 0 {
                reasons.insert(Infeasible::Constraint(constraint.to_string()), *count);
            }
        }
        Unplaceable {
            placed,
            nodes,
            reasons,
            needs: request.resources,
        }
    }
}

fn count_of(node: &NodeView<'_>, service: &str) -> u32 {
    node.replicas.get(service).copied().unwrap_or(0)
}

/// The larger of CPU and memory use as a share of capacity, in millionths.
fn load_per_million(used: Resources, capacity: Resources) -> u64 {
    let share = |used: u64, capacity: u64| match (capacity, used.checked_mul(1_000_000)) {
        (0, _) => 1_000_000,
        // The same quotient in 64 bits, much cheaper, whenever it fits.
        (_, Some(scaled)) => scaled / capacity,
        (_, None) => (u128::from(used) * 1_000_000 / u128::from(capacity)) as u64,
    };
    share(used.cpu_millis, capacity.cpu_millis).max(share(used.memory, capacity.memory))
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
