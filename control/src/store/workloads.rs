//! Services and their replicas in the store: the desired state the
//! scheduler and the reconciler work from, committed in one transaction per
//! change before anything is acknowledged or assigned.

use super::{to_sql_int, Store, StoreError};
use rusqlite::{params, OptionalExtension, TransactionBehavior};
use warren_proto::assignment::ReplicaId;
use warren_proto::ServiceSpec;

/// A service as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// What it should run (its name is the service's).
    pub spec: ServiceSpec,
    /// Grows by one each time the spec changes.
    pub generation: u64,
    /// The number the next replica of the service gets (`web-7`).
    pub next_replica: u64,
    /// When it was first deployed, unix seconds.
    pub created: u64,
    /// When its spec or scale last changed, unix seconds.
    pub updated: u64,
}

/// A replica as stored: where it was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRecord {
    /// Which replica.
    pub id: ReplicaId,
    /// Its service.
    pub service: String,
    /// The service generation it runs.
    pub generation: u64,
    /// The node it was placed on.
    pub node: String,
    /// Its host ports, one per container port of the spec.
    pub host_ports: Vec<u16>,
    /// When it was placed, unix seconds.
    pub placed: u64,
}

/// One change to the workloads, committed whole or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkloadChange {
    /// Services to store (created or replaced).
    pub services: Vec<ServiceRecord>,
    /// A service to delete, with its replicas (`warren rm`).
    pub removed_service: Option<String>,
    /// Replicas placed.
    pub placed: Vec<ReplicaRecord>,
    /// Replicas removed.
    pub removed: Vec<ReplicaId>,
    /// Why a new generation was made, for `warren history` (a rollback).
    pub note: Option<String>,
}

