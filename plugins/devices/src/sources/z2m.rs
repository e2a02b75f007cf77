//! Zigbee2MQTT (1.x and 2.x): `<base>/bridge/devices` (the retained device list, each
//! with its definition's `exposes`), `<base>/bridge/state` (the bridge's will),
//! `<base>/<friendly_name>` (state JSON), `<base>/<friendly_name>/availability` (JSON
//! `{"state": "online"}` or the legacy plain `online`); commands go to
//! `<base>/<friendly_name>/set` as one JSON object.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use super::{online_payload, Description, Local, Route, Update};
use crate::model::{slug, Property};

pub const SOURCE: &str = "zigbee2mqtt";

/// Zigbee2MQTT's `access` bit for "can be set".
const ACCESS_SET: u64 = 0b010;

/// Most devices read from one device list.
const MAX_DEVICES: usize = 2000;

pub struct Z2m {
    base: String,
    /// Friendly names in the last device list.
    known: HashSet<String>,
}

impl Z2m {
    pub fn new(base: &str) -> Z2m {
        Z2m {
            base: base.trim_end_matches('/').to_string(),
            known: HashSet::new(),
        }
    }

    /// Is `topic` under the base topic?
    pub fn owns(&self, topic: &str) -> bool {
        topic
            .strip_prefix(&self.base)
            .is_some_and(|r| r.starts_with('/'))
    }

    /// What to subscribe to.
    pub fn filters(&self) -> Vec<String> {
        vec![format!("{}/#", self.base)]
    }

    pub fn parse(&mut self, topic: &str, payload: &[u8]) -> Vec<Update> {
        let Some(rest) = topic
            .strip_prefix(&self.base)
            .and_then(|r| r.strip_prefix('/'))
        else {
            return Vec::new();
        };
        match rest {
            "bridge/devices" => self.devices(payload),
            "bridge/state" => match online_payload(payload, "online", "offline") {
                Some(online) => self
                    .known
                    .iter()
                    .map(|n| Update::Availability {
                        local: Local::new(SOURCE, n),
                        online,
                    })
                    .collect(),
                None => Vec::new(),
            },
            r if r.starts_with("bridge/") => Vec::new(),
            r => {
                if let Some(name) = r.strip_suffix("/availability") {
                    return online_payload(payload, "online", "offline")
                        .map(|online| Update::Availability {
                            local: Local::new(SOURCE, name),
                            online,
                        })
                        .into_iter()
                        .collect();
                }
                // `<name>/set`, `<name>/get` and the like are commands, not reports.
                if !self.known.contains(r) {
                    return Vec::new();
                }
                match serde_json::from_slice::<Map<String, Value>>(payload) {
                    Ok(values) => vec![Update::Report {
                        local: Local::new(SOURCE, r),
                        values,
                    }],
                    Err(_) => Vec::new(),
                }
            }
        }
    }

    fn devices(&mut self, payload: &[u8]) -> Vec<Update> {
        let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(payload) else {
            tracing::warn!("{}/bridge/devices is not a JSON array; ignored", self.base);
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut now = HashSet::new();
        for d in list.iter().take(MAX_DEVICES) {
            if d["type"] == "Coordinator" || d["definition"].is_null() {
                continue;
            }
            let Some(name) = d["friendly_name"].as_str() else {
                continue;
            };
            now.insert(name.to_string());
            let mut properties = BTreeMap::new();
            if let Some(exposes) = d["definition"]["exposes"].as_array() {
                for e in exposes {
                    expose(e, &mut properties);
                }
            }
            let text = |v: &Value| v.as_str().map(str::to_string);
            out.push(Update::Describe(Description {
                local: Local::new(SOURCE, name),
                suggested_id: slug(name),
                name: name.to_string(),
                manufacturer: text(&d["definition"]["vendor"]).or_else(|| text(&d["manufacturer"])),
                model: text(&d["definition"]["model"]),
                properties,
                route: Route::JsonSet {
                    topic: format!("{}/{name}/set", self.base),
                },
                aliases: text(&d["ieee_address"])
                    .map(|a| vec![format!("ieee:{}", a.to_ascii_lowercase())])
                    .unwrap_or_default(),
            }));
        }
        for gone in self.known.difference(&now) {
            out.push(Update::Forget(Local::new(SOURCE, gone)));
        }
        self.known = now;
        out
    }
}

/// One entry of `exposes` (a generic one, or a composite like `light` whose `features`
/// are the properties).
fn expose(e: &Value, out: &mut BTreeMap<String, Property>) {
    if let Some(features) = e["features"].as_array() {
        for f in features {
            expose(f, out);
        }
        return;
    }
    let Some(name) = e["property"].as_str() else {
        return;
    };
    let settable = e["access"].as_u64().is_some_and(|a| a & ACCESS_SET != 0);
    let unit = e["unit"].as_str().map(str::to_string);
    let property = match e["type"].as_str() {
        Some("binary") => Property::binary(e["value_on"].clone(), e["value_off"].clone(), settable),
        Some("numeric") => Property::numeric(
            unit,
            e["value_min"].as_f64(),
            e["value_max"].as_f64(),
            settable,
        ),
        Some("enum") => Property {
            kind: "enum".into(),
            values: e["values"].as_array().cloned().unwrap_or_default(),
            settable,
            ..Property::default()
        },
        _ => Property::text(settable),
    };
    out.entry(name.to_string()).or_insert(property);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_bridge_going_offline_takes_its_devices_along() {
        let mut z = Z2m::new("zigbee2mqtt");
        let list = json!([{"friendly_name": "lamp", "ieee_address": "0x1", "definition": {"model": "m", "vendor": "v", "exposes": []}}]);
        z.parse("zigbee2mqtt/bridge/devices", list.to_string().as_bytes());
        let u = z.parse("zigbee2mqtt/bridge/state", b"offline");
        assert_eq!(
            u,
            vec![Update::Availability {
                local: Local::new(SOURCE, "lamp"),
                online: false
            }]
        );
        assert!(
            z.parse("zigbee2mqtt/lamp/set", br#"{"state":"ON"}"#)
                .is_empty(),
            "a command is not a report"
        );
        assert!(z
            .parse("zigbee2mqtt/unknown", br#"{"state":"ON"}"#)
            .is_empty());
    }
}
