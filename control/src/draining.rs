//! Connection draining, decided without I/O: a replica that goes while the
//! proxy routes to it is taken out of the routes at once, and only stopped
//! once no request to it is in flight any more, or once its stop grace
//! (`warren deploy --stop-grace`) is over, whichever comes first. Its
//! container then gets SIGTERM and, a stop grace later, SIGKILL.
//!
//! [`Draining::start`] takes a replica the reconciler removed; call
//! [`Draining::poll`] with the time and which replicas have requests in
//! flight (the control plane does every 250 ms at most): it returns those
//! to stop now, whose removal the control plane then commits. A replica's
//! grace counts from the first poll that sees it. Nothing here is stored:
//! a control plane that restarts has no requests in flight, and decides
//! the removal again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use warren_proto::assignment::ReplicaId;

/// The replicas draining (see the module doc).
#[derive(Debug, Default)]
pub struct Draining {
    replicas: BTreeMap<ReplicaId, Drain>,
}

#[derive(Debug)]
struct Drain {
    /// The service, for its count of replicas stopping.
    service: String,
    grace: Duration,
    /// When the first poll saw it.
    since: Option<Instant>,
}

impl Draining {
    /// Starts draining replica `id` of `service` for up to `grace`; a
    /// replica already draining keeps its start.
    pub fn start(&mut self, id: ReplicaId, service: &str, grace: Duration) {
        self.replicas.entry(id).or_insert_with(|| Drain {
            service: service.to_owned(),
            grace,
            since: None,
        });
    }

    /// Whether replica `id` is draining.
    pub fn contains(&self, id: &ReplicaId) -> bool {
        self.replicas.contains_key(id)
    }

    /// The replicas draining.
    pub fn ids(&self) -> impl Iterator<Item = &ReplicaId> {
        self.replicas.keys()
    }

    /// How many replicas of `service` are draining.
    pub fn count_of(&self, service: &str) -> u32 {
        let count = self
            .replicas
            .values()
            .filter(|d| d.service == service)
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Forgets every replica of `service` (it was removed: its replicas
    /// stop at once).
    pub fn forget_service(&mut self, service: &str) {
        self.replicas.retain(|_, drain| drain.service != service);
    }

    /// The replicas to stop at `now`: those with no request in flight
    /// (`busy` says which have), and those whose grace is over.
    pub fn poll(&mut self, now: Instant, busy: impl Fn(&ReplicaId) -> bool) -> Vec<ReplicaId> {
        let mut done = Vec::new();
        for (id, drain) in &mut self.replicas {
            let since = *drain.since.get_or_insert(now);
            if !busy(id) || now >= since + drain.grace {
                done.push(id.clone());
            }
        }
        for id in &done {
            self.replicas.remove(id);
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> ReplicaId {
        ReplicaId(format!("web-{n}"))
    }

    #[test]
    fn a_replica_stops_once_idle_or_once_its_grace_is_over() {
        let mut draining = Draining::default();
        let start = Instant::now();
        let grace = Duration::from_secs(10);
        draining.start(id(1), "web", grace);
        draining.start(id(2), "web", grace);
        draining.start(id(3), "db", grace);
        assert_eq!(draining.count_of("web"), 2);
        // web-1 and db-3 have requests in flight; web-2 has none.
        let busy = |r: &ReplicaId| *r != id(2);
        assert_eq!(draining.poll(start, busy), vec![id(2)]);
        assert!(draining.contains(&id(1)));
        draining.start(id(1), "web", Duration::ZERO);
        assert_eq!(
            draining.poll(start + Duration::from_secs(9), busy),
            vec![],
            "starting again neither restarts nor shortens the grace"
        );
        assert_eq!(
            draining.poll(start + grace, busy),
            vec![id(1), id(3)],
            "the grace is over, requests or not"
        );
        assert_eq!(draining.count_of("web"), 0);
    }

    #[test]
    fn a_removed_service_stops_draining() {
        let mut draining = Draining::default();
        draining.start(id(1), "web", Duration::from_secs(10));
        draining.forget_service("web");
        assert!(!draining.contains(&id(1)));
        assert_eq!(draining.poll(Instant::now(), |_| true), vec![]);
    }
}
