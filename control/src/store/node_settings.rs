//! What the operator sets on a node for placement, in the store: its labels
//! (`warren node label`), whether it is drained (`warren node drain`: its
//! replicas move off and nothing new goes there, until `warren node
//! activate`) and whether it is leaving (`warren node rm` of a node with
//! replicas, which moves them before the node goes).

use super::{Store, StoreError};
use rusqlite::{params, TransactionBehavior};
use std::collections::{BTreeMap, HashMap};

/// A node's placement settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSettings {
    /// Labels the operator set, for `--constraint` (`arch` and `node` are
    /// not among them: every node has those).
    pub labels: BTreeMap<String, String>,
    /// Whether its replicas are moving off it before it is removed.
    pub leaving: bool,
    /// Whether it is drained: its replicas move off, nothing new is
    /// placed there.
    pub drained: bool,
}

impl Store {
    /// Every node's settings, by node name (nodes with none set are
    /// absent).
    pub fn node_settings(&self) -> Result<HashMap<String, NodeSettings>, StoreError> {
        let mut settings: HashMap<String, NodeSettings> = HashMap::new();
        let mut leaving = self
            .conn
            .prepare("SELECT name FROM nodes WHERE leaving != 0")?;
        for name in leaving.query_map([], |row| row.get::<_, String>(0))? {
            settings.entry(name?).or_default().leaving = true;
        }
        let mut drained = self
            .conn
            .prepare("SELECT name FROM nodes WHERE drained != 0")?;
        for name in drained.query_map([], |row| row.get::<_, String>(0))? {
            settings.entry(name?).or_default().drained = true;
        }
        let mut labels = self
            .conn
            .prepare("SELECT node, key, value FROM node_labels ORDER BY node, key")?;
        let rows = labels.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (node, key, value) = row?;
            settings.entry(node).or_default().labels.insert(key, value);
        }
        Ok(settings)
    }

    /// Replaces the labels of `node` with `labels`, in one transaction.
    pub fn set_node_labels(
        &mut self,
        node: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("DELETE FROM node_labels WHERE node = ?1", params![node])?;
        for (key, value) in labels {
            tx.execute(
                "INSERT INTO node_labels (node, key, value) VALUES (?1, ?2, ?3)",
                params![node, key, value],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks `node` as drained (or not).
    pub fn set_node_drained(&self, node: &str, drained: bool) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE nodes SET drained = ?2 WHERE name = ?1",
            params![node, drained],
        )?;
        Ok(())
    }

    /// Marks `node` as leaving (or not).
    pub fn set_node_leaving(&self, node: &str, leaving: bool) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE nodes SET leaving = ?2 WHERE name = ?1",
            params![node, leaving],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_2_database_gains_leaving_and_drained_and_labels_go_with_their_node() {
        let path = super::super::temp_db("schema2");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO meta VALUES ('schema', 2);
                 CREATE TABLE nodes (
                     name TEXT PRIMARY KEY, public_key BLOB NOT NULL UNIQUE,
                     mesh_ip TEXT NOT NULL UNIQUE, mode TEXT NOT NULL,
                     private_address TEXT, wg_port INTEGER NOT NULL,
                     credential_sha256 BLOB NOT NULL UNIQUE, joined INTEGER NOT NULL);
                 INSERT INTO nodes VALUES ('pi', zeroblob(32), '100.96.0.2', 'relay',
                     NULL, 51820, zeroblob(32), 1);",
            )
            .unwrap();
        }
        let mut store = Store::open(&path).unwrap();
        assert_eq!(store.nodes().unwrap().len(), 1);
        assert!(store.node_settings().unwrap().is_empty());
        store.set_node_leaving("pi", true).unwrap();
        store.set_node_drained("pi", true).unwrap();
        let labels = BTreeMap::from([("zone".to_owned(), "home".to_owned())]);
        store.set_node_labels("pi", &labels).unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        let expected = NodeSettings {
            labels,
            leaving: true,
            drained: true,
        };
        assert_eq!(store.node_settings().unwrap().get("pi"), Some(&expected));
        store.remove_node("pi").unwrap();
        assert!(
            store.node_settings().unwrap().is_empty(),
            "labels went with the node"
        );
    }
}
