//! The cluster's last events in the store: appended in batches, the oldest
//! beyond [`KEPT`] dropped in the same transaction.

use super::{to_sql_int, Store, StoreError};
use crate::events::{Event, What, KEPT};
use rusqlite::{params, TransactionBehavior};

impl Store {
    /// Appends `what` (in order) as happening at `at_ms`, and returns them
    /// as events with their ids.
    pub fn append_events(&mut self, at_ms: u64, what: Vec<What>) -> Result<Vec<Event>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut events = Vec::with_capacity(what.len());
        for what in what {
            let body = serde_json::to_string(&what).map_err(|_| StoreError::Corrupt("event"))?;
            tx.execute(
                "INSERT INTO events (at_ms, body) VALUES (?1, ?2)",
                params![to_sql_int(at_ms), body],
            )?;
            let id =
                u64::try_from(tx.last_insert_rowid()).map_err(|_| StoreError::Corrupt("event"))?;
            events.push(Event { id, at_ms, what });
        }
        if let Some(last) = events.last() {
            tx.execute(
                "DELETE FROM events WHERE id <= ?1",
                params![to_sql_int(last.id.saturating_sub(KEPT))],
            )?;
        }
        tx.commit()?;
        Ok(events)
    }

    /// The id of the latest event stored (0 before the first).
    pub fn last_event_id(&self) -> Result<u64, StoreError> {
        let last: Option<i64> = self
            .conn
            .query_row("SELECT MAX(id) FROM events", [], |row| row.get(0))?;
        Ok(last.and_then(|id| u64::try_from(id).ok()).unwrap_or(0))
    }

    /// Up to `limit` events after the one with id `after`, oldest first;
    /// with no `after`, the last `limit` events.
    pub fn events(&self, after: Option<u64>, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows = |sql: &str, key: i64| -> Result<Vec<Event>, StoreError> {
            let mut statement = self.conn.prepare(sql)?;
            let rows = statement.query_map(params![key, limit], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })?;
            let mut events = Vec::new();
            for row in rows {
                let (id, at_ms, body) = row?;
                let what: What =
                    serde_json::from_str(&body).map_err(|_| StoreError::Corrupt("event"))?;
                let (Ok(id), Ok(at_ms)) = (u64::try_from(id), u64::try_from(at_ms)) else {
                    return Err(StoreError::Corrupt("event"));
                };
                events.push(Event { id, at_ms, what });
            }
            Ok(events)
        };
        match after {
            Some(after) => rows(
                "SELECT id, at_ms, body FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
                to_sql_int(after),
            ),
            None => {
                let mut last = rows(
                    "SELECT id, at_ms, body FROM events WHERE id > ?1 ORDER BY id DESC LIMIT ?2",
                    -1,
                )?;
                last.reverse();
                Ok(last)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline(node: &str) -> What {
        What::NodeOffline {
            node: node.to_owned(),
        }
    }

    #[test]
    fn events_get_growing_ids_survive_a_restart_and_only_the_last_are_kept() {
        let path = super::super::temp_db("events");
        let mut store = Store::open(&path).unwrap();
        let first = store
            .append_events(10, vec![offline("a"), offline("b")])
            .unwrap();
        assert_eq!(first.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 2]);
        drop(store);
        let mut store = Store::open(&path).unwrap();
        let next = store.append_events(20, vec![offline("c")]).unwrap();
        assert_eq!(next[0].id, 3, "ids go on after a restart");
        assert_eq!(store.events(Some(1), 10).unwrap()[0].what, offline("b"));
        assert_eq!(store.events(None, 2).unwrap().len(), 2);
        assert_eq!(
            store.events(None, 2).unwrap()[1].id,
            3,
            "the last, in order"
        );
        assert!(store.events(Some(3), 10).unwrap().is_empty());
        assert_eq!(store.last_event_id().unwrap(), 3);

        let many: Vec<What> = (0..KEPT).map(|i| offline(&format!("n{i}"))).collect();
        store.append_events(30, many).unwrap();
        let oldest = store.events(Some(0), 1).unwrap();
        assert_eq!(oldest[0].id, 4, "the first three went");
        assert_eq!(store.events(None, u32::MAX).unwrap().len() as u64, KEPT);
    }
}
