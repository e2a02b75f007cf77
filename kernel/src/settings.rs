//! `hcore.toml`: the broker, kernel and plugin settings in one file (see docs/CONFIG.md).

use std::path::{Path, PathBuf};

use hcore_broker::BrokerConfig;
use serde::Deserialize;

use crate::KernelConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// In-process plugins to load and start.
    pub plugins: Vec<String>,
    /// Use an external broker at this URL instead of embedding one.
    pub broker_url: Option<String>,
    pub broker_username: Option<String>,
    pub broker_password: Option<String>,
    /// CA certificate that signs an `mqtts://` external broker's certificate (default:
    /// the system's CAs).
    pub broker_ca: Option<PathBuf>,
    pub broker: BrokerConfig,
    pub kernel: KernelConfig,
    /// Settings of bundled plugins, by plugin name (`[plugin.devices]`); each plugin
    /// reads its own section.
    pub plugin: std::collections::BTreeMap<String, toml::Table>,
}

impl Settings {
    /// Reads a config file; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let settings: Settings = toml::from_str(&text).map_err(|e| {
            let where_what = hcore_broker::config::describe_toml_error(&text, &e);
            format!("invalid config {}: {where_what}", path.display())
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every ```toml block of a document parses as a complete `hcore.toml`.
    fn parse_blocks(doc: &str) -> Vec<Settings> {
        let mut out = Vec::new();
        let mut rest = doc;
        while let Some(start) = rest.find("```toml") {
            let body = &rest[start + 7..];
            let end = body.find("```").expect("closed code block");
            let settings: Settings = toml::from_str(&body[..end]).expect("example parses");
            settings.broker.validate().expect("valid broker settings");
            settings.kernel.validate().expect("valid kernel settings");
            out.push(settings);
            rest = &body[end + 3..];
        }
        out
    }

    #[test]
    fn documented_config_parses_and_states_the_defaults() {
        let examples = parse_blocks(include_str!("../../docs/CONFIG.md"));
        assert!(!examples.is_empty());
        let full = &examples[0];
        // The reference example spells out every default.
        assert_eq!(
            full.kernel,
            KernelConfig {
                data_dir: full.kernel.data_dir.clone(),
                ..KernelConfig::default()
            }
        );
        let mut broker = full.broker.clone();
        broker.listeners = BrokerConfig::default().listeners;
        assert_eq!(broker, BrokerConfig::default());
        // ... and names every key, so none is left undocumented.
        let doc = include_str!("../../docs/CONFIG.md");
        let example = &doc[doc.find("```toml").unwrap()..];
        let keys =
            |v: toml::Value| -> Vec<String> { v.as_table().unwrap().keys().cloned().collect() };
        for key in keys(toml::Value::try_from(KernelConfig::default()).unwrap()) {
            assert!(
                example.contains(&format!("\n{key} = ")),
                "[kernel] {key} is not in CONFIG.md"
            );
        }
        for key in keys(toml::Value::try_from(BrokerConfig::default()).unwrap()) {
            assert!(
                example.contains(&format!("\n{key} = ")) || key == "listeners" || key == "router",
                "[broker] {key} is not in CONFIG.md"
            );
        }
    }

    #[test]
    fn deploy_example_parses() {
        let text = include_str!("../../deploy/hcore.toml");
        let s: Settings = toml::from_str(text).expect("deploy/hcore.toml parses");
        s.broker.validate().unwrap();
    }

    #[test]
    fn errors_name_line_and_column() {
        let e =
            toml::from_str::<Settings>("plugins = [\"a\"]\n[broker]\nmax_packet_size = \"big\"\n")
                .unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
    }
}
