//! Events: publishing envelopes under `<root>/event/<source>/...` and subscribing to any
//! topic filter (protocol events arrive with their envelope decoded; device topics such
//! as `zigbee2mqtt/lamp` arrive with their payload untouched).

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::client::Client;
use crate::error::ClientError;
use crate::protocol::{validate_event_name, Envelope, Topics};
use crate::transport::{Message, Outgoing};

/// A message received on a subscription.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// The decoded envelope, for topics under `<root>/event/`.
    pub envelope: Option<Envelope>,
}

impl IncomingEvent {
    /// The payload parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.payload).ok()
    }

    /// The envelope's data, or the whole payload as JSON for other topics.
    pub fn data(&self) -> Option<Value> {
        match &self.envelope {
            Some(e) => Some(e.data.clone()),
            None => self.json(),
        }
    }
}

/// Messages matching one subscription, in arrival order.
pub struct Subscription {
    filter: String,
    rx: mpsc::UnboundedReceiver<IncomingEvent>,
}

impl Subscription {
    /// The next message; `None` once the client is closed.
    pub async fn next(&mut self) -> Option<IncomingEvent> {
        self.rx.recv().await
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }
}

pub(crate) struct EventSender {
    pub filter: String,
    matcher: String,
    event_prefix: String,
    tx: mpsc::UnboundedSender<IncomingEvent>,
}

impl EventSender {
    /// Delivers `m` if it matches this subscription.
    pub fn offer(&self, m: &Message) {
        if !rumqttc::v5::mqttbytes::matches(&m.topic, &self.matcher) {
            return;
        }
        let envelope = if m.topic.starts_with(&self.event_prefix) {
            serde_json::from_slice(&m.payload).ok()
        } else {
            None
        };
        let _ = self.tx.send(IncomingEvent {
            topic: m.topic.clone(),
            payload: m.payload.clone(),
            retain: m.retain,
            envelope,
        });
    }
}

pub(crate) fn subscription(filter: &str, topics: &Topics) -> (EventSender, Subscription) {
    let (tx, rx) = mpsc::unbounded_channel();
    // A shared subscription matches on its inner filter.
    let matcher = filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map_or(filter, |(_, inner)| inner)
        .to_string();
    let sender = EventSender {
        filter: filter.to_string(),
        matcher,
        event_prefix: format!("{}/event/", topics.root()),
        tx,
    };
    (
        sender,
        Subscription {
            filter: filter.to_string(),
            rx,
        },
    )
}

impl Client {
    /// Publishes an event `<root>/event/<my id>/<name>` with a fresh context.
    pub async fn publish_event(&self, name: &str, data: Value) -> Result<Envelope, ClientError> {
        self.publish_event_with(name, data, None).await
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
        self.inner
            .send(Outgoing {
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
