//! The control plane's state in SQLite: join tokens, nodes and their
//! addresses, what the operator set on them for placement
//! ([`node_settings`]), (in [`workloads`]) services and their replicas, and
//! the cluster's last events ([`events`]).
//!
//! Every change is one transaction, committed (and synced: `synchronous =
//! FULL` in WAL mode) before the caller acknowledges it to anyone, so a
//! control plane killed at any moment loses nothing it acknowledged. The
//! schema carries a version; a database from a newer warren is refused
//! rather than misread.

use crate::nodes::NodeRecord;
use crate::tokens::{TokenRecord, TokenRefused};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use warren_proto::Mode;
use warren_wire::PublicKey;

mod certs;
mod events;
mod generations;
mod node_settings;
mod workloads;

pub use certs::{CertRecord, CertSource};
pub use generations::{GenerationRecord, Outcome};
pub use node_settings::NodeSettings;
pub use workloads::{ReplicaRecord, ServiceRecord, WorkloadChange};

/// The schema this build writes and reads. Version 2 added services and
/// replicas, version 3 node labels and leaving nodes, version 4 the
/// proxy's certificates and ACME accounts, version 5 drained nodes, the
/// cluster's events and each service's generations; an older database
/// gains what it lacks when opened.
const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id            BLOB PRIMARY KEY CHECK (length(id) = 8),
    secret_sha256 BLOB NOT NULL CHECK (length(secret_sha256) = 32),
    created       INTEGER NOT NULL,
    expires       INTEGER NOT NULL,
    uses          INTEGER NOT NULL CHECK (uses > 0),
    used          INTEGER NOT NULL DEFAULT 0,
    revoked       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS nodes (
    name              TEXT PRIMARY KEY,
    public_key        BLOB NOT NULL UNIQUE CHECK (length(public_key) = 32),
    mesh_ip           TEXT NOT NULL UNIQUE,
    mode              TEXT NOT NULL CHECK (mode IN ('direct', 'relay')),
    private_address   TEXT,
    wg_port           INTEGER NOT NULL,
    credential_sha256 BLOB NOT NULL UNIQUE CHECK (length(credential_sha256) = 32),
    joined            INTEGER NOT NULL,
    leaving           INTEGER NOT NULL DEFAULT 0,
    drained           INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    id    INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    body  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS node_labels (
    node  TEXT NOT NULL REFERENCES nodes (name) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (node, key)
);
CREATE TABLE IF NOT EXISTS services (
    name         TEXT PRIMARY KEY,
    generation   INTEGER NOT NULL CHECK (generation > 0),
    spec         TEXT NOT NULL,
    next_replica INTEGER NOT NULL,
    created      INTEGER NOT NULL,
    updated      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS generations (
    service    TEXT NOT NULL,
    generation INTEGER NOT NULL,
    spec       TEXT NOT NULL,
    created    INTEGER NOT NULL,
    outcome    TEXT NOT NULL DEFAULT 'rolling_out',
    finished   INTEGER,
    note       TEXT,
    PRIMARY KEY (service, generation)
);
CREATE TABLE IF NOT EXISTS certificates (
    host      TEXT PRIMARY KEY,
    cert_pem  TEXT NOT NULL,
    key_pem   TEXT NOT NULL,
    source    TEXT NOT NULL CHECK (source IN ('manual', 'acme')),
    not_after INTEGER NOT NULL,
    updated   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS acme_accounts (
    directory   TEXT PRIMARY KEY,
    credentials TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replicas (
    id         TEXT PRIMARY KEY,
    service    TEXT NOT NULL REFERENCES services (name) ON DELETE CASCADE,
    generation INTEGER NOT NULL,
    node       TEXT NOT NULL,
    host_ports TEXT NOT NULL,
    placed     INTEGER NOT NULL
);
";

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("opening the state database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The database was written by a newer warren.
    #[error("the state database {path} has schema version {found}; this warren reads version {SCHEMA_VERSION}: upgrade warren")]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
    },
    /// A query failed (disk full, I/O error, corruption).
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row does not have the shape this build writes.
    #[error("state database: a corrupt {0} row")]
    Corrupt(&'static str),
}

/// Why a token could not be redeemed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedeemError {
    /// The token does not admit the join.
    #[error(transparent)]
    Refused(#[from] TokenRefused),
    /// The store failed; nothing changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The open database.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(open_error)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_error)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_error)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_error)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_error)?;
        conn.execute_batch(SCHEMA).map_err(open_error)?;
        let found: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |row| {
                row.get(0)
            })
            .optional()
            .map_err(open_error)?;
        match found {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    params![SCHEMA_VERSION],
                )
                .map_err(open_error)?;
            }
            Some(version) if version > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    path: path.to_owned(),
                    found: version,
                })
            }
            Some(version) if version < SCHEMA_VERSION => {
                // The tables added since were created above; the columns
                // are added here.
                for column in ["leaving", "drained"] {
                    let has_column: bool = conn
                        .query_row(
                            "SELECT COUNT(*) > 0 FROM pragma_table_info('nodes') WHERE name = ?1",
                            params![column],
                            |row| row.get(0),
                        )
                        .map_err(open_error)?;
                    if !has_column {
                        conn.execute(
                            &format!(
                                "ALTER TABLE nodes ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0"
                            ),
                            [],
                        )
                        .map_err(open_error)?;
                    }
                }
                conn.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'schema'",
                    params![SCHEMA_VERSION],
                )
                .map_err(open_error)?;
            }
            Some(_) => {}
        }
        Ok(Store { conn })
    }

    /// Stores a newly issued token.
    pub fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO tokens (id, secret_sha256, created, expires, uses, used, revoked)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                token.id.as_slice(),
                token.secret_sha256.as_slice(),
                to_sql_int(token.created),
                to_sql_int(token.expires),
                token.uses,
                token.used,
                token.revoked
            ],
        )?;
        Ok(())
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT id, secret_sha256, created, expires, uses, used, revoked
             FROM tokens ORDER BY created, id",
        )?;
        let rows = statement.query_map([], token_from_row)?;
        let mut tokens = Vec::new();
        for row in rows {
            tokens.push(row??);
        }
        Ok(tokens)
    }

    /// The token with this id.
    pub fn token(&self, id: &[u8; 8]) -> Result<Option<TokenRecord>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT id, secret_sha256, created, expires, uses, used, revoked
                 FROM tokens WHERE id = ?1",
                params![id.as_slice()],
                token_from_row,
            )
            .optional()?;
        row.transpose()
    }

    /// Revokes a token; returns whether one had this id.
    pub fn revoke_token(&self, id: &[u8; 8]) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE tokens SET revoked = 1 WHERE id = ?1",
            params![id.as_slice()],
        )?;
        Ok(changed > 0)
    }

    /// Checks a token and counts one use, atomically: two joins racing for
    /// a token's last use cannot both get it. Nothing changes when refused.
    pub fn redeem_token(
        &mut self,
        id: &[u8; 8],
        secret: &[u8; 32],
        now: u64,
    ) -> Result<TokenRecord, RedeemError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let redeemed = redeem_in(&tx, id, secret, now)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(redeemed)
    }
}

