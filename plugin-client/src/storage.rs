//! Typed access to the caller's storage namespace (`storage.*` methods). The namespace is
//! this client's id; there is no way to name another.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::Client;
use crate::error::ClientError;
use crate::state::{decode, optional};

/// This client's storage namespace.
pub struct Storage<'a> {
    client: &'a Client,
}

/// One page of `list`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Page {
    pub items: Vec<Item>,
    /// Pass as `after` for the next page; `None` at the end.
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Item {
    pub key: String,
    pub value: Value,
}

/// Result of a compare-and-set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CasResult {
    pub swapped: bool,
    pub current: Option<Value>,
}

impl Client {
    pub fn storage(&self) -> Storage<'_> {
        Storage { client: self }
    }
}

impl Storage<'_> {
    pub async fn get(&self, key: &str) -> Result<Option<Value>, ClientError> {
        Ok(
            optional(self.client.call("storage.get", json!({ "key": key })).await)?
                .map(|v| v["value"].clone()),
        )
    }

    /// Writes durably: when this returns, the value is on disk.
    pub async fn set(&self, key: &str, value: Value) -> Result<(), ClientError> {
        self.client
            .call("storage.set", json!({ "key": key, "value": value }))
            .await
            .map(|_| ())
    }

    pub async fn delete(&self, key: &str) -> Result<bool, ClientError> {
        let v = self
            .client
            .call("storage.delete", json!({ "key": key }))
            .await?;
        Ok(v["deleted"].as_bool().unwrap_or(false))
    }

    /// Keys starting with `prefix`, in order, `limit` per page, after key `after`.
    pub async fn list(
        &self,
        prefix: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page, ClientError> {
        let params = json!({ "prefix": prefix, "limit": limit, "after": after });
        decode(self.client.call("storage.list", params).await?)
    }

    /// Writes `value` (`None`: deletes) only if the current value equals `expected`
    /// (`None`: absent).
    pub async fn cas(
        &self,
        key: &str,
        expected: Option<Value>,
        value: Option<Value>,
    ) -> Result<CasResult, ClientError> {
        let params = json!({ "key": key, "expected": expected, "value": value });
        decode(self.client.call("storage.cas", params).await?)
    }
}
