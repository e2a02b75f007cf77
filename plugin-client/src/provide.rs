//! Providing methods: a handler per `service.method`, listed in the manifest and
//! registered with the kernel, and reached the way the kernel's status says (`routing`):
//! through the method's shared subscription, or on this connection's delivery topic.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::client::{Announce, Client};
use crate::error::ClientError;
use crate::handlers::{Call, Handler};
use crate::protocol::commands::RegistryRegister;
use crate::protocol::{MethodName, RpcError};
use crate::transport::Message;

/// How long a (re)connecting provider waits for the retained kernel status before it
/// assumes the broker routes calls (no kernel yet: nobody would hand it calls anyway).
const STATUS_WAIT: Duration = Duration::from_secs(1);

impl Client {
    /// Provides `service.method`: subscribes to what brings its calls here, adds it to the
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
        self.watch_routing().await?;
        self.subscribe_method(&method).await?;
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

impl Client {
    /// The subscriptions that bring calls of `method` here while the broker routes them.
    fn shared_filter(&self, method: &MethodName) -> Option<String> {
        (!self.inner.routing.via_kernel()).then(|| self.topics().provider_filter(method))
    }

    /// Subscribes what brings calls of `method` here now.
    pub(crate) async fn subscribe_method(&self, method: &MethodName) -> Result<(), ClientError> {
        match self.shared_filter(method) {
            Some(f) => self.inner.link.subscribe(&f).await,
            None => Ok(()),
        }
    }

    /// From the first provided method on: watches the kernel status and subscribes the
    /// delivery topic, then waits (briefly) to learn how calls are routed.
    async fn watch_routing(&self) -> Result<(), ClientError> {
        match self.inner.routing.start_watching() {
            true => self.subscribe_routing().await,
            false => Ok(()),
        }
    }

    /// Subscribes the kernel status (every client but the kernel, on every connect) and,
    /// for a provider, its delivery topic; a provider then waits up to `STATUS_WAIT` for
    /// the (retained) kernel status, to know how calls reach it.
    pub(crate) async fn subscribe_routing(&self) -> Result<(), ClientError> {
        let inner = &self.inner;
        let before = inner.routing.seen();
        let arrived = inner.routing.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        if inner.routing.watching() {
            let delivery = inner.topics.delivery_filter(&inner.id, &inner.client_id);
            inner.link.subscribe_qos(&delivery, 0).await?;
        }
        inner.link.subscribe(&inner.topics.kernel_status()).await?;
        if inner.routing.watching() && inner.routing.seen() == before {
            let _ = tokio::time::timeout(STATUS_WAIT, arrived).await;
        }
        Ok(())
    }

    /// A kernel status arrived (in line): calls that depend on a kernel that is gone
    /// fail; when the routing changes, a provider's shared subscriptions follow.
    pub(crate) fn on_kernel_status(&self, m: &Message) {
        let change = self.inner.routing.on_kernel_status(&m.payload);
        if change.lost {
            self.inner.pending.kernel_lost();
        }
        let Some(via_kernel) = change.routing else {
            return;
        };
        if self.inner.routing.watching() && !self.inner.handlers.methods().is_empty() {
            tracing::info!(
                via_kernel,
                "the kernel changed how calls reach providers; resubscribing"
            );
            let client = self.clone();
            tokio::spawn(async move { client.follow_routing(via_kernel).await });
        }
    }

    async fn follow_routing(&self, via_kernel: bool) {
        for m in self.inner.handlers.methods() {
            let filter = self.topics().provider_filter(&m);
            let outcome = match via_kernel {
                true => self.inner.link.unsubscribe(&filter).await,
                false => self.inner.link.subscribe(&filter).await,
            };
            if let Err(e) = outcome {
                tracing::warn!(filter, error = %e, "cannot follow the kernel's call routing");
            }
        }
    }
}
