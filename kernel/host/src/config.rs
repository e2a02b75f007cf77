//! The host's configuration file (TOML): how it reaches the hub, and the plugins it runs
//! (command, arguments, working directory, environment, credential, restart policy).
//!
//! ```toml
//! [host]
//! broker = "mqtt://hub.local:1884"
//! username = "pi-kitchen"
//! password_file = "/etc/hcore/pi-kitchen.pass"
//!
//! [[plugin]]
//! id = "weather"
//! command = "/opt/hcore/plugins/weather"
//! password_file = "/etc/hcore/weather.pass"
//! restart = "on-failure"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::backoff::{Backoff, Restart};
use crate::error::HostError;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    pub host: HostSection,
    #[serde(default, rename = "plugin")]
    pub plugins: Vec<PluginConfig>,
}

/// `[host]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    /// The hub's broker: `mqtt://host:port` or `mqtts://...` (no credentials here), or
    /// several cluster nodes, comma-separated (the host and its plugins fail over).
    pub broker: String,
    /// The host's user name on the hub: its identity. Without one (a loopback listener
    /// that allows anonymous clients) the identity is `id`.
    pub username: Option<String>,
    pub password: Option<String>,
    /// A file holding the password (first line); keeps it out of the config.
    pub password_file: Option<PathBuf>,
    /// Client id (default: the user name, else `hcore-host`).
    pub id: Option<String>,
    /// MQTT keep-alive of the host and of its plugins' connections, seconds (5..): a
    /// host or plugin cut off is offline on the hub after 1.5x this.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    /// After SIGTERM, how long a plugin has to exit before SIGKILL.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout_ms: u64,
    /// Output lines kept per plugin for `plugins.logs`.
    #[serde(default = "default_log_lines")]
    pub log_lines: usize,
    /// First and longest wait before restarting a failed plugin (doubling in between).
    #[serde(default = "default_restart_min")]
    pub restart_min_ms: u64,
    #[serde(default = "default_restart_max")]
    pub restart_max_ms: u64,
}

/// One `[[plugin]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The plugin's identity on the hub (its user name, its topics).
    pub id: String,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Working directory (default: the host's).
    pub cwd: Option<PathBuf>,
    /// Extra environment; the host also sets `HCORE_URL`, `HCORE_ID`,
    /// `HCORE_USERNAME` and `HCORE_PASSWORD`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The plugin's password on the hub (its user name is its id).
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// Or a client certificate (CN = its id) and key, on an `mqtts://` hub.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    #[serde(default)]
    pub restart: Restart,
    /// Start with the host (default true).
    #[serde(default = "yes")]
    pub autostart: bool,
}

fn default_keep_alive() -> u64 {
    30
}
fn default_stop_timeout() -> u64 {
    5_000
}
fn default_log_lines() -> usize {
    500
}
fn default_restart_min() -> u64 {
    1_000
}
fn default_restart_max() -> u64 {
    60_000
}
fn yes() -> bool {
    true
}

/// Most plugins one host runs (each is a process and a ring of lines).
pub const MAX_PLUGINS: usize = 64;

impl HostConfig {
    /// Reads and checks a config file; passwords in files are read now.
    pub fn load(path: &Path) -> Result<HostConfig, HostError> {
        let text = std::fs::read_to_string(path).map_err(|source| HostError::Read {
            path: path.into(),
            source,
        })?;
        let bad = |message: String| HostError::Config {
            path: path.into(),
            message,
        };
        let mut config: HostConfig = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        config.check().map_err(bad)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.host.password =
            read_secret(base, &config.host.password_file, &config.host.password)?;
        for p in &mut config.plugins {
            p.password = read_secret(base, &p.password_file, &p.password)?;
        }
        Ok(config)
    }