/// Checks and counts a token inside `tx` (committed by the caller).
fn redeem_in(
    tx: &rusqlite::Transaction<'_>,
    id: &[u8; 8],
    secret: &[u8; 32],
    now: u64,
) -> Result<TokenRecord, RedeemError> {
    let record = tx
        .query_row(
            "SELECT id, secret_sha256, created, expires, uses, used, revoked
             FROM tokens WHERE id = ?1",
            params![id.as_slice()],
            token_from_row,
        )
        .optional()
        .map_err(StoreError::from)?
        .transpose()?
        .ok_or(TokenRefused::Unknown)?;
    record.check(secret, now)?;
    tx.execute(
        "UPDATE tokens SET used = used + 1 WHERE id = ?1",
        params![id.as_slice()],
    )
    .map_err(StoreError::from)?;
    Ok(TokenRecord {
        used: record.used + 1,
        ..record
    })
}

impl Store {
    /// Admits a node with a join token, atomically: the token is checked
    /// and counted and the node stored in one transaction, or nothing
    /// happens (a refused token, a name or key stored meanwhile).
    pub fn join(
        &mut self,
        token_id: &[u8; 8],
        secret: &[u8; 32],
        node: &NodeRecord,
        now: u64,
    ) -> Result<(), RedeemError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        redeem_in(&tx, token_id, secret, now)?;
        insert_node(&tx, node).map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Every node, in the order they joined.
    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StoreError> {
        let mut statement = self.conn.prepare(
            "SELECT name, public_key, mesh_ip, mode, private_address, wg_port, credential_sha256, joined
             FROM nodes ORDER BY joined, name",
        )?;
        let rows = statement.query_map([], node_from_row)?;
        let mut nodes = Vec::new();
        for row in rows {
            nodes.push(row??);
        }
        Ok(nodes)
    }

