//! `storage.*`: JSON values in the caller's own namespace.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Command, Deleted, StorageKey};
use crate::protocol::messages::ErrorCode;

/// `storage.get`: the value at a key (`not_found` if absent). `namespace` reads another
/// client's namespace, for administrators only (`forbidden` otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageGet {
    pub key: StorageKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StorageValue {
    pub value: Value,
}

impl Command for StorageGet {
    const METHOD: &'static str = "storage.get";
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::NotFound, ErrorCode::Forbidden];
    type Result = StorageValue;
}

/// `storage.set`: writes durably (the reply means it is on disk).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSet {
    pub key: StorageKey,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub ok: bool,
}

impl Command for StorageSet {
    const METHOD: &'static str = "storage.set";
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::QuotaExceeded];
    type Result = Written;
}

/// `storage.delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageDelete {
    pub key: StorageKey,
}

impl Command for StorageDelete {
    const METHOD: &'static str = "storage.delete";
    const ERRORS: &'static [ErrorCode] = &[];
    type Result = Deleted;
}

/// `storage.list`: keys starting with `prefix`, in order, after `after`, at most `limit`
/// (default 100, at most 1000) and at most `max_page_bytes` of values per page.
/// `namespace`: as for `storage.get`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One entry of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub key: String,
    pub value: Value,
}

/// One page of `storage.list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub items: Vec<Item>,
    /// Pass as `after` for the next page; `null` at the end.
    pub next: Option<String>,
}

impl Command for StorageList {
    const METHOD: &'static str = "storage.list";
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::Forbidden];
    type Result = Page;
}

/// `storage.cas`: writes `value` (`null`: deletes) only if the current value equals
/// `expected` (`null`: absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageCas {
    pub key: StorageKey,
    #[serde(default)]
    pub expected: Option<Value>,
    #[serde(default)]
    pub value: Option<Value>,
}

/// The result of a compare-and-set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CasResult {
    pub swapped: bool,
    /// The value after the call (`null`: absent).
    pub current: Option<Value>,
}

impl Command for StorageCas {
    const METHOD: &'static str = "storage.cas";
    const ERRORS: &'static [ErrorCode] = &[ErrorCode::QuotaExceeded];
    type Result = CasResult;
}
