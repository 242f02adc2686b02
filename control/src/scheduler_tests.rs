//! The scheduler's rules by example, and its safety and spread as
//! properties.

use super::*;
use proptest::prelude::*;
use std::borrow::Cow;

const GIB: u64 = 1 << 30;

fn node(name: &str, reach: Reach) -> NodeView<'static> {
    NodeView {
        name: Cow::Owned(name.to_owned()),
        online: true,
        drained: false,
        labels: Cow::Owned(BTreeMap::from([
            ("arch".to_owned(), "x86_64".to_owned()),
            ("node".to_owned(), name.to_owned()),
        ])),
        capacity: Resources {
            cpu_millis: 4000,
            memory: 8 * GIB,
        },
        allocated: Resources::default(),
        ports_in_use: BTreeSet::new(),
        replicas: BTreeMap::new(),
        reach,
    }
}

fn request(count: u32, constraints: &[Constraint]) -> Request<'_> {
    Request {
        service: "web",
        count,
        resources: Resources {
            cpu_millis: 100,
            memory: 64 << 20,
        },
        ports: 1,
        constraints,
        port_range: 20000..=29999,
    }
}

/// One request on its own: a pass over `nodes` that places only it.
fn place(
    nodes: &[NodeView<'static>],
    request: &Request<'_>,
) -> Result<Vec<Placement>, Unplaceable> {
    Pass::new(nodes).place(request)
}

fn nodes_of(placements: &[Placement]) -> Vec<&str> {
    placements.iter().map(|p| p.node.as_str()).collect()
}

#[test]
fn replicas_spread_and_a_direct_node_takes_one_before_relayed_ones_take_all() {
    let nodes = [
        node("pi", Reach::Relayed),
        node("qi", Reach::Relayed),
        node("vm", Reach::Direct),
    ];
    let placed = place(&nodes, &request(3, &[])).unwrap();
    // The direct node first; then spread over the relayed ones by name.
    assert_eq!(nodes_of(&placed), vec!["vm", "pi", "qi"]);
    assert!(placed.iter().all(|p| p.host_ports == vec![20000]));
    let more = place(&nodes, &request(4, &[])).unwrap();
    assert_eq!(nodes_of(&more), vec!["vm", "pi", "qi", "pi"]);
}

#[test]
fn after_spread_the_least_loaded_node_wins_and_ports_do_not_collide() {
    let mut busy = node("a", Reach::Direct);
    busy.allocated = Resources {
        cpu_millis: 3000,
        memory: GIB,
    };
    busy.ports_in_use = BTreeSet::from([20000, 20001]);
    let idle = node("b", Reach::Direct);
    let placed = place(&[busy, idle], &request(3, &[])).unwrap();
    assert_eq!(nodes_of(&placed), vec!["b", "a", "b"]);
    assert_eq!(placed[1].host_ports, vec![20002]);
    assert_eq!(
        (placed[0].host_ports.clone(), placed[2].host_ports.clone()),
        (vec![20000], vec![20001])
    );
}

#[test]
fn constraints_and_labels_decide_where_replicas_may_go() {
    let mut home = node("pi", Reach::Relayed);
    home.labels
        .to_mut()
        .insert("zone".to_owned(), "home".to_owned());
    let vps = node("vps", Reach::Direct);
    let at_home: Vec<Constraint> = vec!["zone==home".parse().unwrap()];
    let placed = place(&[home.clone(), vps.clone()], &request(2, &at_home)).unwrap();
    assert_eq!(nodes_of(&placed), vec!["pi", "pi"]);
    let not_home: Vec<Constraint> = vec!["zone!=home".parse().unwrap()];
    let placed = place(&[home, vps], &request(1, &not_home)).unwrap();
    assert_eq!(nodes_of(&placed), vec!["vps"]);
}

#[test]
fn when_nothing_fits_the_reasons_are_counted_per_node() {
    let mut drained = node("a", Reach::Direct);
    drained.drained = true;
    let mut small = node("b", Reach::Direct);
    small.capacity.memory = GIB;
    let mut smaller = node("c", Reach::Relayed);
    smaller.capacity.memory = GIB / 2;
    let big = Request {
        resources: Resources {
            cpu_millis: 100,
            memory: 2 * GIB,
        },
        ..request(1, &[])
    };
    let error = place(&[drained, small, smaller], &big).unwrap_err();
    assert_eq!(
        error.to_string(),
        "3 nodes: 1 drained, 2 lack 2.0 GiB memory"
    );
    assert_eq!(error.placed, 0);
    let mut offline = node("d", Reach::Direct);
    offline.online = false;
    let gpu: Vec<Constraint> = vec!["gpu==yes".parse().unwrap()];
    let error = place(&[offline, node("e", Reach::Direct)], &request(1, &gpu)).unwrap_err();
    assert_eq!(error.to_string(), "2 nodes: 1 offline, 1 fail gpu==yes");
    assert_eq!(
        place(&[], &request(1, &[])).unwrap_err().to_string(),
        "no nodes have joined"
    );
}

#[test]
fn a_request_that_runs_out_midway_says_how_far_it_got() {
    let mut tiny = node("a", Reach::Direct);
    tiny.capacity.cpu_millis = 250;
    let error = place(&[tiny], &request(3, &[])).unwrap_err();
    assert_eq!(
        (error.placed, error.to_string()),
        (2, "1 node: 1 lack 0.1 cores".to_owned())
    );
    let mut full = node("b", Reach::Direct);
    full.ports_in_use = (20000..=20009).collect();
    let narrow = Request {
        port_range: 20000..=20010,
        ..request(2, &[])
    };
    let error = place(&[full], &narrow).unwrap_err();
    assert_eq!(
        (error.placed, error.to_string()),
        (1, "1 node: 1 have no free host port".to_owned())
    );
}

fn arbitrary_node(index: usize) -> impl Strategy<Value = NodeView<'static>> {
    (
        any::<bool>(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.5),
        prop_oneof![Just("home"), Just("vps")],
        0u64..4000,
        0u64..8,
        0u64..4000,
        0u64..8,
        0u32..4,
    )
        .prop_map(
            move |(
                relayed,
                drained,
                online,
                zone,
                cpu,
                memory,
                used_cpu,
                used_memory,
                existing,
            )| {
                let mut node = node(
                    &format!("n{index:02}"),
                    if relayed {
                        Reach::Relayed
                    } else {
                        Reach::Direct
                    },
                );
                node.online = online || index == 0;
                node.drained = drained;
                node.labels
                    .to_mut()
                    .insert("zone".to_owned(), zone.to_owned());
                node.capacity = Resources {
                    cpu_millis: cpu,
                    memory: memory * GIB,
                };
                node.allocated = Resources {
                    cpu_millis: used_cpu.min(cpu),
                    memory: (used_memory * GIB).min(memory * GIB),
                };
                if existing > 0 {
                    node.replicas.insert(Cow::Borrowed("web"), existing);
                }
                node
            },
        )
}