    /// Stores a node's new mode, private address and port (a rejoin with
    /// other details).
    pub fn update_node(&self, node: &NodeRecord) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE nodes SET mode = ?2, private_address = ?3, wg_port = ?4 WHERE name = ?1",
            params![
                node.name,
                node.mode.as_str(),
                node.private_address.map(|a| a.to_string()),
                node.wg_port
            ],
        )?;
        Ok(())
    }

    /// Removes a node; returns whether one had this name.
    pub fn remove_node(&self, name: &str) -> Result<bool, StoreError> {
        let changed = self
            .conn
            .execute("DELETE FROM nodes WHERE name = ?1", params![name])?;
        Ok(changed > 0)
    }
}

fn insert_node(conn: &Connection, node: &NodeRecord) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO nodes (name, public_key, mesh_ip, mode, private_address, wg_port, credential_sha256, joined)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            node.name,
            node.public_key.as_bytes().as_slice(),
            node.mesh_ip.to_string(),
            node.mode.as_str(),
            node.private_address.map(|a| a.to_string()),
            node.wg_port,
            node.credential_sha256.as_slice(),
            to_sql_int(node.joined)
        ],
    )?;
    Ok(())
}

fn node_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<NodeRecord, StoreError>> {
    let name: String = row.get(0)?;
    let key: Vec<u8> = row.get(1)?;
    let mesh_ip: String = row.get(2)?;
    let mode: String = row.get(3)?;
    let private_address: Option<String> = row.get(4)?;
    let wg_port: u16 = row.get(5)?;
    let credential: Vec<u8> = row.get(6)?;
    let joined: i64 = row.get(7)?;
    let parsed = (|| {
        Some(NodeRecord {
            name,
            public_key: PublicKey::from_bytes(key.try_into().ok()?),
            mesh_ip: mesh_ip.parse().ok()?,
            mode: match mode.as_str() {
                "direct" => Mode::Direct,
                "relay" => Mode::Relay,
                _ => return None,
            },
            private_address: match private_address {
                Some(text) => Some(text.parse().ok()?),
                None => None,
            },
            wg_port,
            credential_sha256: credential.try_into().ok()?,
            joined: u64::try_from(joined).ok()?,
        })
    })();
    Ok(parsed.ok_or(StoreError::Corrupt("node")))
}