    /// Refuses what cannot work, naming the entry.
    pub fn check(&self) -> Result<(), String> {
        let h = &self.host;
        if !(5..=65_535).contains(&h.keep_alive_secs) {
            return Err("[host] keep_alive_secs must be 5 to 65535".into());
        }
        if h.restart_min_ms == 0 || h.restart_max_ms < h.restart_min_ms {
            return Err(
                "[host] restart_min_ms must be at least 1 and at most restart_max_ms".into(),
            );
        }
        if h.log_lines == 0 || h.log_lines > 100_000 {
            return Err("[host] log_lines must be 1 to 100000".into());
        }
        if self.plugins.len() > MAX_PLUGINS {
            return Err(format!("at most {MAX_PLUGINS} plugins per host"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &self.plugins {
            hcore_client::protocol::validate_id(&p.id).map_err(|e| format!("[[plugin]] {e}"))?;
            if !seen.insert(p.id.as_str()) {
                return Err(format!("[[plugin]] {} is listed twice", p.id));
            }
            if p.id == self.identity() {
                return Err(format!("[[plugin]] {} has the host's own identity", p.id));
            }
            if p.command.trim().is_empty() {
                return Err(format!("[[plugin]] {}: command is empty", p.id));
            }
            if p.cert.is_some() != p.key.is_some() {
                return Err(format!("[[plugin]] {}: cert and key go together", p.id));
            }
            if p.cert.is_some() && !self.host.broker.starts_with("mqtts://") {
                return Err(format!(
                    "[[plugin]] {}: a client certificate needs an mqtts:// broker",
                    p.id
                ));
            }
            if p.env.keys().any(|k| k.starts_with("HCORE_")) {
                return Err(format!(
                    "[[plugin]] {}: HCORE_* variables are set by the host",
                    p.id
                ));
            }
        }
        Ok(())
    }

    /// The host's identity on the hub.
    pub fn identity(&self) -> &str {
        self.host
            .username
            .as_deref()
            .or(self.host.id.as_deref())
            .unwrap_or("hcore-host")
    }

    pub fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.host.restart_min_ms),
            Duration::from_millis(self.host.restart_max_ms),
        )
    }
}

/// The secret in `file` (relative to the config's directory), else `inline`.
fn read_secret(
    base: &Path,
    file: &Option<PathBuf>,
    inline: &Option<String>,
) -> Result<Option<String>, HostError> {
    let Some(file) = file else {
        return Ok(inline.clone());
    };
    let path = base.join(file);
    let text = std::fs::read_to_string(&path).map_err(|source| HostError::Read { path, source })?;
    Ok(Some(text.lines().next().unwrap_or_default().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HostConfig, String> {
        let c: HostConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.check().map(|_| c)
    }

    #[test]
    fn a_full_config_and_its_defaults() {
        let c = parse(
            r#"
            [host]
            broker = "mqtt://hub:1884"
            username = "pi"
            [[plugin]]
            id = "weather"
            command = "./weather"
            args = ["--fast"]
            env = { RUST_LOG = "debug" }
            restart = "always"
            [[plugin]]
            id = "thermo"
            command = "python3"
            autostart = false
            "#,
        )
        .unwrap();
        assert_eq!(c.identity(), "pi");
        assert_eq!(c.host.keep_alive_secs, 30);
        assert_eq!(c.plugins[0].restart, Restart::Always);
        assert_eq!(c.plugins[1].restart, Restart::OnFailure);
        assert!(c.plugins[0].autostart && !c.plugins[1].autostart);
    }

    #[test]
    fn the_deploy_example_parses() {
        let c = parse(include_str!("../../../deploy/host.toml")).unwrap();
        assert_eq!(c.identity(), "pi-garden");
        assert_eq!(c.plugins.len(), 3);
        assert!(!c.plugins[2].autostart);
    }

    #[test]
    fn mistakes_are_refused_with_the_reason() {
        let base = "[host]\nbroker = \"mqtt://hub\"\n";
        for (extra, why) in [
            ("[[plugin]]\nid = \"a/b\"\ncommand = \"x\"\n", "may not contain"),
            ("[[plugin]]\nid = \"a\"\ncommand = \"x\"\n[[plugin]]\nid = \"a\"\ncommand = \"y\"\n", "twice"),
            ("[[plugin]]\nid = \"a\"\ncommand = \"x\"\nrestart = \"sometimes\"\n", "unknown variant"),
            ("[[plugin]]\nid = \"a\"\ncommand = \"x\"\nenv = { HCORE_URL = \"x\" }\n", "set by the host"),
            ("[[plugin]]\nid = \"a\"\ncommand = \"x\"\ncomand = \"y\"\n", "unknown field"),
            ("[[plugin]]\nid = \"hcore-host\"\ncommand = \"x\"\n", "host's own identity"),
            ("[[plugin]]\nid = \"a\"\ncommand = \"x\"\ncert = \"a.pem\"\n", "go together"),
            (
                "[[plugin]]\nid = \"a\"\ncommand = \"x\"\ncert = \"a.pem\"\nkey = \"a.key\"\n",
                "needs an mqtts://",
            ),
        ] {
            let e = parse(&format!("{base}{extra}")).unwrap_err();
            assert!(e.contains(why), "{extra}: {e}");
        }
        let e = parse("[host]\nbroker = \"x\"\nkeep_alive_secs = 1\n").unwrap_err();
        assert!(e.contains("keep_alive_secs"), "{e}");
    }
}
