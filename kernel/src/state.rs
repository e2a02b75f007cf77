//! The state engine's memory: every record that is on disk, and which keys have writes
//! on their way to it.
//!
//! Memory holds only what the persistence writer has flushed (`persist`), so a read
//! answered from here never reports anything a crash could take back. A key with a write
//! queued or in flight is "dirty": reads of it go through the writer too, behind that
//! write, so a caller that writes then reads sees its write. Versions are assigned by the
//! writer alone, in queue order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use hcore_client::protocol::commands::{Exists, StateItem, StateItems};
use hcore_client::protocol::{now_ms, RpcError, StateContext, StateRecord};
use serde_json::Value;

pub(crate) struct StateStore {
    inner: Mutex<Inner>,
    pub tree: sled::Tree,
    limits: StateLimits,
}

/// `max_state_keys` and `max_state_bytes`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StateLimits {
    pub keys: usize,
    pub bytes: usize,
}

/// What a record counts against `max_state_bytes`: its key and its JSON value.
pub(crate) fn record_size(key: &str, r: &StateRecord) -> usize {
    key.len() + r.value.to_string().len()
}

/// A change in the number of keys and bytes of state.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Growth {
    pub keys: isize,
    pub bytes: isize,
}

impl Growth {
    /// What replacing `old` with `new` at `key` adds.
    pub fn of(key: &str, old: Option<&StateRecord>, new: Option<&StateRecord>) -> Growth {
        let size = |r: Option<&StateRecord>| r.map_or(0, |r| record_size(key, r)) as isize;
        Growth {
            keys: new.is_some() as isize - old.is_some() as isize,
            bytes: size(new) - size(old),
        }
    }

    pub fn add(self, other: Growth) -> Growth {
        Growth {
            keys: self.keys + other.keys,
            bytes: self.bytes + other.bytes,
        }
    }
}

#[derive(Default)]
pub(crate) struct Inner {
    /// Every record on disk, by key.
    pub records: BTreeMap<String, StateRecord>,
    /// `record_size` of all of them.
    bytes: usize,
    /// Writes queued per key, not yet flushed.
    dirty: HashMap<String, u32>,
}

impl Inner {
    fn is_dirty(&self, key: &str) -> bool {
        self.dirty.contains_key(key)
    }

    fn any_dirty_with_prefix(&self, prefix: &str) -> bool {
        self.dirty.keys().any(|k| k.starts_with(prefix))
    }
}

impl StateStore {
    /// Loads every record from the database.
    pub fn open(db: &sled::Db, limits: StateLimits) -> Result<StateStore, sled::Error> {
        let tree = db.open_tree("state")?;
        let mut records = BTreeMap::new();
        let mut bytes = 0;
        for item in tree.iter() {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            match serde_json::from_slice::<StateRecord>(&v) {
                Ok(r) => {
                    bytes += record_size(&key, &r);
                    records.insert(key, r);
                }
                Err(e) => tracing::error!(key, error = %e, "unreadable state record skipped"),
            }
        }
        Ok(StateStore {
            inner: Mutex::new(Inner {
                records,
                bytes,
                dirty: HashMap::new(),
            }),
            tree,
            limits,
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a change that grows state past a limit, given what the writer's batch has
    /// already added (`pending`, not yet committed). Shrinking is always allowed.
    pub fn check_growth(&self, pending: Growth, change: Growth) -> Result<(), RpcError> {
        let inner = self.lock();
        let after = pending.add(change);
        let keys = inner.records.len() as i128 + after.keys as i128;
        let bytes = inner.bytes as i128 + after.bytes as i128;
        let too_many = change.keys > 0 && keys > self.limits.keys as i128;
        let too_big = change.bytes > 0 && bytes > self.limits.bytes as i128;
        if too_many || too_big {
            let which = if too_many {
                format!("{} keys (max_state_keys)", self.limits.keys)
            } else {
                format!("{} bytes (max_state_bytes)", self.limits.bytes)
            };
            return Err(RpcError::new(
                hcore_client::protocol::ErrorCode::QuotaExceeded,
                format!("state is full: it may hold at most {which}"),
            ));
        }
        Ok(())
    }

    /// A write to `key` is about to be queued.
    pub fn mark_dirty(&self, key: &str) {
        *self.lock().dirty.entry(key.to_string()).or_default() += 1;
    }

    /// The writer finished with a batch: `changes` (key, new record or deletion) are on
    /// disk and become what reads see; `written` are the keys the batch's jobs marked dirty.
    pub fn commit(&self, changes: Vec<(String, Option<StateRecord>)>, written: &[String]) {
        let mut inner = self.lock();
        for (key, record) in changes {
            let new_size = record.as_ref().map_or(0, |r| record_size(&key, r));
            let old = match record {
                Some(r) => inner.records.insert(key.clone(), r),
                None => inner.records.remove(&key),
            };
            let old_size = old.as_ref().map_or(0, |r| record_size(&key, r));
            inner.bytes = (inner.bytes + new_size).saturating_sub(old_size);
        }
        for key in written {
            if let Some(n) = inner.dirty.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    inner.dirty.remove(key);
                }
            }
        }
    }
}

/// A read of state, answered from the flushed records.
#[derive(Debug, Clone)]
pub(crate) enum StateRead {
    Get(String),
    Exists(String),
    List(String),
}

impl StateRead {
    /// The key or prefix whose pending writes this read must wait for.
    pub fn scope(&self) -> (&str, bool) {
        match self {
            StateRead::Get(k) | StateRead::Exists(k) => (k, false),
            StateRead::List(p) => (p, true),
        }
    }

