//! One type per kernel method, shared by the kernel (which parses its parameters into it),
//! the SDK (which sends it) and the CLI: the request's parameters, the method's name, the
//! error codes it can answer and the type of its result. `docs/PROTOCOL.md` lists the same
//! methods; `tests/protocol_doc.rs` checks that both say the same.
//!
//! Parameters refuse unknown fields, so a misspelt parameter is a `bad_request` naming the
//! ones the method accepts rather than a silently ignored option.

mod kernel;
mod keys;
mod logs;
mod plugins;
mod registry;
mod state;
mod storage;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::messages::ErrorCode;

pub use kernel::{KernelInfo, KernelInfoResult};
pub use keys::{StateKey, StorageKey};
pub use logs::{LogRing, DEFAULT_LOG_LINES, MAX_LINE_BYTES};
pub use plugins::{
    HostedPlugin, HostedReport, LogLine, PluginInfo, PluginList, PluginLogs, PluginState,
    PluginsList, PluginsLogs, PluginsRestart, PluginsStart, PluginsStop,
};
pub use registry::{
    Registered, RegistryList, RegistryRegister, RegistryUnregister, Services, Unregistered,
};
pub use state::{
    Deleted, Exists, SetResult, StateDelete, StateExists, StateGet, StateItem, StateItems,
    StateList, StateSet,
};
pub use storage::{
    CasResult, Item, Page, StorageCas, StorageDelete, StorageGet, StorageList, StorageSet,
    StorageValue, Written,
};

/// A kernel method's request parameters.
pub trait Command: Serialize + DeserializeOwned + Send + 'static {
    /// `service.method`.
    const METHOD: &'static str;
    /// The error codes this method answers for its own reasons (every call can also get
    /// `GENERIC_ERRORS`).
    const ERRORS: &'static [ErrorCode];
    /// What a successful call returns.
    type Result: Serialize + DeserializeOwned;
}

/// Codes any kernel method can answer: unreadable parameters, a request past its
/// deadline, a caller whose role may not call it, a kernel shutting down, a database
/// failure.
pub const GENERIC_ERRORS: [ErrorCode; 5] = [
    ErrorCode::BadRequest,
    ErrorCode::Timeout,
    ErrorCode::Forbidden,
    ErrorCode::Unavailable,
    ErrorCode::Internal,
];

macro_rules! kernel_methods {
    ($($command:ty),* $(,)?) => {
        /// Every kernel method: its name and the error codes it can answer for its own
        /// reasons.
        pub const KERNEL_METHODS: &[(&str, &[ErrorCode])] =
            &[$((<$command as Command>::METHOD, <$command as Command>::ERRORS)),*];
    };
}

kernel_methods!(
    StateGet,
    StateSet,
    StateDelete,
    StateExists,
    StateList,
    StorageGet,
    StorageSet,
    StorageDelete,
    StorageList,
    StorageCas,
    RegistryRegister,
    RegistryUnregister,
    RegistryList,
    PluginsList,
    PluginsStart,
    PluginsStop,
    PluginsRestart,
    PluginsLogs,
    KernelInfo,
);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_and_invalid_parameters_are_refused() {
        let e = serde_json::from_value::<StateSet>(
            json!({"key": "a", "value": 1, "expected_versoin": 2}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("expected_version"), "{e}");
        assert!(serde_json::from_value::<StateGet>(json!({"key": "a/+"})).is_err());
        assert!(serde_json::from_value::<StateGet>(json!({})).is_err());
        let ok: StateSet =
            serde_json::from_value(json!({"key": "a/b", "value": {"on": true}})).unwrap();
        assert_eq!(ok.key.as_str(), "a/b");
        assert!(serde_json::from_value::<KernelInfo>(json!({})).is_ok());
    }

    #[test]
    fn every_method_is_listed_once() {
        let mut names: Vec<&str> = KERNEL_METHODS.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), KERNEL_METHODS.len());
        for n in names {
            assert!(
                crate::protocol::MethodName::new(n).unwrap().is_kernel(),
                "{n}"
            );
        }
    }
}
