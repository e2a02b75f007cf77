//! One subscription: its filter and its MQTT 5 options.

use serde::{Deserialize, Serialize};

use crate::types::QoS;

/// MQTT 5 retain handling: when retained messages are sent for a new subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetainHandling {
    /// 0: on every SUBSCRIBE.
    OnSubscribe,
    /// 1: only when the subscription did not exist.
    OnNewSubscribe,
    /// 2: never.
    Never,
}

/// How a client subscribed to a filter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SubOptions {
    pub qos: QoS,
    /// MQTT 5: do not deliver the client's own publications.
    pub no_local: bool,
    /// MQTT 5: keep the retain flag of live messages as published.
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
    /// MQTT 5 subscription identifier.
    pub id: Option<usize>,
}

impl SubOptions {
    /// Options of a plain subscription at `qos`.
    pub fn at(qos: QoS) -> SubOptions {
        SubOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::OnSubscribe,
            id: None,
        }
    }
}

/// A filter as the client wrote it, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Filter {
    /// As written (`$share/g/a/+` or `a/+`): what UNSUBSCRIBE names.
    pub written: String,
    /// Without a `$share/<group>/` prefix: what topics are matched against.
    pub inner: String,
    /// The shared-subscription group, if any.
    pub group: Option<String>,
}
