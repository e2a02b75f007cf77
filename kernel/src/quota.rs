//! Storage quotas: the bytes (keys and values) each namespace holds, and all of them
//! together. Counted once when the database opens and kept up to date by every write (all
//! of which run on the persistence writer), so a write that would go over a limit is
//! refused before it reaches the disk.

use std::collections::HashMap;

use hcore_client::protocol::{ErrorCode, RpcError};

/// The limits, in bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuotaLimits {
    pub per_namespace: u64,
    pub total: u64,
}

pub(crate) struct Quota {
    limits: QuotaLimits,
    per_ns: HashMap<String, u64>,
    total: u64,
}

/// The namespace of a full storage key (`<namespace> NUL <key>`).
pub(crate) fn namespace_of(full_key: &[u8]) -> String {
    let end = full_key
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(full_key.len());
    String::from_utf8_lossy(&full_key[..end]).into_owned()
}

impl Quota {
    pub fn new(limits: QuotaLimits) -> Quota {
        Quota {
            limits,
            per_ns: HashMap::new(),
            total: 0,
        }
    }

    /// Bytes `ns` holds now.
    pub fn used(&self, ns: &str) -> u64 {
        self.per_ns.get(ns).copied().unwrap_or(0)
    }

    /// Bytes all namespaces hold.
    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Refuses replacing `old` bytes with `new` bytes in `ns` if that grows it past a
    /// limit. Shrinking is always allowed, even when over (limits may have been lowered).
    pub fn check(&self, ns: &str, old: u64, new: u64) -> Result<(), RpcError> {
        if new <= old {
            return Ok(());
        }
        let grow = new - old;
        let (ns_used, total) = (self.used(ns), self.total);
        if ns_used + grow > self.limits.per_namespace {
            return Err(RpcError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "namespace {ns} would hold {} bytes; its quota is {} (max_storage_bytes_per_namespace)",
                    ns_used + grow,
                    self.limits.per_namespace
                ),
            ));
        }
        if total + grow > self.limits.total {
            return Err(RpcError::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "storage would hold {} bytes; the limit is {} (max_storage_bytes)",
                    total + grow,
                    self.limits.total
                ),
            ));
        }
        Ok(())
    }

    /// Records that `old` bytes of `ns` became `new` bytes.
    pub fn apply(&mut self, ns: &str, old: u64, new: u64) {
        let used = self.per_ns.entry(ns.to_string()).or_default();
        *used = (*used + new).saturating_sub(old);
        self.total = (self.total + new).saturating_sub(old);
        if *used == 0 {
            self.per_ns.remove(ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_per_namespace_and_in_total_and_shrinking_is_free() {
        let mut q = Quota::new(QuotaLimits {
            per_namespace: 100,
            total: 150,
        });
        q.check("a", 0, 100).unwrap();
        q.apply("a", 0, 100);
        let e = q.check("a", 0, 1).unwrap_err();
        assert_eq!(e.code, ErrorCode::QuotaExceeded);
        q.check("a", 50, 50).unwrap();
        q.check("b", 0, 50).unwrap();
        q.apply("b", 0, 50);
        assert!(q
            .check("c", 0, 1)
            .unwrap_err()
            .message
            .contains("max_storage_bytes"));
        q.apply("a", 100, 0);
        assert_eq!((q.used("a"), q.total()), (0, 50));
        q.check("c", 0, 100).unwrap();
        assert_eq!(namespace_of(b"ns\0key"), "ns");
    }
}
