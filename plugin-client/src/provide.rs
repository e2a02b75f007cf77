//! Providing methods: a handler per `service.method`, reached through the method's shared
//! subscription, listed in the manifest and registered with the kernel.

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::client::{Announce, Client};
use crate::error::ClientError;
use crate::handlers::{Call, Handler};
use crate::protocol::commands::RegistryRegister;
use crate::protocol::{MethodName, RpcError};

impl Client {
    /// Provides `service.method`: subscribes to its shared subscription, adds it to the
    /// manifest and registers it with the kernel. When this returns, calls are routed here.
    /// The handler runs in a task of its own per call, with the request as its context.
    pub async fn provide<F, Fut>(&self, method: &str, handler: F) -> Result<(), ClientError>
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        let method = MethodName::new(method)?;
        let handler: Handler = Arc::new(move |call| Box::pin(handler(call)));
        self.inner.handlers.insert(&method, handler);
        self.inner
            .link
            .subscribe(&self.topics().provider_filter(&method))
            .await?;
        let changed = {
            let mut m = self.lock_manifest();
            let new = !m.services.iter().any(|s| s == method.as_str());
            if new {
                m.services.push(method.to_string());
            }
            new
        };
        if changed && self.inner.announce == Announce::Plugin {
            self.publish_manifest().await?;
        }
        self.request(RegistryRegister {
            methods: vec![method],
        })
        .await?;
        Ok(())
    }
}
