//! Kernel configuration.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What the kernel needs to know; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KernelConfig {
    /// Root of every protocol topic.
    pub root: String,
    /// Where the database lives.
    pub data_dir: PathBuf,
    /// Database page cache, bytes (sled's default of 1 GB is too much for a Raspberry Pi).
    pub cache_bytes: u64,
    /// Largest JSON value accepted by `state.set` and `storage.set`, bytes.
    pub max_value_bytes: usize,
    /// Longest an in-process plugin may take to stop, milliseconds.
    pub plugin_stop_timeout_ms: u64,
    /// Longest wait between restarts of a failing in-process plugin, milliseconds.
    pub plugin_restart_max_ms: u64,
    /// Calls to providers the kernel watches per caller (for `unavailable`); beyond it,
    /// calls are delivered but not watched.
    pub max_pending_calls_per_caller: usize,
    /// Longest the kernel watches one call, whatever its deadline, milliseconds.
    pub max_call_ms: u64,
    /// Writes (and reads waiting behind them) queued for the persistence writer; when it is
    /// full, requests are answered `unavailable`.
    pub write_queue: usize,
    /// Replies waiting for the connection; when it is full, replies are dropped (counted).
    pub reply_queue: usize,
    /// Values per `storage.list` page, bytes (a page holds at least one entry).
    pub max_page_bytes: usize,
    /// Bytes (keys and values) one namespace may hold in storage.
    pub max_storage_bytes_per_namespace: u64,
    /// Bytes (keys and values) all namespaces together may hold in storage.
    pub max_storage_bytes: u64,
    /// State keys in total.
    pub max_state_keys: usize,
    /// Bytes of state in total (keys and JSON values); state lives in memory too.
    pub max_state_bytes: usize,
}

impl Default for KernelConfig {
    fn default() -> Self {
        KernelConfig {
            root: hcore_client::protocol::DEFAULT_ROOT.to_string(),
            data_dir: PathBuf::from("hcore-data"),
            cache_bytes: 16 * 1024 * 1024,
            max_value_bytes: 64 * 1024,
            plugin_stop_timeout_ms: 5_000,
            plugin_restart_max_ms: 60_000,
            max_pending_calls_per_caller: 1_000,
            max_call_ms: 300_000,
            write_queue: 4_096,
            reply_queue: 65_536,
            max_page_bytes: 256 * 1024,
            max_storage_bytes_per_namespace: 4 * 1024 * 1024,
            max_storage_bytes: 16 * 1024 * 1024,
            max_state_keys: 10_000,
            max_state_bytes: 16 * 1024 * 1024,
        }
    }
}

impl KernelConfig {
    pub(crate) fn state_limits(&self) -> crate::state::StateLimits {
        crate::state::StateLimits {
            keys: self.max_state_keys,
            bytes: self.max_state_bytes,
        }
    }

    pub(crate) fn storage_quota(&self) -> crate::quota::QuotaLimits {
        crate::quota::QuotaLimits {
            per_namespace: self.max_storage_bytes_per_namespace,
            total: self.max_storage_bytes,
        }
    }

    pub fn validate(&self) -> Result<(), crate::KernelError> {
        let bad = |m: String| Err(crate::KernelError::Config(m));
        if self.root.is_empty() || self.root.starts_with('$') || self.root.contains(['+', '#']) {
            return bad(format!(
                "root {:?} must be non-empty, without wildcards, not starting with '$'",
                self.root
            ));
        }
        for (name, v) in [
            ("max_value_bytes", self.max_value_bytes),
            (
                "max_pending_calls_per_caller",
                self.max_pending_calls_per_caller,
            ),
            ("write_queue", self.write_queue),
            ("reply_queue", self.reply_queue),
            ("max_page_bytes", self.max_page_bytes),
            ("max_state_keys", self.max_state_keys),
            ("max_state_bytes", self.max_state_bytes),
            (
                "max_storage_bytes_per_namespace",
                self.max_storage_bytes_per_namespace as usize,
            ),
            ("max_storage_bytes", self.max_storage_bytes as usize),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if self.max_call_ms == 0 {
            return bad("max_call_ms must be at least 1".into());
        }
        Ok(())
    }
}
