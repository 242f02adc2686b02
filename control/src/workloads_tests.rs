//! Deploy, scale, rm and converge over a snapshot.

use super::*;
use std::collections::BTreeSet;

const GIB: u64 = 1 << 30;

fn facts(name: &str, reach: Reach) -> NodeFacts {
    NodeFacts {
        name: name.to_owned(),
        online: true,
        drained: false,
        leaving: false,
        lost: false,
        labels: BTreeMap::from([("node".to_owned(), name.to_owned())]),
        capacity: Resources {
            cpu_millis: 2000,
            memory: 4 * GIB,
        },
        reach,
    }
}

fn spec(replicas: u32) -> ServiceSpec {
    ServiceSpec {
        replicas,
        ports: vec![8080],
        command: vec!["httpd".to_owned(), "-f".to_owned()],
        ..ServiceSpec::new("web", "local/busybox:1")
    }
}

/// A store in memory: applies changes as the real one commits them, and
/// keeps the views as the cluster does.
struct World {
    services: Vec<ServiceRecord>,
    views: Views,
    draining: Draining,
    delays: UpdateDelays,
}

impl World {
    fn new() -> World {
        let nodes = vec![facts("pi", Reach::Relayed), facts("vm", Reach::Direct)];
        World {
            services: Vec::new(),
            views: Views::new(nodes, &[], Vec::new(), BTreeMap::new()),
            draining: Draining::default(),
            delays: UpdateDelays::default(),
        }
    }

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

    fn replicas(&self) -> Vec<&ReplicaRecord> {
        self.views.replicas().collect()
    }

    fn apply(&mut self, change: WorkloadChange) {
        self.views.apply(&change);
        if let Some(name) = &change.removed_service {
            self.services.retain(|s| &s.spec.name != name);
        }
        for service in change.services {
            self.services.retain(|s| s.spec.name != service.spec.name);
            self.services.push(service);
        }
    }

    fn all_healthy(&mut self) {
        let ids: Vec<ReplicaId> = self.views.replicas().map(|r| r.id.clone()).collect();
        for id in &ids {
            self.views.set_health(id, Some(true));
        }
    }

    fn on(&self, node: &str) -> usize {
        self.views.replicas().filter(|r| r.node == node).count()
    }
}

fn change_nodes(world: &World) -> Vec<&str> {
    world.views.replicas().map(|r| r.node.as_str()).collect()
}

#[test]
fn a_deploy_places_every_replica_across_direct_and_relayed_nodes() {
    let mut world = World::new();
    let change = deploy(&world.snapshot(), spec(3)).unwrap();
    let ids: Vec<&str> = change.placed.iter().map(|r| r.id.0.as_str()).collect();
    assert_eq!(ids, vec!["web-1", "web-2", "web-3"]);
    assert_eq!(change.services[0].generation, 1);
    assert_eq!(change.services[0].next_replica, 4);
    world.apply(change);
    // The direct node first, then spread; the tie goes by name.
    assert_eq!(change_nodes(&world), vec!["vm", "pi", "pi"]);
    let ports_on_pi: BTreeSet<u16> = world
        .replicas()
        .into_iter()
        .filter(|r| r.node == "pi")
        .map(|r| r.host_ports[0])
        .collect();
    assert_eq!(ports_on_pi.len(), 2, "host ports never collide on a node");
    // The same spec again: nothing to do.
    let again = deploy(&world.snapshot(), spec(3)).unwrap();
    assert!(again.placed.is_empty() && again.removed.is_empty());
    assert_eq!(again.services[0].generation, 1);
}

#[test]
fn a_changed_spec_is_a_new_generation_rolled_out_replica_by_replica() {
    let mut world = World::new();
    world.apply(deploy(&world.snapshot(), spec(2)).unwrap());
    world.all_healthy();
    let changed = ServiceSpec {
        env: vec![("VERSION".to_owned(), "2".to_owned())],
        ..spec(2)
    };
    let change = deploy(&world.snapshot(), changed).unwrap();
    assert_eq!(change.services[0].generation, 2);
    assert_eq!(
        (change.placed.len(), change.removed.len()),
        (1, 0),
        "a surge of one, nothing removed yet"
    );
    world.apply(change);
    for _ in 0..6 {
        world.all_healthy();
        let step = converge(&world.snapshot());
        world.apply(step);
    }
    assert!(world.replicas().iter().all(|r| r.generation == 2));
    assert_eq!(world.replicas().len(), 2);
}

