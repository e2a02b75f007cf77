//! A message on its way through the broker, shared (one allocation) by every subscriber it
//! goes to, and what one subscriber gets of it.

use std::sync::Arc;
use std::time::Instant;

use crate::types::{Message, Properties, QoS};

/// What was published, when, and by which session.
#[derive(Debug)]
pub(crate) struct Publication {
    pub message: Message,
    /// When the broker received it (MQTT 5 message expiry counts from here).
    pub received: Instant,
    /// The publishing session (for no-local); 0 for the broker's own messages.
    pub origin: u64,
}

impl Publication {
    pub fn new(message: Message, origin: u64) -> Arc<Publication> {
        Arc::new(Publication {
            message,
            received: Instant::now(),
            origin,
        })
    }

    /// A message received earlier (restored from disk), from no session.
    pub fn received_at(message: Message, received: Instant) -> Arc<Publication> {
        Arc::new(Publication {
            message,
            received,
            origin: 0,
        })
    }

    /// The remaining MQTT 5 message expiry in seconds: `Ok(None)` if it never expires,
    /// `Err(())` once it has.
    pub fn remaining(&self) -> Result<Option<u32>, ()> {
        let Some(secs) = self
            .message
            .properties
            .as_ref()
            .and_then(|p| p.message_expiry_interval)
        else {
            return Ok(None);
        };
        let age = self.received.elapsed().as_secs();
        match u64::from(secs).checked_sub(age) {
            Some(left) if left > 0 => Ok(Some(left as u32)),
            _ => Err(()),
        }
    }
}

/// One subscriber's copy: the shared publication and how this subscriber gets it.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub publication: Arc<Publication>,
    /// min(published QoS, subscription QoS).
    pub qos: QoS,
    /// The retain flag as delivered (retained messages on subscribe; live ones only with
    /// retain-as-published).
    pub retain: bool,
    /// MQTT 5 subscription identifiers of the matching subscriptions.
    pub subscription_ids: Vec<usize>,
}

impl Delivery {
    /// Bytes it holds in a queue (for queue limits).
    pub fn size(&self) -> usize {
        let m = &self.publication.message;
        m.topic.len() + m.payload.len() + 32
    }

    /// The message as an in-process subscriber receives it.
    pub fn to_message(&self, remaining_expiry: Option<u32>) -> Message {
        let m = &self.publication.message;
        let mut properties = m.properties.clone();
        if let (Some(p), Some(left)) = (properties.as_mut(), remaining_expiry) {
            p.message_expiry_interval = Some(left);
        }
        Message {
            topic: m.topic.clone(),
            payload: m.payload.clone(),
            qos: self.qos,
            retain: self.retain,
            properties: properties.filter(|p: &Properties| !p.is_empty()),
        }
    }
}
