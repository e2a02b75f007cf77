//! Namespaced JSON storage in the database. A namespace is a caller's id; keys are stored
//! as `<namespace> NUL <key>` (ids cannot contain NUL), so one namespace can never reach
//! into another. Reads run directly; writes run as persistence jobs (group commit).

use hcore_client::protocol::RpcError;
use serde_json::Value;

#[derive(Clone)]
pub(crate) struct Storage {
    pub tree: sled::Tree,
}

/// Entries of one `list` page and the key to continue after.
pub(crate) type Page = (Vec<(String, Value)>, Option<String>);

fn full_key(ns: &str, key: &str) -> Vec<u8> {
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

impl Storage {
    pub fn open(db: &sled::Db) -> Result<Storage, sled::Error> {
        Ok(Storage {
            tree: db.open_tree("storage")?,
        })
    }

    pub fn get(&self, ns: &str, key: &str) -> Result<Option<Value>, RpcError> {
        Ok(self
            .tree
            .get(full_key(ns, key))
            .map_err(internal)?
            .map(|v| decode(&v)))
    }

    /// Up to `limit` entries with keys starting with `prefix`, after key `after`, and the
    /// key to continue from.
    pub fn list(
        &self,
        ns: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page, RpcError> {
        let start = match after {
            Some(a) => {
                let mut k = full_key(ns, a);
                k.push(0); // the first key strictly after `a`
                k
            }
            None => full_key(ns, prefix),
        };
        let mut items = Vec::new();
        let ns_len = ns.len() + 1;
        for item in self.tree.range(start..) {
            let (k, v) = item.map_err(internal)?;
            let Some(key) = k.get(ns_len..).filter(|_| k.starts_with(&full_key(ns, ""))) else {
                break;
            };
            let key = String::from_utf8_lossy(key).into_owned();
            if !key.starts_with(prefix) {
                break;
            }
            if items.len() == limit {
                let next = items.last().map(|(k, _): &(String, Value)| k.clone());
                return Ok((items, next));
            }
            items.push((key, decode(&v)));
        }
        Ok((items, None))
    }

    pub fn set(&self, ns: &str, key: &str, value: &Value) -> Result<(), RpcError> {
        let bytes = serde_json::to_vec(value).map_err(internal)?;
        self.tree
            .insert(full_key(ns, key), bytes)
            .map_err(internal)?;
        Ok(())
    }

    pub fn delete(&self, ns: &str, key: &str) -> Result<bool, RpcError> {
        Ok(self
            .tree
            .remove(full_key(ns, key))
            .map_err(internal)?
            .is_some())
    }

    /// Atomic compare-and-set; `None` means absent. Returns (swapped, current value).
    pub fn cas(
        &self,
        ns: &str,
        key: &str,
        expected: Option<&Value>,
        value: Option<&Value>,
    ) -> Result<(bool, Option<Value>), RpcError> {
        let encode = |v: Option<&Value>| -> Result<Option<Vec<u8>>, RpcError> {
            v.map(|v| serde_json::to_vec(v).map_err(internal))
                .transpose()
        };
        let old = encode(expected)?;
        let new = encode(value)?;
        match self
            .tree
            .compare_and_swap(full_key(ns, key), old, new.clone())
            .map_err(internal)?
        {
            Ok(()) => Ok((true, value.cloned())),
            Err(e) => Ok((false, e.current.map(|c| decode(&c)))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn storage() -> Storage {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Storage::open(&db).unwrap()
    }

    #[test]
    fn namespaces_do_not_overlap() {
        let s = storage();
        s.set("a", "k", &json!(1)).unwrap();
        s.set("ab", "k", &json!(2)).unwrap();
        assert_eq!(s.get("a", "k").unwrap(), Some(json!(1)));
        assert_eq!(s.get("b", "k").unwrap(), None);
        let (items, next) = s.list("a", "", None, 10).unwrap();
        assert_eq!(items, vec![("k".to_string(), json!(1))]);
        assert_eq!(next, None);
    }

    #[test]
    fn list_pages_and_cas() {
        let s = storage();
        for i in 0..5 {
            s.set("n", &format!("p/{i}"), &json!(i)).unwrap();
        }
        s.set("n", "q", &json!("other")).unwrap();
        let (page, next) = s.list("n", "p/", None, 2).unwrap();
        assert_eq!(page.len(), 2);
        let (page2, _) = s.list("n", "p/", next.as_deref(), 10).unwrap();
        assert_eq!(page2.len(), 3);
        assert_eq!(page2[0].0, "p/2");
        assert_eq!(
            s.cas("n", "c", None, Some(&json!(1))).unwrap(),
            (true, Some(json!(1)))
        );
        assert_eq!(
            s.cas("n", "c", None, Some(&json!(2))).unwrap(),
            (false, Some(json!(1)))
        );
        assert_eq!(
            s.cas("n", "c", Some(&json!(1)), None).unwrap(),
            (true, None)
        );
    }
}
