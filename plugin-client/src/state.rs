//! Typed access to the kernel's state engine (`state.*` methods).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::Client;
use crate::error::ClientError;
use crate::protocol::{ErrorCode, StateRecord};

/// The state engine, through a client.
pub struct State<'a> {
    client: &'a Client,
}

/// Result of a write.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SetResult {
    pub version: u64,
    pub changed: bool,
}

/// One entry of `list`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StateItem {
    pub key: String,
    pub value: Value,
    pub version: u64,
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(|e| ClientError::Decode(e.to_string()))
}

/// `not_found` as `None`.
pub(crate) fn optional(r: Result<Value, ClientError>) -> Result<Option<Value>, ClientError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Client {
    pub fn state(&self) -> State<'_> {
        State { client: self }
    }
}

impl State<'_> {
    /// The record at `key`, or `None`.
    pub async fn get(&self, key: &str) -> Result<Option<StateRecord>, ClientError> {
        optional(self.client.call("state.get", json!({ "key": key })).await)?
            .map(decode)
            .transpose()
    }

    /// Writes `value`; an identical value changes nothing.
    pub async fn set(&self, key: &str, value: Value) -> Result<SetResult, ClientError> {
        decode(
            self.client
                .call("state.set", json!({ "key": key, "value": value }))
                .await?,
        )
    }

    /// Writes only if the current version is `expected_version` (0: must not exist);
    /// otherwise `conflict`.
    pub async fn set_if(
        &self,
        key: &str,
        value: Value,
        expected_version: u64,
    ) -> Result<SetResult, ClientError> {
        let params = json!({ "key": key, "value": value, "expected_version": expected_version });
        decode(self.client.call("state.set", params).await?)
    }

    pub async fn delete(&self, key: &str) -> Result<bool, ClientError> {
        let v = self
            .client
            .call("state.delete", json!({ "key": key }))
            .await?;
        Ok(v["deleted"].as_bool().unwrap_or(false))
    }

    pub async fn exists(&self, key: &str) -> Result<bool, ClientError> {
        let v = self
            .client
            .call("state.exists", json!({ "key": key }))
            .await?;
        Ok(v["exists"].as_bool().unwrap_or(false))
    }

    /// Every key starting with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<StateItem>, ClientError> {
        let v = self
            .client
            .call("state.list", json!({ "prefix": prefix }))
            .await?;
        decode(v["items"].clone())
    }
}