/// A count, id or unix time as SQLite's signed integer (beyond its range,
/// saturated).
fn to_sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<TokenRecord, StoreError>> {
    let id: Vec<u8> = row.get(0)?;
    let hash: Vec<u8> = row.get(1)?;
    let created: i64 = row.get(2)?;
    let expires: i64 = row.get(3)?;
    let uses: u32 = row.get(4)?;
    let used: u32 = row.get(5)?;
    let revoked: bool = row.get(6)?;
    let parsed = (|| {
        Some(TokenRecord {
            id: id.try_into().ok()?,
            secret_sha256: hash.try_into().ok()?,
            created: u64::try_from(created).ok()?,
            expires: u64::try_from(expires).ok()?,
            uses,
            used,
            revoked,
        })
    })();
    Ok(parsed.ok_or(StoreError::Corrupt("token")))
}

/// A fresh database path of its own for a store test.
#[cfg(test)]
fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warren-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("state.db")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn tokens_survive_reopening_and_are_redeemed_atomically() {
        let path = temp_db("tokens");
        let (record, secret) =
            TokenRecord::issue(1000, Duration::from_secs(600), 2, [9; 40]).unwrap();
        {
            let store = Store::open(&path).unwrap();
            store.insert_token(&record).unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.tokens().unwrap(), vec![record.clone()]);
        assert_eq!(
            store.redeem_token(&record.id, &secret, 1001).unwrap().used,
            1
        );
        assert_eq!(
            store.redeem_token(&record.id, &secret, 1002).unwrap().used,
            2
        );
        assert!(matches!(
            store.redeem_token(&record.id, &secret, 1003),
            Err(RedeemError::Refused(TokenRefused::UsedUp { uses: 2 }))
        ));
        assert!(matches!(
            store.redeem_token(&[0; 8], &secret, 1003),
            Err(RedeemError::Refused(TokenRefused::Unknown))
        ));
        assert_eq!(
            store.token(&record.id).unwrap().unwrap().used,
            2,
            "refusals change nothing"
        );
        assert!(store.revoke_token(&record.id).unwrap());
        assert!(!store.revoke_token(&[0; 8]).unwrap());
        drop(store);
        let store = Store::open(&path).unwrap();
        assert!(store.token(&record.id).unwrap().unwrap().revoked);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_join_stores_the_node_and_counts_the_token_or_changes_nothing() {
        let path = temp_db("join");
        let mut store = Store::open(&path).unwrap();
        let (token, secret) =
            TokenRecord::issue(1000, Duration::from_secs(600), 2, [5; 40]).unwrap();
        store.insert_token(&token).unwrap();
        let node = NodeRecord {
            name: "pi".to_owned(),
            public_key: PublicKey::from_bytes([1; 32]),
            mesh_ip: "100.96.0.2".parse().unwrap(),
            mode: Mode::Direct,
            private_address: Some("10.0.0.2".parse().unwrap()),
            wg_port: 51820,
            credential_sha256: [2; 32],
            joined: 1001,
        };
        store.join(&token.id, &secret, &node, 1001).unwrap();
        // The same key under another name: the store refuses, the token's use is not spent.
        let twin = NodeRecord {
            name: "twin".to_owned(),
            mesh_ip: "100.96.0.3".parse().unwrap(),
            credential_sha256: [3; 32],
            ..node.clone()
        };
        assert!(matches!(
            store.join(&token.id, &secret, &twin, 1002),
            Err(RedeemError::Store(_))
        ));
        assert!(matches!(
            store.join(&token.id, &[0; 32], &twin, 1002),
            Err(RedeemError::Refused(TokenRefused::Unknown))
        ));
        assert_eq!(store.token(&token.id).unwrap().unwrap().used, 1);
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.nodes().unwrap(), vec![node]);
        assert!(store.remove_node("pi").unwrap());
        assert!(store.nodes().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    #[test]
    fn a_database_from_a_newer_warren_is_refused() {
        let path = temp_db("newer");
        drop(Store::open(&path).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema'", [])
            .unwrap();
        drop(conn);
        let refused = Store::open(&path).err().unwrap();
        assert!(
            matches!(refused, StoreError::NewerSchema { found: 99, .. }),
            "{refused}"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
