//! The integrations a device is seen through. Each source reads its ecosystem's topics
//! into `Update`s about devices it names locally (a Zigbee2MQTT friendly name, a Tasmota
//! topic, a Home Assistant discovery id), and knows how to say a desired change in the
//! device's own terms (`Route`). The registry maps local names to hcore devices.

pub mod ha;
pub mod tasmota;
pub mod template;
pub mod z2m;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{Property, Sent};

/// A device as one source names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Local {
    pub source: String,
    pub name: String,
}

impl Local {
    pub fn new(source: &str, name: &str) -> Local {
        Local {
            source: source.into(),
            name: name.into(),
        }
    }
}

/// What a source learnt from one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// A device and its properties (discovery).
    Describe(Description),
    /// Reported values.
    Report {
        local: Local,
        values: Map<String, Value>,
    },
    /// The device (or the bridge it hangs off) went online or offline.
    Availability { local: Local, online: bool },
    /// The source no longer has the device.
    Forget(Local),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    pub local: Local,
    /// The id to use if the device is new (a slug of its name).
    pub suggested_id: String,
    pub name: String,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub properties: BTreeMap<String, Property>,
    pub route: Route,
    /// Physical identities (`ieee:0x...`, `mac:aabbcc...`) shared by the sources that
    /// see the same device: the device appears once.
    pub aliases: Vec<String>,
}

/// How to command a device through one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Route {
    /// One JSON object of properties on a `/set` topic (Zigbee2MQTT).
    JsonSet { topic: String },
    /// A command topic per property (Tasmota `cmnd/<t>/POWER`, Home Assistant command
    /// topics): the value as plain text, or, for properties with a `json_key`, one JSON
    /// object per topic (a Home Assistant JSON-schema light).
    PerProperty {
        topics: BTreeMap<String, PlainCommand>,
    },
}

/// One property's command topic (binary values are already the device's payloads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlainCommand {
    pub topic: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_key: Option<String>,
}

impl PlainCommand {
    pub fn plain(topic: impl Into<String>) -> PlainCommand {
        PlainCommand {
            topic: topic.into(),
            json_key: None,
        }
    }
}

impl Route {
    /// Does this route reach every property in `props`?
    pub fn covers(&self, props: &Map<String, Value>) -> bool {
        match self {
            Route::JsonSet { .. } => true,
            Route::PerProperty { topics } => props.keys().all(|k| topics.contains_key(k)),
        }
    }

    /// The messages that ask the device for `props` (already checked and translated).
    pub fn command(&self, props: &Map<String, Value>) -> Vec<Sent> {
        match self {
            Route::JsonSet { topic } => vec![Sent {
                topic: topic.clone(),
                payload: Value::Object(props.clone()).to_string(),
            }],
            Route::PerProperty { topics } => {
                let mut plain = Vec::new();
                let mut json: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
                for (k, v) in props {
                    let Some(c) = topics.get(k) else { continue };
                    match &c.json_key {
                        Some(key) => {
                            json.entry(&c.topic)
                                .or_default()
                                .insert(key.clone(), v.clone());
                        }
                        None => plain.push(Sent {
                            topic: c.topic.clone(),
                            payload: self::plain(v),
                        }),
                    }
                }
                plain.extend(json.into_iter().map(|(topic, o)| Sent {
                    topic: topic.to_string(),
                    payload: Value::Object(o).to_string(),
                }));
                plain
            }
        }
    }
}

/// A value as plain text: strings bare, everything else as JSON.
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A payload as JSON if it parses, else as a string.
pub fn parse_value(payload: &[u8]) -> Value {
    serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).trim().to_string()))
}

/// `online`/`offline` in the forms the ecosystems use: `{"state": "online"}`, `online`,
/// `Online`, `true`.
pub fn online_payload(payload: &[u8], online: &str, offline: &str) -> Option<bool> {
    let v = parse_value(payload);
    let text = match &v {
        Value::Object(o) => o
            .get("state")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => return Some(*b),
        _ => return None,
    };
    if text.eq_ignore_ascii_case(online) {
        Some(true)
    } else if text.eq_ignore_ascii_case(offline) {
        Some(false)
    } else {
        None
    }
}

/// The sources the configuration turns on.
pub struct Sources {
    z2m: Option<z2m::Z2m>,
    ha: Option<ha::Ha>,
    tasmota: Option<tasmota::Tasmota>,
}

/// What the sources made of one message.
#[derive(Debug, Default)]
pub struct Parsed {
    pub updates: Vec<Update>,
    /// Topics discovery named that are not read yet.
    pub subscribe: Vec<String>,
    /// Topics no discovered entity reads any more.
    pub unsubscribe: Vec<String>,
}

impl Sources {
    pub fn new(config: &crate::config::DevicesConfig) -> Sources {
        Sources {
            z2m: (!config.zigbee2mqtt.is_empty()).then(|| z2m::Z2m::new(&config.zigbee2mqtt)),
            ha: (!config.homeassistant.is_empty()).then(|| ha::Ha::new(&config.homeassistant)),
            tasmota: config.tasmota.then(tasmota::Tasmota::default),
        }
    }

    /// Every topic filter the sources read from the start.
    pub fn filters(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(z) = &self.z2m {
            out.extend(z.filters());
        }
        if let Some(h) = &self.ha {
            out.extend(h.filters());
        }
        if let Some(t) = &self.tasmota {
            out.extend(t.filters());
        }
        out
    }

    /// Every source that reads `topic` gets the message.
    pub fn parse(&mut self, topic: &str, payload: &[u8]) -> Parsed {
        let mut out = Parsed::default();
        if let Some(z) = self.z2m.as_mut().filter(|z| z.owns(topic)) {
            out.updates.extend(z.parse(topic, payload));
        }
        if let Some(h) = self.ha.as_mut().filter(|h| h.owns(topic)) {
            let (updates, wiring) = h.parse(topic, payload);
            out.updates.extend(updates);
            out.subscribe = wiring.subscribe;
            out.unsubscribe = wiring.unsubscribe;
        }
        if let Some(t) = self.tasmota.as_mut().filter(|_| tasmota::owns(topic)) {
            out.updates.extend(t.parse(topic, payload));
        }
        out
    }
}
