//! The broker's own message types.
//!
//! The public API speaks these types rather than rumqttd's, so a caller (the kernel, an
//! in-process plugin, a test) never depends on the routing engine's internals and the
//! conversions live in one place.

use bytes::Bytes;
use rumqttd::protocol::{LastWill, LastWillProperties, PublishProperties};
use serde::{Deserialize, Serialize};

/// MQTT quality of service.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS encoded in two bits of a packet, if valid.
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    pub(crate) fn from_rumqttd(q: rumqttd::protocol::QoS) -> QoS {
        match q {
            rumqttd::protocol::QoS::AtMostOnce => QoS::AtMostOnce,
            rumqttd::protocol::QoS::AtLeastOnce => QoS::AtLeastOnce,
            rumqttd::protocol::QoS::ExactlyOnce => QoS::ExactlyOnce,
        }
    }
}

/// The MQTT 5 publish properties the broker carries end to end.
///
/// Subscription identifiers and topic aliases are per-connection and handled by the edge;
/// they are not part of a message. (Serialized as part of persisted messages: a change
/// here is a change of the on-disk format, `persist::record::FORMAT`.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Properties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
}

impl Properties {
    /// True when no property is set (a v3.1.1 publish, or a v5 one without properties).
    pub fn is_empty(&self) -> bool {
        self.payload_format_indicator.is_none()
            && self.message_expiry_interval.is_none()
            && self.content_type.is_none()
            && self.response_topic.is_none()
            && self.correlation_data.is_none()
            && self.user_properties.is_empty()
    }

    /// The value of the first user property named `key`.
    pub fn user_property(&self, key: &str) -> Option<&str> {
        self.user_properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Replaces every user property named `key` with one holding `value`.
    pub fn set_user_property(&mut self, key: &str, value: &str) {
        self.user_properties.retain(|(k, _)| k != key);
        self.user_properties
            .push((key.to_string(), value.to_string()));
    }

    pub(crate) fn from_publish(p: PublishProperties) -> Properties {
        Properties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
        }
    }

    pub(crate) fn from_will(p: LastWillProperties) -> Properties {
        Properties {
            payload_format_indicator: p.payload_format_indicator,
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type,
            response_topic: p.response_topic,
            correlation_data: p.correlation_data,
            user_properties: p.user_properties,
        }
    }
}

/// One application message: what a publisher sends and a subscriber receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    pub properties: Option<Properties>,
}

impl Message {
    /// A QoS 0, non-retained message without properties.
    pub fn new(topic: impl Into<String>, payload: impl Into<Bytes>) -> Message {
        Message {
            topic: topic.into(),
            payload: payload.into(),
            qos: QoS::AtMostOnce,
            retain: false,
            properties: None,
        }
    }

    /// Builder: mark the message retained.
    pub fn retained(mut self, retain: bool) -> Message {
        self.retain = retain;
        self
    }

    /// Builder: set the QoS.
    pub fn with_qos(mut self, qos: QoS) -> Message {
        self.qos = qos;
        self
    }

    /// Builder: attach MQTT 5 properties.
    pub fn with_properties(mut self, properties: Properties) -> Message {
        self.properties = if properties.is_empty() {
            None
        } else {
            Some(properties)
        };
        self
    }

    /// The payload as UTF-8, if it is.
    pub fn payload_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }

    pub(crate) fn from_will(will: LastWill, props: Option<LastWillProperties>) -> Option<Message> {
        let topic = String::from_utf8(will.topic.to_vec()).ok()?;
        let properties = props.map(Properties::from_will).filter(|p| !p.is_empty());
        Some(Message {
            topic,
            payload: will.message,
            qos: QoS::from_rumqttd(will.qos),
            retain: will.retain,
            properties,
        })
    }
}

/// Which MQTT protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// MQTT 3.1.1 (protocol level 4).
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
    /// An in-process client: no wire protocol, full MQTT 5 message model.
    Local,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::V311 => "mqtt3.1.1",
            Protocol::V5 => "mqtt5",
            Protocol::Local => "in-process",
        })
    }
}
