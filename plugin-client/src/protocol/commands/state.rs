//! `state.*`: small JSON values under keys, with versions.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Command, StateKey};
use crate::protocol::messages::{ErrorCode, StateRecord};

/// `state.get`: the record at a key (`not_found` if absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateGet {
    pub key: StateKey,
}

impl Command for StateGet {
    const METHOD: &'static str = "state.get";
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound];
    type Result = StateRecord;
}

/// `state.set`: writes a value; with `expected_version`, only if the current version is
/// that (0: the key must not exist), else `conflict`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSet {
    pub key: StateKey,
    pub value: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
}

/// The result of `state.set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetResult {
    pub version: u64,
    /// False when the value was already there (same version, no event).
    pub changed: bool,
}

impl Command for StateSet {
    const METHOD: &'static str = "state.set";
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::Conflict, ErrorCode::QuotaExceeded];
    type Result = SetResult;
}

/// `state.delete`: removes a key; with `expected_version`, only at that version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateDelete {
    pub key: StateKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
}

/// The result of a delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    pub deleted: bool,
}

impl Command for StateDelete {
    const METHOD: &'static str = "state.delete";
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::Conflict];
    type Result = Deleted;
}

/// `state.exists`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateExists {
    pub key: StateKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exists {
    pub exists: bool,
}

impl Command for StateExists {
    const METHOD: &'static str = "state.exists";
    const ERRORS: &'static [ErrorCode] = &[];
    type Result = Exists;
}

/// `state.list`: every key starting with `prefix` (all keys without one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// One entry of `state.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateItem {
    pub key: String,
    pub value: Value,
    pub version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateItems {
    pub items: Vec<StateItem>,
}

impl Command for StateList {
    const METHOD: &'static str = "state.list";
    const ERRORS: &'static [ErrorCode] = &[];
    type Result = StateItems;
}
