//! The kept views always equal views built from scratch, whatever
//! sequence of commands, commits and node changes came before.

use super::*;
use crate::scheduler::Reach;
use crate::workloads::{converge, deploy, remove, scale, Snapshot, DEFAULT_HOST_PORTS};
use proptest::prelude::*;
use warren_proto::ServiceSpec;

const GIB: u64 = 1 << 30;
const SERVICES: [&str; 3] = ["web", "api", "db"];
const NODES: [&str; 4] = ["a", "b", "c", "d"];

/// One thing that happens to the cluster.
#[derive(Debug, Clone)]
enum Event {
    /// `warren deploy` of a service, with a reservation that may change.
    Deploy {
        service: usize,
        replicas: u32,
        cpu: u64,
    },
    /// `warren scale`.
    Scale { service: usize, replicas: u32 },
    /// `warren rm`.
    Remove { service: usize },
    /// A node joined, reported, connected, left, was labelled or leaves.
    Node(NodeEvent),
    /// A node was removed.
    Gone { node: usize },
    /// Every replica reported healthy, or unhealthy, or its health
    /// forgotten (`None`: its node went offline).
    Health { health: Option<bool> },
    /// What converges with no command behind it.
    Converge,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0..3usize, 0..5u32, prop::sample::select(vec![100u64, 700])).prop_map(
            |(service, replicas, cpu)| Event::Deploy {
                service,
                replicas,
                cpu
            }
        ),
        (0..3usize, 0..6u32).prop_map(|(service, replicas)| Event::Scale { service, replicas }),
        (0..3usize).prop_map(|service| Event::Remove { service }),
        (
            0..4usize,
            any::<bool>(),
            prop::bool::weighted(0.2),
            any::<bool>(),
            any::<bool>(),
            0..3000u64
        )
            .prop_map(
                |(node, online, leaving, lost, zone, cpu)| Event::Node(NodeEvent {
                    node,
                    online,
                    leaving,
                    lost,
                    zone,
                    cpu
                })
            ),
        (0..4usize).prop_map(|node| Event::Gone { node }),
        proptest::option::of(any::<bool>()).prop_map(|health| Event::Health { health }),
        Just(Event::Converge),
    ]
}

/// What a node event says of the node.
#[derive(Debug, Clone)]
struct NodeEvent {
    node: usize,
    online: bool,
    leaving: bool,
    /// Lost, when offline.
    lost: bool,
    zone: bool,
    cpu: u64,
}

fn facts(event: &NodeEvent) -> NodeFacts {
    let NodeEvent {
        node,
        online,
        leaving,
        lost,
        zone,
        cpu,
    } = *event;
    let name = NODES[node].to_owned();
    let mut labels = BTreeMap::from([("node".to_owned(), name.clone())]);
    if zone {
        labels.insert("zone".to_owned(), "home".to_owned());
    }
    NodeFacts {
        name,
        online,
        drained: false,
        leaving,
        lost: lost && !online,
        labels,
        capacity: Resources {
            cpu_millis: cpu,
            memory: 4 * GIB,
        },
        reach: if node % 2 == 0 {
            Reach::Direct
        } else {
            Reach::Relayed
        },
    }
}

/// The cluster as plain records, changed as the store commits, beside the
/// views kept up to date.
struct Cluster {
    services: Vec<ServiceRecord>,
    replicas: Vec<ReplicaRecord>,
    nodes: BTreeMap<String, NodeFacts>,
    health: BTreeMap<ReplicaId, bool>,
    views: Views,
    draining: crate::draining::Draining,
    delays: crate::update_delay::UpdateDelays,
}

impl Cluster {
    fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            services: &self.services,
            views: &self.views,
            port_range: &DEFAULT_HOST_PORTS,
            draining: &self.draining,
            delays: &self.delays,
            now: 1000,
        }
    }

    fn commit(&mut self, change: WorkloadChange) {
        self.views.apply(&change);
        if let Some(name) = &change.removed_service {
            self.services.retain(|s| &s.spec.name != name);
        }
        for service in change.services {
            self.services.retain(|s| s.spec.name != service.spec.name);
            self.services.push(service);
        }
        self.replicas.retain(|r| !change.removed.contains(&r.id));
        for id in &change.removed {
            self.health.remove(id);
        }
        self.replicas.extend(change.placed);
    }

    fn handle(&mut self, event: Event) {
        let change = match event {
            Event::Deploy {
                service,
                replicas,
                cpu,
            } => {
                let spec = ServiceSpec {
                    replicas,
                    ports: vec![8080],
                    cpu_millis: Some(cpu as u32),
                    ..ServiceSpec::new(SERVICES[service], "local/busybox:1")
                };
                deploy(&self.snapshot(), spec).ok()
            }
            Event::Scale { service, replicas } => {
                scale(&self.snapshot(), SERVICES[service], replicas).ok()
            }
            Event::Remove { service } => remove(&self.snapshot(), SERVICES[service]).ok(),
            Event::Node(node) => {
                let facts = facts(&node);
                self.nodes.insert(facts.name.clone(), facts.clone());
                self.views.set_node(facts);
                None
            }
            Event::Gone { node } => {
                self.nodes.remove(NODES[node]);
                self.views.remove_node(NODES[node]);
                None
            }
            Event::Health { health } => {
                for replica in &self.replicas {
                    self.views.set_health(&replica.id, health);
                    match health {
                        Some(healthy) => self.health.insert(replica.id.clone(), healthy),
                        None => self.health.remove(&replica.id),
                    };
                }
                None
            }
            Event::Converge => Some(converge(&self.snapshot())),
        };
        if let Some(change) = change {
            self.commit(change);
        }
    }

    fn afresh(&self) -> Views {
        Views::new(
            self.nodes.values().cloned().collect(),
            &self.services,
            self.replicas.clone(),
            self.health.clone(),
        )
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// After every deploy, scale, rm, converge and node change, the kept
    /// views are the ones built from scratch, and every decision over them
    /// is the one over views built from scratch.
    #[test]
    fn kept_views_equal_views_built_afresh(events in prop::collection::vec(event(), 1..40)) {
        let online = |node, zone| NodeEvent { node, online: true, leaving: false, lost: false, zone, cpu: 2000 };
        let start = [facts(&online(0, true)), facts(&online(1, false))];
        let mut cluster = Cluster {
            services: Vec::new(),
            replicas: Vec::new(),
            nodes: start.iter().map(|f| (f.name.clone(), f.clone())).collect(),
            health: BTreeMap::new(),
            views: Views::new(start.to_vec(), &[], Vec::new(), BTreeMap::new()),
            draining: Default::default(),
            delays: Default::default(),
        };
        for event in events {
            let fresh = cluster.afresh();
            let kept = converge(&cluster.snapshot());
            let afresh = converge(&Snapshot { views: &fresh, ..cluster.snapshot() });
            prop_assert_eq!(kept, afresh);
            cluster.handle(event);
            prop_assert_eq!(&cluster.views, &cluster.afresh());
        }
    }
}
