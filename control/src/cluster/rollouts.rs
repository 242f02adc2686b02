//! Each service's generations as they roll out: a new generation is
//! recorded (and announced) when it is committed, and completed once every
//! replica of it is healthy and no older one is left. One that has not
//! completed by its healthy deadline is rolled back (a new generation with
//! the spec of the last one that completed) or, without auto-rollback or
//! when it was a rollback itself, failed. `warren history` lists them and
//! `warren rollback` deploys an earlier one's spec again.

use super::ClusterState;
use crate::events::What;
use crate::store::{GenerationRecord, Outcome, StoreError};
use warren_proto::ServiceSpec;

/// How `warren history` notes a generation made by an automatic rollback
/// (which is not rolled back again when it misses its own deadline).
const AUTOMATIC_ROLLBACK: &str = "automatic rollback";

/// Why a rollback changed nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RollbackError {
    /// No service has the name.
    #[error("no service is called {0:?} (see `warren services`)")]
    Unknown(String),
    /// The generation asked for is not stored (or there is none before the
    /// current one).
    #[error(
        "{service} has no generation {generation} to go back to (see `warren history {service}`)"
    )]
    NoGeneration {
        /// The service.
        service: String,
        /// The generation asked for.
        generation: u64,
    },
    /// The service runs that spec already.
    #[error("{service} already runs the spec of generation {generation}")]
    Same {
        /// The service.
        service: String,
        /// The generation asked for.
        generation: u64,
    },
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ClusterState {
    /// The generations of `service`, oldest first.
    pub fn history(&self, service: &str) -> Result<Vec<GenerationRecord>, StoreError> {
        self.config.store.generations(service)
    }

    /// The spec a rollback of `service` deploys: generation `to`'s (the one
    /// before the current by default) at the current replica count and
    /// update policy, with the note `warren history` shows.
    pub fn rollback_spec(
        &self,
        service: &str,
        to: Option<u64>,
    ) -> Result<(ServiceSpec, String), RollbackError> {
        let current = self
            .workloads
            .service(service)
            .ok_or_else(|| RollbackError::Unknown(service.to_owned()))?;
        let generation = to.unwrap_or(current.generation.saturating_sub(1));
        let missing = || RollbackError::NoGeneration {
            service: service.to_owned(),
            generation,
        };
        if generation == 0 {
            return Err(missing());
        }
        let target = self
            .history(service)?
            .into_iter()
            .find(|g| g.generation == generation)
            .ok_or_else(missing)?;
        let spec = again(&current.spec, target.spec);
        if spec == current.spec {
            return Err(RollbackError::Same {
                service: service.to_owned(),
                generation,
            });
        }
        Ok((spec, format!("rollback to {generation}")))
    }

    /// Notes the services whose generation a commit made new (with when
    /// each was deployed): their rollouts start.
    pub(super) fn rollouts_started(&mut self, started: Vec<(String, u64, u64)>) {
        let mut happened = Vec::new();
        for (service, generation, deployed) in started {
            tracing::info!(%service, generation, "rolling out");
            self.workloads
                .rolling_out
                .insert(service.clone(), (generation, deployed));
            happened.push(What::RolloutStarted {
                service,
                generation,
            });
        }
        self.emit(happened);
    }

    /// Completes the rollouts whose generation now serves alone, at `now`.
    pub(super) fn check_rollouts(&mut self, now: u64) {
        let done: Vec<(String, u64)> = self
            .workloads
            .rolling_out
            .iter()
            .filter(|(service, (generation, _))| self.rolled_out(service, *generation))
            .map(|(service, (generation, _))| (service.clone(), *generation))
            .collect();
        let mut happened = Vec::new();
        for (service, generation) in done {
            if let Err(error) =
                self.config
                    .store
                    .generation_finished(&service, generation, Outcome::Completed, now)
            {
                tracing::error!(%error, %service, "storing a completed rollout");
                continue;
            }
            tracing::info!(%service, generation, "rolled out");
            self.workloads.rolling_out.remove(&service);
            happened.push(What::RolloutCompleted {
                service,
                generation,
            });
        }
        self.emit(happened);
    }

    /// Rolls back (or fails) the rollouts past their healthy deadline at
    /// `now`, unix seconds.
    pub(super) fn check_deadlines(&mut self, now: u64) {
        let overdue: Vec<(String, u64)> = self
            .workloads
            .rolling_out
            .iter()
            .filter(|(service, (_, started))| {
                self.workloads.service(service).is_some_and(|s| {
                    now >= started + u64::from(s.spec.update.healthy_deadline_secs)
                })
            })
            .map(|(service, (generation, _))| (service.clone(), *generation))
            .collect();
        for (service, generation) in overdue {
            self.workloads.rolling_out.remove(&service);
            if let Err(error) = self.give_up_rollout(&service, generation, now) {
                tracing::error!(%error, %service, generation, "ending a rollout past its deadline");
            }
        }
    }

    /// Ends the rollout of `generation` of `service`, past its deadline.
    fn give_up_rollout(
        &mut self,
        service: &str,
        generation: u64,
        now: u64,
    ) -> Result<(), StoreError> {
        let Some(current) = self.workloads.service(service).cloned() else {
            return Ok(());
        };
        let history = self.history(service)?;
        let was_rollback = history
            .iter()
            .find(|g| g.generation == generation)
            .and_then(|g| g.note.as_deref())
            .is_some_and(|note| note.starts_with(AUTOMATIC_ROLLBACK));
        let target = history
            .iter()
            .rev()
            .find(|g| g.generation < generation && g.outcome == Outcome::Completed);
        let rollback = match target {
            Some(target) if current.spec.update.auto_rollback && !was_rollback => {
                Some((target.generation, again(&current.spec, target.spec.clone())))
            }
            _ => None,
        };
        // A rollback that cannot be placed now (nodes offline, say) is not
        // one: the rollout failed.
        let rollback = rollback.filter(|(_, spec)| match self.deploy_targets(spec.clone(), now) {
            Ok(_) => true,
            Err(error) => {
                tracing::error!(%error, %service, "the automatic rollback cannot be placed");
                false
            }
        });
        let Some((to, spec)) = rollback else {
            tracing::warn!(%service, generation, "rollout missed its healthy deadline; not rolled back");
            self.config
                .store
                .generation_finished(service, generation, Outcome::Failed, now)?;
            self.emit(vec![What::RolloutFailed {
                service: service.to_owned(),
                generation,
            }]);
            return Ok(());
        };
        tracing::warn!(%service, generation, to, "rollout missed its healthy deadline; rolling back");
        self.config
            .store
            .generation_finished(service, generation, Outcome::RolledBack, now)?;
        self.emit(vec![What::RolloutRolledBack {
            service: service.to_owned(),
            generation,
            to,
        }]);
        let note = format!("{AUTOMATIC_ROLLBACK} of {generation} to {to}");
        if let Err(error) = self.deploy_noted(spec, Some(note), now) {
            tracing::error!(%error, %service, "the automatic rollback could not be deployed");
            self.config
                .store
                .generation_finished(service, generation, Outcome::Failed, now)?;
        }
        Ok(())
    }

    /// Whether every replica of `service` runs `generation`, healthy, as
    /// many as it wants.
    fn rolled_out(&self, service: &str, generation: u64) -> bool {
        let Some(record) = self
            .workloads
            .service(service)
            .filter(|s| s.generation == generation)
        else {
            return false;
        };
        let replicas = self.workloads.replicas_of(service);
        let healthy = self.workloads.routable_replicas_of(service).count();
        replicas.iter().all(|r| r.generation == generation)
            && replicas.len() == record.spec.replicas as usize
            && healthy == replicas.len()
    }
}

