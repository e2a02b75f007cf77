//! Home Assistant MQTT discovery: `<prefix>/<component>/[<node_id>/]<object_id>/config`
//! (one entity) and `<prefix>/device/<object_id>/config` (a device with its components
//! in `cmps`), abbreviated keys and `~` included. The components read are light (default
//! and JSON schema), switch, sensor, binary_sensor, cover and climate (target and
//! current temperature, mode); entities of one device (`device.identifiers`) become one
//! device. Their state topics are subscribed as they are discovered; values go through
//! the entity's `value_template` (see `template`); availability follows
//! `availability_topic` or `availability` with `availability_mode`. This covers ESPHome,
//! Tasmota (SetOption19), Shelly and zwave-js-ui devices.

mod config;
mod entity;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::{online_payload, Description, Local, Route, Update};
use crate::model::slug;
use config::{aliases, device_key, expand};
use entity::{entity, read, Entity};

pub const SOURCE: &str = "homeassistant";

/// Topics discovery made worth reading, and topics no entity reads any more.
#[derive(Debug, Default)]
pub struct Wiring {
    pub subscribe: Vec<String>,
    pub unsubscribe: Vec<String>,
}

/// Most entities tracked (each has a few topics).
const MAX_ENTITIES: usize = 10_000;

#[derive(Debug, Default)]
struct HaDevice {
    name: String,
    manufacturer: Option<String>,
    model: Option<String>,
    aliases: Vec<String>,
    entities: BTreeMap<String, Entity>,
    /// Last availability payload seen per topic.
    seen: HashMap<String, bool>,
}

#[derive(Default)]
pub struct Ha {
    prefix: String,
    devices: BTreeMap<String, HaDevice>,
    /// Entity config topic -> (device key, entity key).
    configs: HashMap<String, (String, String)>,
    /// State and availability topics -> devices reading them.
    topics: HashMap<String, HashSet<String>>,
    unsupported_logged: HashSet<String>,
}

impl Ha {
    pub fn new(prefix: &str) -> Ha {
        Ha {
            prefix: prefix.trim_end_matches('/').to_string(),
            ..Ha::default()
        }
    }

    pub fn filters(&self) -> Vec<String> {
        vec![format!("{}/#", self.prefix)]
    }

    pub fn owns(&self, topic: &str) -> bool {
        topic
            .strip_prefix(&self.prefix)
            .is_some_and(|r| r.starts_with('/'))
            || self.topics.contains_key(topic)
    }

    /// Updates, and the topics to subscribe to that discovery named.
    pub fn parse(&mut self, topic: &str, payload: &[u8]) -> (Vec<Update>, Wiring) {
        if let Some(rest) = topic
            .strip_prefix(&self.prefix)
            .and_then(|r| r.strip_prefix('/'))
        {
            if rest.ends_with("/config") {
                return self.config(topic, rest, payload);
            }
        }
        (self.state(topic, payload), Wiring::default())
    }

    fn config(&mut self, topic: &str, rest: &str, payload: &[u8]) -> (Vec<Update>, Wiring) {
        let parts: Vec<&str> = rest.split('/').collect();
        let component = parts[0];
        if payload.is_empty() {
            let mut wiring = Wiring::default();
            return (self.remove(topic, &mut wiring), wiring);
        }
        let Ok(Value::Object(raw)) = serde_json::from_slice::<Value>(payload) else {
            tracing::warn!(topic, "discovery config is not a JSON object; ignored");
            return (Vec::new(), Wiring::default());
        };
        let mut c = expand(raw);
        let object = parts
            .get(parts.len().wrapping_sub(2))
            .copied()
            .unwrap_or("entity");
        let mut entities = Vec::new();
        if component == "device" {
            let shared: Map<String, Value> = c
                .iter()
                .filter(|(k, _)| *k != "components")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some(Value::Object(cmps)) = c.remove("components") {
                for (id, comp) in cmps {
                    let Value::Object(comp) = comp else { continue };
                    let mut merged = shared.clone();
                    merged.extend(comp);
                    // Again, for the component's `~` topics and abbreviations.
                    let merged = expand(merged);
                    let platform = merged
                        .get("platform")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    entities.push((format!("{topic}#{id}"), platform, id, merged));
                }
            }
        } else {
            entities.push((
                topic.to_string(),
                component.to_string(),
                object.to_string(),
                c,
            ));
        }
        let mut updates = Vec::new();
        let mut wiring = Wiring::default();
        for (key, platform, object, config) in entities {
            if self.configs.len() >= MAX_ENTITIES && !self.configs.contains_key(&key) {
                tracing::warn!("{MAX_ENTITIES} Home Assistant entities known; {key} ignored");
                continue;
            }
            match entity(&platform, &object, &config) {
                Ok(e) => {
                    let device_key = device_key(&config, &key);
                    let left = self.add(&key, &device_key, &config, e, &mut wiring);
                    updates.push(self.describe(&device_key));
                    if let Some(old) = left {
                        updates.push(match self.devices.contains_key(&old) {
                            true => self.describe(&old),
                            false => Update::Forget(Local::new(SOURCE, &old)),
                        });
                    }
                }
                Err(why) => {
                    // Logged once per entity; the memory of what was logged is bounded.
                    if self.unsupported_logged.len() >= MAX_ENTITIES {
                        self.unsupported_logged.clear();
                    }
                    if self.unsupported_logged.insert(key.clone()) {
                        tracing::warn!(entity = key, "Home Assistant entity not read: {why}");
                    }
                }
            }
        }
        (updates, wiring)
    }

