//! Namespaced JSON storage in the database. A namespace is a caller's id; keys are stored
//! as `<namespace> NUL <key>` (ids cannot contain NUL), so one namespace can never reach
//! into another.
//!
//! Writes run on the persistence writer (`persist`), which flushes before anyone is
//! answered. Until then the key is "dirty": a read of it (or a list covering it) goes
//! through the writer, behind the write, so no answer ever reports an unflushed value.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use hcore_client::protocol::commands::{CasResult, Deleted, Item, Page, StorageValue, Written};
use hcore_client::protocol::RpcError;
use serde_json::Value;

use crate::quota::{namespace_of, Quota, QuotaLimits};

pub(crate) struct Storage {
    pub tree: sled::Tree,
    /// Full keys with writes queued, not yet flushed.
    dirty: Mutex<BTreeMap<Vec<u8>, u32>>,
    quota: Mutex<Quota>,
}

/// What an entry counts against its namespace's quota: its key and its value.
fn entry_size(full_key: &[u8], value: &[u8]) -> u64 {
    (full_key.len() + value.len()) as u64
}

/// What a write replaced: the key and its previous bytes (to undo the write if the flush
/// that should make it durable fails).
pub(crate) type Undo = (Vec<u8>, Option<sled::IVec>);

pub(crate) fn full_key(ns: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(ns.len() + 1 + key.len());
    k.extend_from_slice(ns.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::internal(format!("database: {e}"))
}

fn decode(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn encode(v: &Value) -> Result<Vec<u8>, RpcError> {
    serde_json::to_vec(v).map_err(internal)
}

impl Storage {
    /// Opens the tree and counts what each namespace holds.
    pub fn open(db: &sled::Db, limits: QuotaLimits) -> Result<Storage, sled::Error> {
        let tree = db.open_tree("storage")?;
        let mut quota = Quota::new(limits);
        for item in tree.iter() {
            let (k, v) = item?;
            quota.apply(&namespace_of(&k), 0, entry_size(&k, &v));
        }
        Ok(Storage {
            tree,
            dirty: Mutex::new(BTreeMap::new()),
            quota: Mutex::new(quota),
        })
    }

    fn quota(&self) -> MutexGuard<'_, Quota> {
        self.quota.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes a namespace holds (keys and values).
    #[cfg(test)]
    pub fn used(&self, ns: &str) -> u64 {
        self.quota().used(ns)
    }

    /// Writes (or removes, for `None`) one entry and keeps the quota count; with `check`,
    /// refuses growth past a quota. Returns the bytes it replaced.
    fn replace(
        &self,
        k: &[u8],
        new: Option<Vec<u8>>,
        check: bool,
    ) -> Result<Option<sled::IVec>, RpcError> {
        let ns = namespace_of(k);
        let new_size = new.as_ref().map_or(0, |v| entry_size(k, v));
        let mut quota = self.quota();
        if check {
            let current = self.tree.get(k).map_err(internal)?;
            quota.check(&ns, current.map_or(0, |v| entry_size(k, &v)), new_size)?;
        }
        let old = match new {
            Some(v) => self.tree.insert(k, v),
            None => self.tree.remove(k),
        }
        .map_err(internal)?;
        quota.apply(&ns, old.as_ref().map_or(0, |v| entry_size(k, v)), new_size);
        Ok(old)
    }

    fn dirty(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, u32>> {
        self.dirty.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A write to `ns`/`key` is about to be queued.
    pub fn mark_dirty(&self, ns: &str, key: &str) {
        *self.dirty().entry(full_key(ns, key)).or_default() += 1;
    }

    /// The writer flushed (or gave up on) the writes that marked these keys.
    pub fn clear_dirty(&self, keys: &[Vec<u8>]) {
        let mut dirty = self.dirty();
        for k in keys {
            if let Some(n) = dirty.get_mut(k) {
                *n -= 1;
                if *n == 0 {
                    dirty.remove(k);
                }
            }
        }
    }

    /// Has any key starting with `ns`/`prefix` a write on its way?
    pub fn is_dirty(&self, ns: &str, prefix: &str) -> bool {
        let start = full_key(ns, prefix);
        self.dirty()
            .range(start.clone()..)
            .next()
            .is_some_and(|(k, _)| k.starts_with(&start))
    }

    pub fn get(&self, ns: &str, key: &str) -> Result<Option<Value>, RpcError> {
        Ok(self
            .tree
            .get(full_key(ns, key))
            .map_err(internal)?
            .map(|v| decode(&v)))
    }

    /// Up to `limit` entries (and about `max_bytes` of values, at least one entry) with
    /// keys starting with `prefix`, after key `after`, and the key to continue from.
    pub fn list(
        &self,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Page, RpcError> {
        let start = match after {
            Some(a) => {
                let mut k = full_key(ns, a);
                k.push(0); // the first key strictly after `a`
                k
            }
            None => full_key(ns, prefix),
        };
        let ns_prefix = full_key(ns, "");
        let mut items: Vec<Item> = Vec::new();
        let mut bytes = 0;
        for item in self.tree.range(start..) {
            let (k, v) = item.map_err(internal)?;
            let Some(key) = k.strip_prefix(ns_prefix.as_slice()) else {
                break;
            };
            let key = String::from_utf8_lossy(key).into_owned();
            if !key.starts_with(prefix) {
                break;
            }
            if items.len() == limit || (!items.is_empty() && bytes + v.len() > max_bytes) {
                let next = items.last().map(|i| i.key.clone());
                return Ok(Page { items, next });
            }
            bytes += v.len();
            items.push(Item {
                key,
                value: decode(&v),
            });
        }
        Ok(Page { items, next: None })
    }

    pub fn set(&self, ns: &str, key: &str, value: &Value) -> Result<Undo, RpcError> {
        let k = full_key(ns, key);
        let old = self.replace(&k, Some(encode(value)?), true)?;
        Ok((k, old))
    }

    pub fn delete(&self, ns: &str, key: &str) -> Result<(bool, Undo), RpcError> {
        let k = full_key(ns, key);
        let old = self.replace(&k, None, false)?;
        Ok((old.is_some(), (k, old)))
    }

    /// Atomic compare-and-set; `None` means absent. Returns (swapped, current value).
    pub fn cas(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&Value>,
        value: Option<&Value>,
    ) -> Result<(bool, Option<Value>, Option<Undo>), RpcError> {
        let old = expected.map(encode).transpose()?;
        let new = value.map(encode).transpose()?;
        let k = full_key(ns, key);
        // Only the persistence writer writes, so the current value cannot change between
        // this read and the swap.
        let current = self.tree.get(&k).map_err(internal)?;
        if current.as_deref() != old.as_deref() {
            return Ok((false, current.map(|c| decode(&c)), None));
        }
        let replaced = self.replace(&k, new, true)?;
        Ok((true, value.cloned(), Some((k, replaced))))
    }

    /// Puts back what failed writes replaced, newest first.
    pub fn undo(&self, undo: Vec<Undo>) {
        for (k, old) in undo.into_iter().rev() {
            if let Err(e) = self.replace(&k, old.map(|v| v.to_vec()), false) {
                tracing::error!(error = %e, "cannot undo a storage write whose flush failed");
            }
        }
    }
}

/// A read of one namespace, answered from flushed data.
#[derive(Debug, Clone)]
pub(crate) enum StorageRead {
    Get {
        key: String,
    },
    List {
        prefix: String,
        after: Option<String>,
        limit: usize,
        max_bytes: usize,
    },
}

impl StorageRead {
    /// The key (or key prefix) whose pending writes this read must wait for.
    fn scope(&self) -> &str {
        match self {
            StorageRead::Get { key } => key,
            StorageRead::List { prefix, .. } => prefix,
        }
    }

    pub fn answer(&self, storage: &Storage, ns: &str) -> Result<Value, RpcError> {
        let result = match self {
            StorageRead::Get { key } => match storage.get(ns, key)? {
                Some(value) => serde_json::to_value(StorageValue { value }),
                None => return Err(RpcError::not_found(format!("no value at {key}"))),
            },
            StorageRead::List {
                prefix,
                after,
                limit,
                max_bytes,
            } => serde_json::to_value(storage.list(
                ns,
                prefix,
                after.as_deref(),
                *limit,
                *max_bytes,
            )?),
        };
        result.map_err(internal)
    }
}

impl Storage {
    /// Answers a read now, or `None` if it must wait behind a pending write.
    pub fn answer_now(&self, read: &StorageRead, ns: &str) -> Option<Result<Value, RpcError>> {
        (!self.is_dirty(ns, read.scope())).then(|| read.answer(self, ns))
    }
}

/// A write to one namespace, run by the persistence writer.
#[derive(Debug, Clone)]
pub(crate) enum StorageWrite {
    Set {
        key: String,
        value: Value,
    },
    Delete {
        key: String,
    },
    Cas {
        key: String,
        expected: Option<Value>,
        value: Option<Value>,
    },
}

impl StorageWrite {
    pub fn key(&self) -> &str {
        match self {
            StorageWrite::Set { key, .. }
            | StorageWrite::Delete { key }
            | StorageWrite::Cas { key, .. } => key,
        }
    }

    /// Applies the write (not yet durable); returns the result and what to undo.
    pub fn apply(&self, storage: &Storage, ns: &str) -> Result<(Value, Option<Undo>), RpcError> {
        let (result, undo) = match self {
            StorageWrite::Set { key, value } => {
                let undo = storage.set(ns, key, value)?;
                (serde_json::to_value(Written { ok: true }), Some(undo))
            }
            StorageWrite::Delete { key } => {
                let (deleted, undo) = storage.delete(ns, key)?;
                (serde_json::to_value(Deleted { deleted }), Some(undo))
            }
            StorageWrite::Cas {
                key,
                expected,
                value,
            } => {
                let (swapped, current, undo) =
                    storage.cas(ns, key, expected.as_ref(), value.as_ref())?;
                (serde_json::to_value(CasResult { swapped, current }), undo)
            }
        };
        Ok((result.map_err(internal)?, undo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn storage() -> Storage {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Storage::open(&db, LIMITS).unwrap()
    }

    const LIMITS: QuotaLimits = QuotaLimits {
        per_namespace: 1000,
        total: 1500,
    };

    #[test]
    fn quotas_refuse_growth_and_follow_deletes_cas_and_undo() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let s = Storage::open(&db, LIMITS).unwrap();
        s.set("n", "a", &json!("x".repeat(900))).unwrap();
        let e = s.set("n", "b", &json!("x".repeat(200))).unwrap_err();
        assert_eq!(e.code, hcore_client::protocol::ErrorCode::QuotaExceeded);
        assert_eq!(s.get("n", "b").unwrap(), None, "nothing written");
        let e = s
            .cas("n", "b", None, Some(&json!("x".repeat(200))))
            .unwrap_err();
        assert_eq!(e.code, hcore_client::protocol::ErrorCode::QuotaExceeded);
        s.set("m", "a", &json!("x".repeat(700))).unwrap_err(); // total 1500
        let used = s.used("n");
        let (_, undo) = s.delete("n", "a").unwrap();
        assert_eq!(s.used("n"), 0);
        s.undo(vec![undo]);
        assert_eq!(s.used("n"), used);
        s.delete("n", "a").unwrap();
        s.set("m", "a", &json!("x".repeat(700))).unwrap();
        // Counted again from the database when it opens.
        let reopened = Storage::open(&db, LIMITS).unwrap();
        assert_eq!(reopened.used("m"), s.used("m"));
    }

    #[test]
    fn namespaces_do_not_overlap() {
        let s = storage();
        s.set("a", "k", &json!(1)).unwrap();
        s.set("ab", "k", &json!(2)).unwrap();
        assert_eq!(s.get("a", "k").unwrap(), Some(json!(1)));
        assert_eq!(s.get("b", "k").unwrap(), None);
        let page = s.list("a", "", None, 10, usize::MAX).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.next, None);
    }

    #[test]
    fn list_pages_by_count_and_bytes_and_cas() {
        let s = storage();
        for i in 0..5 {
            s.set("n", &format!("p/{i}"), &json!(i)).unwrap();
        }
        s.set("n", "q", &json!("other")).unwrap();
        let page = s.list("n", "p/", None, 2, usize::MAX).unwrap();
        assert_eq!(page.items.len(), 2);
        let page2 = s
            .list("n", "p/", page.next.as_deref(), 10, usize::MAX)
            .unwrap();
        assert_eq!(page2.items.len(), 3);
        assert_eq!(page2.items[0].key, "p/2");
        let small = s.list("n", "p/", None, 10, 2).unwrap();
        assert_eq!(small.items.len(), 2, "a page stops at its byte bound");
        assert_eq!(small.next.as_deref(), Some("p/1"));
        assert!(s.cas("n", "c", None, Some(&json!(1))).unwrap().0);
        let (swapped, current, _) = s.cas("n", "c", None, Some(&json!(2))).unwrap();
        assert_eq!((swapped, current), (false, Some(json!(1))));
        assert!(s.cas("n", "c", Some(&json!(1)), None).unwrap().0);
    }

    #[test]
    fn dirty_keys_and_undo() {
        let s = storage();
        s.mark_dirty("n", "a/b");
        assert!(s.is_dirty("n", "a/"));
        assert!(s.is_dirty("n", "a/b"));
        assert!(!s.is_dirty("n", "c"));
        assert!(!s.is_dirty("m", ""));
        s.clear_dirty(&[full_key("n", "a/b")]);
        assert!(!s.is_dirty("n", ""));
        s.set("n", "k", &json!(1)).unwrap();
        let undo = s.set("n", "k", &json!(2)).unwrap();
        s.undo(vec![undo]);
        assert_eq!(s.get("n", "k").unwrap(), Some(json!(1)));
    }
}