impl Store {
    /// Every service, by name.
    pub fn services(&self) -> Result<Vec<ServiceRecord>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT spec, generation, next_replica, created, updated FROM services ORDER BY name",
        )?;
        let rows = statement.query_map([], |row| {
            let spec: String = row.get(0)?;
            let numbers: [i64; 4] = [row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?];
            Ok((spec, numbers))
        })?;
        let mut services = Vec::new();
        for row in rows {
            let (spec, [generation, next_replica, created, updated]) = row?;
            let record = (|| {
                Some(ServiceRecord {
                    spec: serde_json::from_str(&spec).ok()?,
                    generation: u64::try_from(generation).ok()?,
                    next_replica: u64::try_from(next_replica).ok()?,
                    created: u64::try_from(created).ok()?,
                    updated: u64::try_from(updated).ok()?,
                })
            })();
            services.push(record.ok_or(StoreError::Corrupt("service"))?);
        }
        Ok(services)
    }

    /// Every replica, by service and then placement.
    pub fn replicas(&self) -> Result<Vec<ReplicaRecord>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT id, service, generation, node, host_ports, placed FROM replicas
             ORDER BY service, placed, id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, i64>(5)?,
            ))
        })?;
        let mut replicas = Vec::new();
        for row in rows {
            let (id, service, generation, node, host_ports, placed) = row?;
            let record = (|| {
                Some(ReplicaRecord {
                    id: ReplicaId(id),
                    service,
                    generation: u64::try_from(generation).ok()?,
                    node,
                    host_ports: serde_json::from_str(&host_ports).ok()?,
                    placed: u64::try_from(placed).ok()?,
                })
            })();
            replicas.push(record.ok_or(StoreError::Corrupt("replica"))?);
        }
        Ok(replicas)
    }

    /// The revision of the workloads: it grows with every committed change
    /// (0 before the first), also across restarts, so an agent can tell a
    /// newer set of assignments from an older one.
    pub fn workloads_revision(&self) -> Result<u64, StoreError> {
        let revision: Option<i64> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'workloads_revision'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        u64::try_from(revision.unwrap_or(0)).map_err(|_| StoreError::Corrupt("revision"))
    }

    /// Commits `change` in one transaction: all of it, or (on any error)
    /// none of it. Returns the workloads' new revision.
    pub fn commit_workloads(&mut self, change: &WorkloadChange) -> Result<u64, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(name) = &change.removed_service {
            tx.execute("DELETE FROM services WHERE name = ?1", params![name])?;
            tx.execute("DELETE FROM generations WHERE service = ?1", params![name])?;
        }
        for service in &change.services {
            let spec =
                serde_json::to_string(&service.spec).map_err(|_| StoreError::Corrupt("service"))?;
            tx.execute(
                "INSERT INTO services (name, generation, spec, next_replica, created, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name) DO UPDATE SET generation = ?2, spec = ?3,
                     next_replica = ?4, updated = ?6",
                params![
                    service.spec.name,
                    to_sql_int(service.generation),
                    spec,
                    to_sql_int(service.next_replica),
                    to_sql_int(service.created),
                    to_sql_int(service.updated)
                ],
            )?;
            super::generations::record(&tx, service, &spec, change.note.as_deref())?;
        }
        for id in &change.removed {
            tx.execute("DELETE FROM replicas WHERE id = ?1", params![id.0])?;
        }
        for replica in &change.placed {
            let ports = serde_json::to_string(&replica.host_ports)
                .map_err(|_| StoreError::Corrupt("replica"))?;
            tx.execute(
                "INSERT INTO replicas (id, service, generation, node, host_ports, placed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    replica.id.0,
                    replica.service,
                    to_sql_int(replica.generation),
                    replica.node,
                    ports,
                    to_sql_int(replica.placed)
                ],
            )?;
        }
        let revision: i64 = tx.query_row(
            "INSERT INTO meta (key, value) VALUES ('workloads_revision', 1)
             ON CONFLICT (key) DO UPDATE SET value = value + 1
             RETURNING value",
            [],
            |row| row.get(0),
        )?;
        tx.commit()?;
        u64::try_from(revision).map_err(|_| StoreError::Corrupt("revision"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::RestartPolicy;

    fn spec(name: &str) -> ServiceSpec {
        ServiceSpec {
            name: name.to_owned(),
            image: "local/busybox:1".to_owned(),
            replicas: 2,
            ports: vec![8080],
            hosts: Vec::new(),
            path: None,
            strip_prefix: false,
            sticky: false,
            tls: warren_proto::TlsMode::Auto,
            upstream_h2: false,
            env: Vec::new(),
            command: vec!["httpd".to_owned()],
            cpu_millis: None,
            memory: Some(128 << 20),
            health: None,
            constraints: Vec::new(),
            restart: RestartPolicy::OnFailure,
            update: Default::default(),
            stop_grace_ms: 7000,
        }
    }

    fn replica(service: &str, n: u64, node: &str) -> ReplicaRecord {
        ReplicaRecord {
            id: ReplicaId(format!("{service}-{n}")),
            service: service.to_owned(),
            generation: 1,
            node: node.to_owned(),
            host_ports: vec![20000 + n as u16],
            placed: 100 + n,
        }
    }

    fn service(name: &str, generation: u64) -> ServiceRecord {
        ServiceRecord {
            spec: spec(name),
            generation,
            next_replica: 3,
            created: 100,
            updated: 100 + generation,
        }
    }

    #[test]
    fn services_and_replicas_survive_reopening_and_changes_are_all_or_nothing() {
        let path = super::super::temp_db("workloads");
        let mut store = Store::open(&path).unwrap();
        let deploy = WorkloadChange {
            services: vec![service("web", 1)],
            placed: vec![replica("web", 1, "pi"), replica("web", 2, "vm")],
            ..WorkloadChange::default()
        };
        assert_eq!(store.workloads_revision().unwrap(), 0);
        assert_eq!(store.commit_workloads(&deploy).unwrap(), 1);
        // A change that breaks a rule half-way (a duplicate replica id)
        // leaves nothing of itself behind.
        let broken = WorkloadChange {
            services: vec![service("web", 2)],
            removed: vec![ReplicaId("web-1".to_owned())],
            placed: vec![replica("web", 2, "pi")],
            ..WorkloadChange::default()
        };
        assert!(store.commit_workloads(&broken).is_err());
        drop(store);
        let mut store = Store::open(&path).unwrap();
        assert_eq!(
            store.workloads_revision().unwrap(),
            1,
            "the failed change counted nothing"
        );
        assert_eq!(store.services().unwrap(), vec![service("web", 1)]);
        assert_eq!(
            store.replicas().unwrap(),
            vec![replica("web", 1, "pi"), replica("web", 2, "vm")]
        );
        // Removing a service removes its replicas.
        store
            .commit_workloads(&WorkloadChange {
                removed_service: Some("web".to_owned()),
                ..WorkloadChange::default()
            })
            .unwrap();
        assert!(store.services().unwrap().is_empty());
        assert!(store.replicas().unwrap().is_empty());
    }

    #[test]
    fn a_version_1_database_gains_the_workload_tables() {
        let path = super::super::temp_db("schema1");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO meta VALUES ('schema', 1);",
            )
            .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert!(store.services().unwrap().is_empty());
        assert!(store.certificates().unwrap().is_empty());
        let version: i64 = store
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(version, 5);
    }
}