/// `earlier`'s containers at `current`'s scale and update policy: what a
/// rollback deploys.
fn again(current: &ServiceSpec, earlier: ServiceSpec) -> ServiceSpec {
    ServiceSpec {
        replicas: current.replicas,
        update: current.update,
        ..earlier
    }
}

/// The fields of a spec that differ between `old` and `new` (the replica
/// count and the update policy aside: changing them makes no generation),
/// by their JSON names.
pub fn spec_changes(old: &ServiceSpec, new: &ServiceSpec) -> Vec<String> {
    let (Ok(serde_json::Value::Object(old)), Ok(serde_json::Value::Object(new))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return Vec::new();
    };
    let mut fields: Vec<String> = old
        .keys()
        .chain(new.keys())
        .filter(|key| {
            !["replicas", "update"].contains(&key.as_str()) && old.get(*key) != new.get(*key)
        })
        .cloned()
        .collect();
    fields.sort();
    fields.dedup();
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_changes_name_the_fields_that_differ_but_the_scale() {
        let v1 = ServiceSpec::new("web", "local/busybox:1");
        let v2 = ServiceSpec {
            image: "local/busybox:2".to_owned(),
            command: vec!["httpd".to_owned()],
            replicas: 7,
            ..v1.clone()
        };
        assert_eq!(spec_changes(&v1, &v2), ["command", "image"]);
        assert!(spec_changes(&v1, &v1).is_empty());
    }
}