    /// Stores an entity (and says which topics to read or stop reading); returns the
    /// device it moved from, if the config named another device before.
    fn add(
        &mut self,
        key: &str,
        device_key: &str,
        config: &Map<String, Value>,
        e: Entity,
        wiring: &mut Wiring,
    ) -> Option<String> {
        let dev = &config.get("device").cloned().unwrap_or(Value::Null);
        let d = self.devices.entry(device_key.to_string()).or_default();
        let text = |v: &Value| v.as_str().map(str::to_string);
        d.name = text(&dev["name"])
            .or_else(|| config.get("name").and_then(text))
            .unwrap_or_else(|| device_key.to_string());
        d.manufacturer = text(&dev["manufacturer"]);
        d.model = text(&dev["model"]);
        d.aliases = aliases(dev);
        d.entities.insert(key.to_string(), e);
        let moved = self
            .configs
            .insert(key.to_string(), (device_key.to_string(), key.to_string()))
            .map(|(old, _)| old)
            .filter(|old| old != device_key);
        self.rewire(device_key, wiring);
        // A config that names another device now leaves its old one.
        let old = moved?;
        let d = self.devices.get_mut(&old)?;
        d.entities.remove(key);
        let empty = d.entities.is_empty();
        self.rewire(&old, wiring);
        if empty {
            self.devices.remove(&old);
        }
        Some(old)
    }

    /// Makes the topic index say exactly which topics `device_key` reads now: topics it
    /// starts reading go to `wiring.subscribe`, topics nobody reads any more to
    /// `wiring.unsubscribe` (so configs that come and go leave nothing behind).
    fn rewire(&mut self, device_key: &str, wiring: &mut Wiring) {
        let reads: HashSet<String> = self
            .devices
            .get(device_key)
            .into_iter()
            .flat_map(|d| d.entities.values())
            .flat_map(|e| {
                let readings = e.readings.iter().map(|r| r.topic.clone());
                readings.chain(e.availability.iter().map(|a| a.0.clone()))
            })
            .collect();
        self.topics.retain(|topic, readers| {
            if !reads.contains(topic) && readers.remove(device_key) && readers.is_empty() {
                wiring.unsubscribe.push(topic.clone());
                return false;
            }
            true
        });
        for t in reads {
            let readers = self.topics.entry(t.clone()).or_default();
            if readers.is_empty() {
                wiring.subscribe.push(t);
            }
            readers.insert(device_key.to_string());
        }
    }

    fn remove(&mut self, topic: &str, wiring: &mut Wiring) -> Vec<Update> {
        let keys: Vec<String> = self
            .configs
            .keys()
            .filter(|k| *k == topic || k.starts_with(&format!("{topic}#")))
            .cloned()
            .collect();
        let mut out = Vec::new();
        for k in keys {
            let Some((device_key, _)) = self.configs.remove(&k) else {
                continue;
            };
            let Some(d) = self.devices.get_mut(&device_key) else {
                continue;
            };
            d.entities.remove(&k);
            let empty = d.entities.is_empty();
            self.rewire(&device_key, wiring);
            if empty {
                self.devices.remove(&device_key);
                out.push(Update::Forget(Local::new(SOURCE, &device_key)));
            } else {
                out.push(self.describe(&device_key));
            }
        }
        out
    }

    fn describe(&self, device_key: &str) -> Update {
        let d = &self.devices[device_key];
        let mut properties = BTreeMap::new();
        let mut topics = BTreeMap::new();
        for e in d.entities.values() {
            properties.extend(e.properties.clone());
            topics.extend(e.commands.clone());
        }
        Update::Describe(Description {
            local: Local::new(SOURCE, device_key),
            suggested_id: slug(&d.name),
            name: d.name.clone(),
            manufacturer: d.manufacturer.clone(),
            model: d.model.clone(),
            properties,
            route: Route::PerProperty { topics },
            aliases: d.aliases.clone(),
        })
    }

    /// A message on a state or availability topic.
    fn state(&mut self, topic: &str, payload: &[u8]) -> Vec<Update> {
        let Some(readers) = self.topics.get(topic) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for device_key in readers {
            let Some(d) = self.devices.get_mut(device_key) else {
                continue;
            };
            let local = Local::new(SOURCE, device_key);
            let mut values = Map::new();
            let mut mode = "latest".to_string();
            for e in d.entities.values() {
                for r in e.readings.iter().filter(|r| r.topic == topic) {
                    read(r, payload, &mut values);
                }
                for (t, on, off) in e.availability.iter().filter(|a| a.0 == topic) {
                    if let Some(online) = online_payload(payload, on, off) {
                        d.seen.insert(t.clone(), online);
                        mode = e.mode.clone();
                    }
                }
            }
            if !values.is_empty() {
                out.push(Update::Report {
                    local: local.clone(),
                    values,
                });
            }
            if d.seen.contains_key(topic) {
                let latest = d.seen[topic];
                let online = match mode.as_str() {
                    "all" => d.seen.values().all(|v| *v),
                    "any" => d.seen.values().any(|v| *v),
                    _ => latest,
                };
                out.push(Update::Availability { local, online });
            }
        }
        out
    }
}
