//! Typed access to the kernel's state engine (`state.*` methods).

use serde_json::Value;

use crate::client::Client;
use crate::error::ClientError;
use crate::protocol::commands::{
    SetResult, StateDelete, StateExists, StateGet, StateItem, StateKey, StateList, StateSet,
};
use crate::protocol::{ErrorCode, StateRecord};

/// The state engine, through a client.
pub struct State<'a> {
    client: &'a Client,
}

/// `not_found` as `None`.
pub(crate) fn optional<T>(r: Result<T, ClientError>) -> Result<Option<T>, ClientError> {
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
        let key = StateKey::new(key)?;
        optional(self.client.request(StateGet { key }).await)
    }

    /// Writes `value`; an identical value changes nothing.
    pub async fn set(&self, key: &str, value: Value) -> Result<SetResult, ClientError> {
        let key = StateKey::new(key)?;
        self.client
            .request(StateSet {
                key,
                value,
                expected_version: None,
            })
            .await
    }

    /// Writes only if the current version is `expected_version` (0: must not exist);
    /// otherwise `conflict`.
    pub async fn set_if(
        &self,
        key: &str,
        value: Value,
        expected_version: u64,
    ) -> Result<SetResult, ClientError> {
        let key = StateKey::new(key)?;
        self.client
            .request(StateSet {
                key,
                value,
                expected_version: Some(expected_version),
            })
            .await
    }

    pub async fn delete(&self, key: &str) -> Result<bool, ClientError> {
        let key = StateKey::new(key)?;
        let r = self
            .client
            .request(StateDelete {
                key,
                expected_version: None,
            })
            .await?;
        Ok(r.deleted)
    }

    pub async fn exists(&self, key: &str) -> Result<bool, ClientError> {
        let key = StateKey::new(key)?;
        Ok(self.client.request(StateExists { key }).await?.exists)
    }

    /// Every key starting with `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<StateItem>, ClientError> {
        let prefix = (!prefix.is_empty()).then(|| prefix.to_string());
        Ok(self.client.request(StateList { prefix }).await?.items)
    }
}
