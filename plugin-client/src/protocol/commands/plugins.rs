//! `plugins.*`: every plugin the kernel has seen, and the lifecycle of in-process ones.

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
    /// `plugins.start`: starts an in-process plugin; answers when it runs.
    PluginsStart,
    "plugins.start"
);
lifecycle!(
    /// `plugins.stop`: stops an in-process plugin; answers when it has stopped.
    PluginsStop,
    "plugins.stop"
);
lifecycle!(
    /// `plugins.restart`: stops, then starts an in-process plugin.
    PluginsRestart,
    "plugins.restart"
);
