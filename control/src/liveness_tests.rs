use super::*;
use proptest::prelude::*;

const REPLACE_AFTER: Duration = Duration::from_secs(2);

/// `ms` milliseconds after `start`.
fn at(start: Instant, ms: u64) -> Instant {
    start + Duration::from_millis(ms)
}

#[test]
fn a_node_is_lost_after_replace_after_and_back_when_it_connects() {
    let start = Instant::now();
    let mut nodes = Liveness::new(REPLACE_AFTER, start, []);
    let after_grace = start + STARTUP_GRACE;
    assert_eq!(nodes.connected("pi"), None, "joining is not coming back");
    assert_eq!(nodes.poll(after_grace), vec![]);
    assert_eq!(
        nodes.disconnected("pi", after_grace),
        Some(Change::Offline("pi".to_owned()))
    );
    assert_eq!(nodes.disconnected("pi", after_grace), None);
    assert_eq!(nodes.poll_timeout(), Some(after_grace + REPLACE_AFTER));
    assert_eq!(
        nodes.poll(after_grace + REPLACE_AFTER - Duration::from_millis(1)),
        vec![]
    );
    assert!(!nodes.is_lost("pi"), "offline, not yet lost");
    assert_eq!(
        nodes.poll(after_grace + REPLACE_AFTER),
        vec![Change::Lost("pi".to_owned())]
    );
    assert!(nodes.is_lost("pi"));
    assert_eq!(nodes.poll(after_grace + REPLACE_AFTER * 5), vec![], "once");
    assert_eq!(nodes.poll_timeout(), None);
    assert_eq!(nodes.connected("pi"), Some(Change::Online("pi".to_owned())));
    assert!(!nodes.is_lost("pi"));
    nodes.removed("pi");
    assert_eq!(nodes.disconnected("pi", after_grace), None, "gone");
}

#[test]
fn a_restarted_control_plane_waits_out_its_grace_before_giving_up_on_anyone() {
    let start = Instant::now();
    let mut nodes = Liveness::new(REPLACE_AFTER, start, ["pi", "vm"]);
    assert_eq!(nodes.poll_timeout(), Some(start + STARTUP_GRACE));
    assert_eq!(
        nodes.poll(start + REPLACE_AFTER),
        vec![],
        "within the grace"
    );
    // vm reconnects in time; pi does not.
    assert_eq!(nodes.connected("vm"), Some(Change::Online("vm".to_owned())));
    assert_eq!(
        nodes.poll(start + STARTUP_GRACE),
        vec![Change::Lost("pi".to_owned())]
    );
    assert!(!nodes.is_lost("vm"));
}

#[derive(Debug, Clone)]
enum Event {
    Connect(u8),
    Disconnect(u8),
    Poll,
}

fn event() -> impl Strategy<Value = (Event, u64)> {
    (
        prop_oneof![
            (0u8..3).prop_map(Event::Connect),
            (0u8..3).prop_map(Event::Disconnect),
            Just(Event::Poll),
        ],
        0u64..1500,
    )
}

/// The test's own account of a node.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Model {
    Online,
    Offline(Instant),
}

proptest! {
    /// Over any sequence of connections, disconnections and polls: a node
    /// is lost exactly when it has been offline without a break for the
    /// replace-after time and the grace is over, it is announced once,
    /// and `poll_timeout` names the moment the next one is.
    #[test]
    fn nodes_are_lost_exactly_after_replace_after_and_the_grace(
        events in proptest::collection::vec(event(), 0..60),
    ) {
        let start = Instant::now();
        let names = ["a", "b", "c"];
        let mut nodes = Liveness::new(REPLACE_AFTER, start, ["a"]);
        let mut model: BTreeMap<&str, Model> = BTreeMap::from([("a", Model::Offline(start))]);
        let mut announced: BTreeMap<&str, ()> = BTreeMap::new();
        let mut now_ms = 0;
        for (event, step) in events {
            now_ms += step;
            let now = at(start, now_ms);
            match event {
                Event::Connect(i) => {
                    let name = names[usize::from(i)];
                    let was_offline = matches!(model.get(name), Some(Model::Offline(_)));
                    prop_assert_eq!(nodes.connected(name).is_some(), was_offline);
                    model.insert(name, Model::Online);
                    announced.remove(name);
                }
                Event::Disconnect(i) => {
                    let name = names[usize::from(i)];
                    let was_online = model.get(name) == Some(&Model::Online);
                    prop_assert_eq!(nodes.disconnected(name, now).is_some(), was_online);
                    if was_online {
                        model.insert(name, Model::Offline(now));
                    }
                }
                Event::Poll => {
                    let timeout = nodes.poll_timeout();
                    let lost = nodes.poll(now);
                    prop_assert_eq!(lost.is_empty(), timeout.is_none_or(|t| now < t));
                    for change in lost {
                        let Change::Lost(name) = change else {
                            return Err(TestCaseError::fail("poll says only who is lost"));
                        };
                        let name = names.into_iter().find(|n| *n == name).unwrap();
                        prop_assert!(announced.insert(name, ()).is_none(), "announced once");
                    }
                    for name in names {
                        let due = matches!(model.get(name), Some(Model::Offline(since))
                            if now >= *since + REPLACE_AFTER && now >= start + STARTUP_GRACE);
                        prop_assert_eq!(nodes.is_lost(name), due, "{}", name);
                    }
                }
            }
        }
    }
}
