//! Events and subscriptions: publishing envelopes under `<root>/event/<source>/...`, and
//! subscribing to any topic filter (protocol events arrive with their envelope decoded;
//! device topics such as `zigbee2mqtt/lamp` arrive with their payload untouched).

use serde_json::Value;

use crate::client::Client;
use crate::context::current_parent;
use crate::error::ClientError;
use crate::protocol::{validate_event_name, Envelope};
use crate::routes::{InlineHandler, Subscription};
use crate::transport::Outgoing;

impl Client {
    /// Subscribes to a topic filter; messages arrive on the returned subscription. When
    /// this returns the broker has accepted the subscription (a refusal is an error).
    pub async fn subscribe(&self, filter: &str) -> Result<Subscription, ClientError> {
        let subscription = self
            .inner
            .routes
            .queue(filter, self.inner.subscription_queue)?;
        if let Err(e) = self.inner.link.subscribe(filter).await {
            self.inner.routes.remove(filter);
            return Err(e);
        }
        Ok(subscription)
    }

    /// Subscribes with a handler called in line on the connection's task for every
    /// matching message (no queue, no task hop). It must not block; it may publish with
    /// `try_publish_message`.
    pub async fn subscribe_inline(
        &self,
        filter: &str,
        handler: InlineHandler,
    ) -> Result<(), ClientError> {
        self.inner.routes.inline(filter, handler)?;
        if let Err(e) = self.inner.link.subscribe(filter).await {
            self.inner.routes.remove(filter);
            return Err(e);
        }
        Ok(())
    }

    /// Ends every subscription made with `filter` and unsubscribes.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), ClientError> {
        self.inner.routes.remove(filter);
        self.inner.link.unsubscribe(filter).await
    }

    /// Publishes an event `<root>/event/<my id>/<name>`. Its parent is the request being
    /// handled by the current task, if any (see `with_parent`).
    pub async fn publish_event(&self, name: &str, data: Value) -> Result<Envelope, ClientError> {
        self.publish_event_with(name, data, current_parent()).await
    }

    /// Publishes an event caused by `parent` (an event, request or state change id).
    pub async fn publish_event_with(
        &self,
        name: &str,
        data: Value,
        parent: Option<String>,
    ) -> Result<Envelope, ClientError> {
        validate_event_name(name)?;
        let envelope = Envelope::new(self.id(), parent, data);
        let payload =
            serde_json::to_vec(&envelope).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.publish_message(Outgoing {
            topic: self.topics().event(self.id(), name),
            payload: payload.into(),
            qos: 1,
            retain: false,
            correlation: None,
        })
        .await?;
        Ok(envelope)
    }
}