    pub fn answer(&self, inner: &Inner) -> Result<Value, RpcError> {
        let value = match self {
            StateRead::Get(key) => match inner.records.get(key) {
                Some(r) => serde_json::to_value(r),
                None => return Err(RpcError::not_found(format!("no state at {key}"))),
            },
            StateRead::Exists(key) => serde_json::to_value(Exists {
                exists: inner.records.contains_key(key),
            }),
            StateRead::List(prefix) => serde_json::to_value(StateItems {
                items: inner
                    .records
                    .range(prefix.clone()..)
                    .take_while(|(k, _)| k.starts_with(prefix.as_str()))
                    .map(|(k, r)| StateItem {
                        key: k.clone(),
                        value: r.value.clone(),
                        version: r.version,
                    })
                    .collect(),
            }),
        };
        value.map_err(|e| RpcError::internal(e.to_string()))
    }
}

impl StateStore {
    /// Answers a read now, or `None` if it must wait behind a pending write.
    pub fn answer_now(&self, read: &StateRead) -> Option<Result<Value, RpcError>> {
        let inner = self.lock();
        let (scope, prefix) = read.scope();
        let blocked = if prefix {
            inner.any_dirty_with_prefix(scope)
        } else {
            inner.is_dirty(scope)
        };
        (!blocked).then(|| read.answer(&inner))
    }
}

/// Who made a change and why.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub source: String,
    pub parent: Option<String>,
}

/// What a write does to one key, decided against its current record (a short-lived
/// return value, so the size of its variants does not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Plan {
    /// The value is already there: nothing changes, no event.
    Unchanged { version: u64 },
    /// A new record (a deletion when `new` is `None`).
    Change {
        old: Option<StateRecord>,
        new: Option<StateRecord>,
    },
}

fn check_version(
    current: Option<&StateRecord>,
    expected: Option<u64>,
    key: &str,
) -> Result<(), RpcError> {
    let at = current.map_or(0, |r| r.version);
    match expected {
        Some(e) if e != at => Err(RpcError::conflict(format!(
            "{key} is at version {at}, not {e}"
        ))),
        _ => Ok(()),
    }
}

/// `state.set` against the current record.
pub(crate) fn plan_set(
    key: &str,
    current: Option<&StateRecord>,
    value: Value,
    expected: Option<u64>,
    origin: &Origin,
) -> Result<Plan, RpcError> {
    check_version(current, expected, key)?;
    if let Some(c) = current.filter(|c| c.value == value) {
        return Ok(Plan::Unchanged { version: c.version });
    }
    let new = StateRecord {
        value,
        version: current.map_or(1, |r| r.version + 1),
        ts: now_ms(),
        source: origin.source.clone(),
        context: StateContext {
            id: uuid::Uuid::new_v4().to_string(),
            parent: origin.parent.clone(),
        },
    };
    Ok(Plan::Change {
        old: current.cloned(),
        new: Some(new),
    })
}

/// `state.delete` against the current record (`Unchanged` with version 0: nothing there).
pub(crate) fn plan_delete(
    key: &str,
    current: Option<&StateRecord>,
    expected: Option<u64>,
) -> Result<Plan, RpcError> {
    check_version(current, expected, key)?;
    Ok(match current {
        None => Plan::Unchanged { version: 0 },
        Some(old) => Plan::Change {
            old: Some(old.clone()),
            new: None,
        },
    })
}
