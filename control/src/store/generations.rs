//! Each service's generations in the store, for `warren history` and
//! `warren rollback`: the spec each ran, when it was deployed, and how its
//! rollout ended.

use super::workloads::ServiceRecord;
use super::{to_sql_int, Store, StoreError};
use rusqlite::{params, Transaction};
use serde::{Deserialize, Serialize};
use warren_proto::ServiceSpec;

/// How a generation's rollout went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Its replicas are being placed and replace the older ones.
    RollingOut,
    /// Every replica of it was healthy and no older one was left.
    Completed,
    /// A newer generation was deployed before it completed.
    Superseded,
    /// It missed its healthy deadline and was rolled back.
    RolledBack,
    /// It missed its healthy deadline and was not rolled back (no
    /// `auto_rollback`, no completed generation to go back to, or it was a
    /// rollback itself).
    Failed,
}

impl Outcome {
    fn text(self) -> &'static str {
        match self {
            Outcome::RollingOut => "rolling_out",
            Outcome::Completed => "completed",
            Outcome::Superseded => "superseded",
            Outcome::RolledBack => "rolled_back",
            Outcome::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Outcome> {
        [
            Outcome::RollingOut,
            Outcome::Completed,
            Outcome::Superseded,
            Outcome::RolledBack,
            Outcome::Failed,
        ]
        .into_iter()
        .find(|o| o.text() == text)
    }
}

/// One generation of a service, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationRecord {
    /// Its number.
    pub generation: u64,
    /// The spec it was deployed with.
    pub spec: ServiceSpec,
    /// When, unix seconds.
    pub created: u64,
    /// How its rollout went.
    pub outcome: Outcome,
    /// When its rollout ended, unix seconds.
    pub finished: Option<u64>,
    /// Why it was made, when not by a plain deploy (`rollback of 2`).
    pub note: Option<String>,
}

/// Stores the generation `service` is at, if it is new (the older ones
/// still rolling out are superseded); `spec` is its spec as JSON.
pub(super) fn record(
    tx: &Transaction<'_>,
    service: &ServiceRecord,
    spec: &str,
    note: Option<&str>,
) -> Result<(), StoreError> {
    let added = tx.execute(
        "INSERT OR IGNORE INTO generations (service, generation, spec, created, note)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            service.spec.name,
            to_sql_int(service.generation),
            spec,
            to_sql_int(service.updated),
            note
        ],
    )?;
    if added > 0 {
        tx.execute(
            "UPDATE generations SET outcome = ?3, finished = ?4
             WHERE service = ?1 AND generation < ?2 AND outcome = ?5",
            params![
                service.spec.name,
                to_sql_int(service.generation),
                Outcome::Superseded.text(),
                to_sql_int(service.updated),
                Outcome::RollingOut.text()
            ],
        )?;
    }
    Ok(())
}

impl Store {
    /// The generations of `service`, oldest first.
    pub fn generations(&self, service: &str) -> Result<Vec<GenerationRecord>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT generation, spec, created, outcome, finished, note FROM generations
             WHERE service = ?1 ORDER BY generation",
        )?;
        let rows = statement.query_map(params![service], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, Option<i64>>(4)?,
                row.get::<_, Option<String>>(5)?,
            ))
        })?;
        let mut generations = Vec::new();
        for row in rows {
            let (generation, spec, created, outcome, finished, note) = row?;
            let corrupt = || StoreError::Corrupt("generation");
            generations.push(GenerationRecord {
                generation: u64::try_from(generation).map_err(|_| corrupt())?,
                spec: serde_json::from_str(&spec).map_err(|_| corrupt())?,
                created: u64::try_from(created).map_err(|_| corrupt())?,
                outcome: Outcome::parse(&outcome).ok_or_else(corrupt)?,
                finished: finished.and_then(|f| u64::try_from(f).ok()),
                note,
            });
        }
        Ok(generations)
    }

    /// The generations whose rollout is under way: service, generation,
    /// and when it was deployed.
    pub fn rolling_out(&self) -> Result<Vec<(String, u64, u64)>, StoreError> {
        let mut statement = self
            .conn
            .prepare("SELECT service, generation, created FROM generations WHERE outcome = ?1")?;
        let rows = statement.query_map(params![Outcome::RollingOut.text()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        let mut rolling = Vec::new();
        for row in rows {
            let (service, generation, created) = row?;
            let corrupt = |_| StoreError::Corrupt("generation");
            rolling.push((
                service,
                u64::try_from(generation).map_err(corrupt)?,
                u64::try_from(created).map_err(corrupt)?,
            ));
        }
        Ok(rolling)
    }

    /// Records that the rollout of generation `generation` of `service`
    /// ended at `now` with `outcome`.
    pub fn generation_finished(
        &self,
        service: &str,
        generation: u64,
        outcome: Outcome,
        now: u64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE generations SET outcome = ?3, finished = ?4
             WHERE service = ?1 AND generation = ?2 AND outcome = ?5",
            params![
                service,
                to_sql_int(generation),
                outcome.text(),
                to_sql_int(now),
                Outcome::RollingOut.text()
            ],
        )?;
        Ok(())
    }
}
