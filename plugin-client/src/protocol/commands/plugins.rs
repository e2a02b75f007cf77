//! `plugins.*`: every plugin the kernel has seen, and the lifecycle and logs of the ones
//! it manages (in-process plugins, and plugins run by a plugin host). A plugin host
//! serves the same commands as `<host>.start` etc., and reports what it runs with
//! `HostedReport`.

use serde::{Deserialize, Serialize};

use super::Command;
use crate::protocol::messages::ErrorCode;

/// `plugins.list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsList {}

/// One plugin as `plugins.list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub id: String,
    /// `online`/`offline` (remote) or the lifecycle state (in-process): `loaded`,
    /// `starting`, `running`, `stopping`, `stopped`, `failed`.
    pub state: String,
    pub online: bool,
    pub session: u64,
    /// `remote` or `in-process`.
    pub kind: String,
    pub version: String,
    pub services: Vec<String>,
    pub events: Vec<String>,
    pub restarts: u32,
    /// Why it failed, or what in its manifest could not be honoured.
    pub error: Option<String>,
    /// The plugin host that runs it (`kind` `hosted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// When its host starts it again (backing off after a failure), ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginList {
    pub plugins: Vec<PluginInfo>,
}

impl Command for PluginsList {
    const METHOD: &'static str = "plugins.list";
    const ERRORS: &'static [ErrorCode] = &[];
    type Result = PluginList;
}

/// The state a lifecycle call left the plugin in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginState {
    pub id: String,
    pub state: String,
}

/// `plugins.logs`: the last lines a managed plugin wrote (a plugin host keeps its
/// plugins' stdout and stderr; the hub keeps its in-process plugins' log events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsLogs {
    pub id: String,
    /// At most this many of the newest lines (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lines: Option<usize>,
}

/// One line a plugin wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When it was written, ms since the epoch.
    pub ts: u64,
    /// `stdout`, `stderr`, or a log level for in-process plugins.
    pub stream: String,
    pub line: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginLogs {
    pub id: String,
    pub lines: Vec<LogLine>,
    /// Lines dropped from the front of the ring since the plugin was first started.
    #[serde(default)]
    pub dropped: u64,
}

impl Command for PluginsLogs {
    const METHOD: &'static str = "plugins.logs";
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound];
    type Result = PluginLogs;
}

/// What a plugin host says about one plugin it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedPlugin {
    pub id: String,
    /// `starting`, `running`, `stopping`, `stopped`, `failed` (not restarted), or
    /// `backoff` (failed; restarted at `retry_at`).
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub restarts: u32,
    /// How its last run ended, with its last lines on stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
}

/// Retained on `<root>/plugin/<host>/hosted`: every plugin the host runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedReport {
    /// The host's connection session (as in its status).
    pub session: u64,
    pub plugins: Vec<HostedPlugin>,
}

macro_rules! lifecycle {
    ($(#[$doc:meta])* $name:ident, $method:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            pub id: String,
        }

        impl Command for $name {
            const METHOD: &'static str = $method;
            const ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound];
            type Result = PluginState;
        }
    };
}

lifecycle!(
    /// `plugins.start`: starts a managed plugin; answers when it runs.
    PluginsStart,
    "plugins.start"
);
lifecycle!(
    /// `plugins.stop`: stops a managed plugin; answers when it has stopped.
    PluginsStop,
    "plugins.stop"
);
lifecycle!(
    /// `plugins.restart`: stops, then starts a managed plugin.
    PluginsRestart,
    "plugins.restart"
);