#[test]
fn scale_and_rm_change_only_what_they_say() {
    let mut world = World::new();
    world.apply(deploy(&world.snapshot(), spec(3)).unwrap());
    world.all_healthy();
    let down = scale(&world.snapshot(), "web", 1).unwrap();
    assert_eq!((down.placed.len(), down.removed.len()), (0, 2));
    assert_eq!(
        down.services[0].generation, 1,
        "scaling is not a new generation"
    );
    world.apply(down);
    let up = scale(&world.snapshot(), "web", 4).unwrap();
    assert_eq!(up.placed.len(), 3);
    world.apply(up);
    let removed = remove(&world.snapshot(), "web").unwrap();
    assert_eq!(removed.removed.len(), 4);
    world.apply(removed);
    assert!(world.services.is_empty() && world.replicas().is_empty());
}

#[test]
fn bad_commands_are_refused_with_one_line() {
    let mut world = World::new();
    let cases: Vec<(Result<WorkloadChange, WorkloadError>, &str)> = vec![
        (
            deploy(
                &world.snapshot(),
                ServiceSpec {
                    name: "Web!".into(),
                    ..spec(1)
                },
            ),
            "invalid service name",
        ),
        (
            deploy(
                &world.snapshot(),
                ServiceSpec {
                    memory: Some(64 * GIB),
                    ..spec(1)
                },
            ),
            "more than any node has (2.0 cores and 4.0 GiB at most)",
        ),
        (
            deploy(
                &world.snapshot(),
                ServiceSpec {
                    memory: Some(3 * GIB),
                    ..spec(3)
                },
            ),
            "cannot place replica 3 of web: 2 nodes: 2 lack 3.0 GiB memory",
        ),
        (
            scale(&world.snapshot(), "nope", 2),
            "no service is called \"nope\"",
        ),
        (
            remove(&world.snapshot(), "nope"),
            "no service is called \"nope\"",
        ),
    ];
    for (result, expected) in cases {
        let error = result.unwrap_err().to_string();
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
    }
    world.apply(deploy(&world.snapshot(), spec(1)).unwrap());
    assert!(scale(&world.snapshot(), "web", 5000)
        .unwrap_err()
        .to_string()
        .contains("1000"));
}

#[test]
fn replicas_move_off_a_leaving_node_and_off_one_that_is_gone() {
    let mut world = World::new();
    world.views.set_node(facts("vps", Reach::Direct));
    world.apply(deploy(&world.snapshot(), spec(3)).unwrap());
    world.all_healthy();
    assert_eq!(world.on("pi"), 1);
    world.views.set_node(NodeFacts {
        leaving: true,
        ..facts("pi", Reach::Relayed)
    });
    for _ in 0..4 {
        world.apply(converge(&world.snapshot()));
        world.all_healthy();
    }
    assert_eq!((world.on("pi"), world.replicas().len()), (0, 3));
    // A node removed outright: its replicas are placed elsewhere.
    world.views.remove_node("vps");
    for _ in 0..4 {
        world.apply(converge(&world.snapshot()));
        world.all_healthy();
    }
    assert_eq!(
        (world.on("vps"), world.on("vm"), world.replicas().len()),
        (0, 3, 3)
    );
}

#[test]
fn a_host_and_path_another_service_answers_is_refused() {
    let mut world = World::new();
    let routed = |name: &str, hosts: &[&str], path: Option<&str>| ServiceSpec {
        name: name.to_owned(),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        path: path.map(str::to_owned),
        ..spec(1)
    };
    world.apply(deploy(&world.snapshot(), routed("web", &["example.com"], None)).unwrap());
    let error = deploy(&world.snapshot(), routed("site", &["EXAMPLE.com"], None)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "EXAMPLE.com is routed to web already (see `warren routes`)"
    );
    // Another path of the host, or the same service again, is fine.
    world.apply(
        deploy(
            &world.snapshot(),
            routed("api", &["example.com"], Some("/api")),
        )
        .unwrap(),
    );
    let error = deploy(
        &world.snapshot(),
        routed("v1", &["example.com"], Some("/api")),
    )
    .unwrap_err();
    assert!(error
        .to_string()
        .starts_with("example.com/api is routed to api"));
    deploy(
        &world.snapshot(),
        routed("web", &["example.com", "www.example.com"], None),
    )
    .unwrap();
}
