//! The state engine: small JSON values under keys, with versions, kept in memory and in
//! the database. This module decides what a write does (version, conflict, no-op); the
//! kernel persists and announces the change (see `services::state`).

use std::collections::BTreeMap;

use hcore_client::protocol::{now_ms, RpcError, StateContext, StateRecord};
use serde_json::{json, Value};

pub(crate) struct StateEngine {
    pub tree: sled::Tree,
    entries: BTreeMap<String, StateRecord>,
}

/// The outcome of a write (a short-lived return value, so its size does not matter).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Change {
    /// The value was already there: nothing changes, no event.
    Unchanged { version: u64 },
    /// A new record; `old` is the previous one, if any.
    Changed {
        old: Option<StateRecord>,
        new: StateRecord,
    },
}

impl StateEngine {
    /// Loads every record from the database.
    pub fn open(db: &sled::Db) -> Result<StateEngine, sled::Error> {
        let tree = db.open_tree("state")?;
        let mut entries = BTreeMap::new();
        for item in tree.iter() {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            match serde_json::from_slice::<StateRecord>(&v) {
                Ok(r) => {
                    entries.insert(key, r);
                }
                Err(e) => tracing::error!(key, error = %e, "unreadable state record skipped"),
            }
        }
        Ok(StateEngine { tree, entries })
    }

    pub fn get(&self, key: &str) -> Option<&StateRecord> {
        self.entries.get(key)
    }

    pub fn records(&self) -> impl Iterator<Item = (&String, &StateRecord)> {
        self.entries.iter()
    }

    fn check_version(&self, key: &str, expected: Option<u64>) -> Result<(), RpcError> {
        let current = self.entries.get(key).map_or(0, |r| r.version);
        match expected {
            Some(e) if e != current => Err(RpcError::conflict(format!(
                "{key} is at version {current}, not {e}"
            ))),
            _ => Ok(()),
        }
    }

    /// Applies a write in memory.
    pub fn set(
        &mut self,
        key: &str,
        value: Value,
        expected: Option<u64>,
        source: &str,
        parent: Option<String>,
    ) -> Result<Change, RpcError> {
        self.check_version(key, expected)?;
        if let Some(current) = self.entries.get(key) {
            if current.value == value {
                return Ok(Change::Unchanged {
                    version: current.version,
                });
            }
        }
        let old = self.entries.get(key).cloned();
        let new = StateRecord {
            value,
            version: old.as_ref().map_or(1, |r| r.version + 1),
            ts: now_ms(),
            source: source.to_string(),
            context: StateContext {
                id: uuid::Uuid::new_v4().to_string(),
                parent,
            },
        };
        self.entries.insert(key.to_string(), new.clone());
        Ok(Change::Changed { old, new })
    }

    /// Removes a key in memory; returns the removed record.
    pub fn delete(
        &mut self,
        key: &str,
        expected: Option<u64>,
    ) -> Result<Option<StateRecord>, RpcError> {
        self.check_version(key, expected)?;
        Ok(self.entries.remove(key))
    }

    /// `[{"key", "value", "version"}]` for keys starting with `prefix`.
    pub fn list(&self, prefix: &str) -> Vec<Value> {
        self.entries
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, r)| json!({ "key": k, "value": r.value, "version": r.version }))
            .collect()
    }
}