fn arbitrary_nodes() -> impl Strategy<Value = Vec<NodeView<'static>>> {
    (0usize..12).prop_flat_map(|n| (0..n).map(arbitrary_node).collect::<Vec<_>>())
}

proptest! {
    /// Nothing is ever placed over capacity or on a node that is offline,
    /// drained, or fails a constraint; host ports never collide on a node.
    #[test]
    fn placements_are_always_feasible(
        nodes in arbitrary_nodes(),
        count in 0u32..20,
        cpu in 1u64..1500,
        memory in 1u64..4,
        home_only in any::<bool>(),
    ) {
        let constraints: Vec<Constraint> = if home_only { vec!["zone==home".parse().unwrap()] } else { Vec::new() };
        let request = Request {
            resources: Resources { cpu_millis: cpu, memory: memory * GIB / 2 },
            ..request(count, &constraints)
        };
        if let Ok(placed) = place(&nodes, &request) {
            prop_assert_eq!(placed.len(), count as usize);
            for node in &nodes {
                let here: Vec<&Placement> = placed.iter().filter(|p| p.node == node.name).collect();
                if here.is_empty() {
                    continue;
                }
                prop_assert!(node.online && !node.drained);
                prop_assert!(!home_only || node.labels.get("zone").map(String::as_str) == Some("home"));
                let n = here.len() as u64;
                prop_assert!(node.allocated.cpu_millis + n * request.resources.cpu_millis <= node.capacity.cpu_millis);
                prop_assert!(node.allocated.memory + n * request.resources.memory <= node.capacity.memory);
                let ports: BTreeSet<u16> = here.iter().flat_map(|p| p.host_ports.clone()).collect();
                prop_assert_eq!(ports.len(), here.len());
                prop_assert!(ports.iter().all(|port| request.port_range.contains(port)));
            }
        }
    }

    /// Among nodes with room to spare, replicas spread as evenly as they
    /// can: no eligible node ends with two more of the service than another.
    #[test]
    fn spread_is_maximal_when_room_is_ample(
        nodes in (1usize..10).prop_map(|n| (0..n).map(|i| node(&format!("n{i}"), if i % 3 == 0 { Reach::Direct } else { Reach::Relayed })).collect::<Vec<_>>()),
        count in 0u32..40,
    ) {
        let placed = place(&nodes, &request(count, &[])).unwrap();
        let per_node: Vec<usize> = nodes.iter().map(|n| placed.iter().filter(|p| p.node == n.name).count()).collect();
        let (min, max) = (per_node.iter().min().copied().unwrap_or(0), per_node.iter().max().copied().unwrap_or(0));
        prop_assert!(max - min <= 1, "{:?}", per_node);
        // With a direct node among them, one replica at least is direct.
        if count > 0 {
            prop_assert!(placed.iter().any(|p| p.node == "n0"));
        }
    }

    /// The answer depends on the snapshot, not on the order nodes come in.
    #[test]
    fn placement_is_deterministic_for_a_snapshot(
        nodes in arbitrary_nodes(),
        count in 0u32..10,
        rotate in 0usize..12,
    ) {
        let mut shuffled = nodes.clone();
        if !shuffled.is_empty() {
            let k = rotate % shuffled.len();
            shuffled.rotate_left(k);
            shuffled.reverse();
        }
        prop_assert_eq!(place(&nodes, &request(count, &[])), place(&shuffled, &request(count, &[])));
    }

    /// A pass that places several services one after the other, and
    /// removes replicas between them, decides each as a pass built afresh
    /// from the nodes with every replica so far counted in; its views end
    /// as those fresh ones.
    #[test]
    fn a_pass_decides_as_views_built_afresh(
        nodes in arbitrary_nodes(),
        requests in prop::collection::vec((0usize..3, 0u32..6, 1u64..1500, any::<bool>()), 0..6),
    ) {
        let services = ["web", "api", "db"];
        let constraints: Vec<Constraint> = vec!["zone==home".parse().unwrap()];
        let mut pass = Pass::new(&nodes);
        // Every replica the pass holds beyond the nodes': (node, service, cpu, ports).
        let mut held: Vec<(String, &str, u64, Vec<u16>)> = Vec::new();
        for (step, (service, count, cpu, home_only)) in requests.into_iter().enumerate() {
            let request = Request {
                service: services[service],
                resources: Resources { cpu_millis: cpu, memory: GIB / 4 },
                constraints: if home_only { &constraints } else { &[] },
                ..request(count, &[])
            };
            // Every third step first removes the oldest replica held.
            if step % 3 == 2 && !held.is_empty() {
                let (node, service, cpu, ports) = held.remove(0);
                let index = nodes.iter().position(|n| n.name == node.as_str()).unwrap();
                pass.remove(index, service, Resources { cpu_millis: cpu, memory: GIB / 4 }, &ports);
            }
            let fresh = afresh(&nodes, &held);
            prop_assert_eq!(seen(&pass), fresh.clone());
            let placed = pass.place(&request);
            prop_assert_eq!(&placed, &Pass::new(&fresh).place(&request));
            for p in placed.unwrap_or_default() {
                held.push((p.node, request.service, cpu, p.host_ports));
            }
        }
        prop_assert_eq!(seen(&pass), afresh(&nodes, &held));
    }
}

/// The nodes as `pass` sees them now.
fn seen<'a>(pass: &Pass<'a>) -> Vec<NodeView<'a>> {
    pass.nodes().map(|(_, node)| node.clone()).collect()
}

/// `nodes` with the replicas `held` counted in, built from nothing.
fn afresh(
    nodes: &[NodeView<'static>],
    held: &[(String, &str, u64, Vec<u16>)],
) -> Vec<NodeView<'static>> {
    let mut fresh = nodes.to_vec();
    for node in &mut fresh {
        for (_, service, cpu, ports) in held.iter().filter(|(name, ..)| *name == node.name) {
            node.allocated.cpu_millis += cpu;
            node.allocated.memory += GIB / 4;
            node.ports_in_use.extend(ports);
            *node
                .replicas
                .entry(Cow::Owned((*service).to_owned()))
                .or_default() += 1;
        }
    }
    fresh
}
