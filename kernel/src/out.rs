//! What the kernel publishes, and through what: replies, retained records and events are
//! `Outgoing` messages handed to a `Publisher` (the kernel's client once it is connected;
//! a recorder in unit tests).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use hcore_client::protocol::{ReplyTo, RpcError};
use hcore_client::{Client, Outgoing};
use serde_json::Value;

/// Publishes one message; waits while the connection cannot take it.
pub(crate) trait Publisher: Send + Sync + 'static {
    fn publish(&self, m: Outgoing) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The kernel's connection, set when it first connects.
#[derive(Default, Clone)]
pub(crate) struct KernelLink(Arc<OnceLock<Client>>);

impl KernelLink {
    pub fn set(&self, client: &Client) {
        let _ = self.0.set(client.clone());
    }

    pub fn get(&self) -> Option<&Client> {
        self.0.get()
    }
}

impl Publisher for KernelLink {
    fn publish(&self, m: Outgoing) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let Some(client) = self.get() else {
                tracing::warn!(topic = %m.topic, "kernel not connected yet; message dropped");
                return;
            };
            // At once when the connection takes it, else wait for it.
            let Err(m) = client.try_publish_message(m) else {
                return;
            };
            if let Err(e) = client.publish_message(m).await {
                tracing::warn!(error = %e, "kernel publish failed");
            }
        })
    }
}

/// The reply to a call, at QoS 0 like every reply (see PROTOCOL.md): it matters only to
/// a caller waiting on a live connection, and on a clustered broker a QoS 1 publish is
/// first stored in the cluster (NATS: a JetStream stream), which stalls while the
/// cluster elects new leaders after losing a node.
pub(crate) fn reply_message(to: &ReplyTo, outcome: Result<Value, RpcError>) -> Outgoing {
    Outgoing {
        topic: to.topic.clone(),
        payload: to.payload(outcome).into(),
        qos: 0,
        retain: false,
        correlation: to.correlation.clone(),
    }
}

/// A retained message (an empty payload deletes the topic's retained message).
pub(crate) fn retained(topic: String, payload: Vec<u8>) -> Outgoing {
    Outgoing {
        topic,
        payload: payload.into(),
        qos: 1,
        retain: true,
        correlation: None,
    }
}
