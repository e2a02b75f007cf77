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
        }
    }
}

impl KernelConfig {
    pub fn validate(&self) -> Result<(), crate::KernelError> {
        let bad = |m: String| Err(crate::KernelError::Config(m));
        if self.root.is_empty() || self.root.starts_with('$') || self.root.contains(['+', '#']) {
            return bad(format!(
                "root {:?} must be non-empty, without wildcards, not starting with '$'",
                self.root
            ));
        }
        if self.max_value_bytes == 0 {
            return bad("max_value_bytes must be at least 1".into());
        }
        Ok(())
    }
}
