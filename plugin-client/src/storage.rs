//! Typed access to the caller's storage namespace (`storage.*` methods). The namespace is
//! this client's identity; reading another one is for administrators (`storage_of`).

use serde_json::Value;

use crate::client::Client;
use crate::error::ClientError;
use crate::protocol::commands::{
    CasResult, Page, StorageCas, StorageDelete, StorageGet, StorageKey, StorageList, StorageSet,
};
use crate::state::optional;

/// A storage namespace, through a client.
pub struct Storage<'a> {
    client: &'a Client,
    /// `None`: the client's own.
    namespace: Option<String>,
}

impl Client {
    /// This client's own storage namespace.
    pub fn storage(&self) -> Storage<'_> {
        Storage {
            client: self,
            namespace: None,
        }
    }

    /// Another client's namespace, read-only, for administrators (others get `forbidden`).
    pub fn storage_of(&self, namespace: &str) -> Storage<'_> {
        Storage {
            client: self,
            namespace: Some(namespace.to_string()),
        }
    }
}

impl Storage<'_> {
    pub async fn get(&self, key: &str) -> Result<Option<Value>, ClientError> {
        let key = StorageKey::new(key)?;
        let namespace = self.namespace.clone();
        let r = self.client.request(StorageGet { key, namespace }).await;
        Ok(optional(r)?.map(|v| v.value))
    }

    /// Writes durably: when this returns, the value is on disk.
    pub async fn set(&self, key: &str, value: Value) -> Result<(), ClientError> {
        let key = StorageKey::new(key)?;
        self.client.request(StorageSet { key, value }).await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<bool, ClientError> {
        let key = StorageKey::new(key)?;
        Ok(self.client.request(StorageDelete { key }).await?.deleted)
    }

    /// Keys starting with `prefix`, in order, at most `limit` per page, after key `after`.
    pub async fn list(
        &self,
        prefix: &str,
        limit: usize,
        after: Option<&str>,
    ) -> Result<Page, ClientError> {
        self.client
            .request(StorageList {
                prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
                limit: Some(limit as u64),
                after: after.map(str::to_string),
                namespace: self.namespace.clone(),
            })
            .await
    }

    /// Writes `value` (`None`: deletes) only if the current value equals `expected`
    /// (`None`: absent).
    pub async fn cas(
        &self,
        key: &str,
        expected: Option<Value>,
        value: Option<Value>,
    ) -> Result<CasResult, ClientError> {
        let key = StorageKey::new(key)?;
        self.client
            .request(StorageCas {
                key,
                expected,
                value,
            })
            .await
    }
}
