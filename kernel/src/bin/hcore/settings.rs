//! `hcore.toml`: the broker, kernel and plugin settings in one file (see docs/CONFIG.md).

use std::path::{Path, PathBuf};

use hcore_broker::BrokerConfig;
use hcore_kernel::KernelConfig;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// In-process plugins to load and start.
    pub plugins: Vec<String>,
    /// Use an external broker at this URL instead of embedding one.
    pub broker_url: Option<String>,
    pub broker_username: Option<String>,
    pub broker_password: Option<String>,
    pub broker: BrokerConfig,
    pub kernel: KernelConfig,
}

impl Settings {
    /// Reads a config file; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let settings: Settings =
            toml::from_str(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))?;
        settings
            .broker
            .validate()
            .map_err(|e| format!("invalid config {}: {e}", path.display()))?;
        Ok(settings)
    }
}

/// Where data lives when neither the config nor `--data-dir` says:
/// `$XDG_DATA_HOME/hcore`, else `~/.local/share/hcore`, else `./hcore-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("hcore");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/hcore");
    }
    PathBuf::from("hcore-data")
}
