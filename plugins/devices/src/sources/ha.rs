//! Home Assistant MQTT discovery: `<prefix>/<component>/[<node_id>/]<object_id>/config`
//! (one entity) and `<prefix>/device/<object_id>/config` (a device with its components
//! in `cmps`), abbreviated keys and `~` included. The components read are light (default
//! and JSON schema), switch, sensor, binary_sensor, cover and climate (target and
//! current temperature, mode); entities of one device (`device.identifiers`) become one
//! device. Their state topics are subscribed as they are discovered; values go through
//! the entity's `value_template` (see `template`); availability follows
//! `availability_topic` or `availability` with `availability_mode`. This covers ESPHome,
//! Tasmota (SetOption19), Shelly and zwave-js-ui devices.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::template::Template;
use super::{online_payload, Description, Local, PlainCommand, Route, Update};
use crate::model::{slug, Property};

pub const SOURCE: &str = "homeassistant";

/// Most entities tracked (each has a few topics).
const MAX_ENTITIES: usize = 10_000;

/// Abbreviations used in discovery payloads, for the keys read here.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("avty", "availability"),
    ("avty_mode", "availability_mode"),
    ("avty_t", "availability_topic"),
    ("avty_tpl", "availability_template"),
    ("bri_cmd_t", "brightness_command_topic"),
    ("bri_scl", "brightness_scale"),
    ("bri_stat_t", "brightness_state_topic"),
    ("bri_val_tpl", "brightness_value_template"),
    ("clr_temp_cmd_t", "color_temp_command_topic"),
    ("clr_temp_stat_t", "color_temp_state_topic"),
    ("clr_temp_val_tpl", "color_temp_value_template"),
    ("cmd_t", "command_topic"),
    ("cmps", "components"),
    ("curr_temp_t", "current_temperature_topic"),
    ("curr_temp_tpl", "current_temperature_template"),
    ("dev", "device"),
    ("dev_cla", "device_class"),
    ("json_attr_t", "json_attributes_topic"),
    ("max_mirs", "max_mireds"),
    ("max_temp", "max_temp"),
    ("min_mirs", "min_mireds"),
    ("mode_cmd_t", "mode_command_topic"),
    ("mode_stat_t", "mode_state_topic"),
    ("mode_stat_tpl", "mode_state_template"),
    ("obj_id", "object_id"),
    ("p", "platform"),
    ("pl_avail", "payload_available"),
    ("pl_cls", "payload_close"),
    ("pl_not_avail", "payload_not_available"),
    ("pl_off", "payload_off"),
    ("pl_on", "payload_on"),
    ("pl_open", "payload_open"),
    ("pl_stop", "payload_stop"),
    ("pos_t", "position_topic"),
    ("pos_tpl", "position_template"),
    ("set_pos_t", "set_position_topic"),
    ("stat_off", "state_off"),
    ("stat_on", "state_on"),
    ("stat_t", "state_topic"),
    ("stat_val_tpl", "state_value_template"),
    ("t", "topic"),
    ("temp_cmd_t", "temperature_command_topic"),
    ("temp_stat_t", "temperature_state_topic"),
    ("temp_stat_tpl", "temperature_state_template"),
    ("uniq_id", "unique_id"),
    ("unit_of_meas", "unit_of_measurement"),
    ("val_tpl", "value_template"),
];

const DEVICE_ABBREVIATIONS: &[(&str, &str)] = &[
    ("ids", "identifiers"),
    ("cns", "connections"),
    ("mf", "manufacturer"),
    ("mdl", "model"),
    ("sw", "sw_version"),
];

/// One way an entity reports: a topic, a template, and the property it feeds (`None`:
/// a JSON object of properties, as a JSON-schema light's state).
#[derive(Debug, Clone)]
struct Reading {
    topic: String,
    template: Template,
    property: Option<String>,
    /// A binary property's state payloads and the property values they stand for.
    states: Option<[(String, Value); 2]>,
}

#[derive(Debug, Clone, Default)]
struct Entity {
    properties: BTreeMap<String, Property>,
    commands: BTreeMap<String, PlainCommand>,
    readings: Vec<Reading>,
    /// (topic, online payload, offline payload).
    availability: Vec<(String, String, String)>,
    mode: String,
}

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
    pub fn parse(&mut self, topic: &str, payload: &[u8]) -> (Vec<Update>, Vec<String>) {
        if let Some(rest) = topic
            .strip_prefix(&self.prefix)
            .and_then(|r| r.strip_prefix('/'))
        {
            if rest.ends_with("/config") {
                return self.config(topic, rest, payload);
            }
        }
        (self.state(topic, payload), Vec::new())
    }

    fn config(&mut self, topic: &str, rest: &str, payload: &[u8]) -> (Vec<Update>, Vec<String>) {
        let parts: Vec<&str> = rest.split('/').collect();
        let component = parts[0];
        if payload.is_empty() {
            return (self.remove(topic), Vec::new());
        }
        let Ok(Value::Object(raw)) = serde_json::from_slice::<Value>(payload) else {
            tracing::warn!(topic, "discovery config is not a JSON object; ignored");
            return (Vec::new(), Vec::new());
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
        let mut subscribe = Vec::new();
        for (key, platform, object, config) in entities {
            if self.configs.len() >= MAX_ENTITIES && !self.configs.contains_key(&key) {
                tracing::warn!("{MAX_ENTITIES} Home Assistant entities known; {key} ignored");
                continue;
            }
            match entity(&platform, &object, &config) {
                Ok(e) => {
                    let device_key = device_key(&config, &key);
                    subscribe.extend(self.add(&key, &device_key, &config, e));
                    updates.push(self.describe(&device_key));
                }
                Err(why) => {
                    if self.unsupported_logged.insert(key.clone()) {
                        tracing::warn!(entity = key, "Home Assistant entity not read: {why}");
                    }
                }
            }
        }
        (updates, subscribe)
    }

    /// Stores an entity; returns the topics newly read.
    fn add(
        &mut self,
        key: &str,
        device_key: &str,
        config: &Map<String, Value>,
        e: Entity,
    ) -> Vec<String> {
        let dev = &config.get("device").cloned().unwrap_or(Value::Null);
        let d = self.devices.entry(device_key.to_string()).or_default();
        let text = |v: &Value| v.as_str().map(str::to_string);
        d.name = text(&dev["name"])
            .or_else(|| text(&config["name"]))
            .unwrap_or_else(|| device_key.to_string());
        d.manufacturer = text(&dev["manufacturer"]);
        d.model = text(&dev["model"]);
        d.aliases = aliases(dev);
        let mut new = Vec::new();
        for t in e
            .readings
            .iter()
            .map(|r| &r.topic)
            .chain(e.availability.iter().map(|a| &a.0))
        {
            let readers = self.topics.entry(t.clone()).or_default();
            if readers.is_empty() {
                new.push(t.clone());
            }
            readers.insert(device_key.to_string());
        }
        d.entities.insert(key.to_string(), e);
        self.configs
            .insert(key.to_string(), (device_key.to_string(), key.to_string()));
        new
    }

    fn remove(&mut self, topic: &str) -> Vec<Update> {
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
            if d.entities.is_empty() {
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

/// A reading's values from one payload.
fn read(r: &Reading, payload: &[u8], out: &mut Map<String, Value>) {
    let Some(v) = r.template.render(payload) else {
        return;
    };
    match (&r.property, v) {
        (None, Value::Object(o)) => out.extend(o),
        (Some(p), v) => {
            let v = match &r.states {
                Some([(on_text, on), (off_text, off)]) => {
                    let text = super::plain(&v);
                    if text == *on_text {
                        on.clone()
                    } else if text == *off_text {
                        off.clone()
                    } else {
                        return;
                    }
                }
                None => v,
            };
            out.insert(p.clone(), v);
        }
        _ => {}
    }
}

/// The properties, commands, readings and availability of one entity.
fn entity(platform: &str, object: &str, c: &Map<String, Value>) -> Result<Entity, String> {
    let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    let tpl = |k: &str| match s(k) {
        Some(t) => Template::parse(&t),
        None => Ok(Template::value()),
    };
    let name = s("name").filter(|n| !n.is_empty());
    // Sensors are named after what they measure; controls after their entity name, or
    // the component's usual property names when the entity is the device itself.
    let base = name
        .as_deref()
        .map(slug)
        .or_else(|| s("device_class"))
        .unwrap_or_else(|| slug(object));
    let prefixed = |p: &str| match &name {
        Some(n) => format!("{}_{p}", slug(n)),
        None => p.to_string(),
    };
    let mut e = Entity {
        mode: s("availability_mode").unwrap_or_else(|| "latest".into()),
        ..Entity::default()
    };
    availability(c, &mut e);
    let on = s("payload_on").unwrap_or_else(|| "ON".into());
    let off = s("payload_off").unwrap_or_else(|| "OFF".into());
    let states = || {
        Some([
            (
                s("state_on").unwrap_or_else(|| on.clone()),
                Value::from(on.clone()),
            ),
            (
                s("state_off").unwrap_or_else(|| off.clone()),
                Value::from(off.clone()),
            ),
        ])
    };
    let reading = |e: &mut Entity,
                   topic: Option<String>,
                   template: Template,
                   property: Option<String>,
                   st| {
        if let Some(topic) = topic {
            e.readings.push(Reading {
                topic,
                template,
                property,
                states: st,
            });
        }
    };
    match platform {
        "sensor" | "binary_sensor" => {
            let p = if platform == "sensor" {
                let unit = s("unit_of_measurement");
                if unit.is_some() || s("device_class").is_some() {
                    Property::numeric(unit, None, None, false)
                } else {
                    Property::text(false)
                }
            } else {
                Property::binary(Value::from(on.clone()), Value::from(off.clone()), false)
            };
            e.properties.insert(base.clone(), p);
            let st = (platform == "binary_sensor").then(states).flatten();
            reading(
                &mut e,
                s("state_topic"),
                tpl("value_template")?,
                Some(base),
                st,
            );
        }
        "switch" => {
            let p = name.as_deref().map(slug).unwrap_or_else(|| "state".into());
            let settable = s("command_topic").is_some();
            e.properties.insert(
                p.clone(),
                Property::binary(Value::from(on.clone()), Value::from(off.clone()), settable),
            );
            if let Some(t) = s("command_topic") {
                e.commands.insert(p.clone(), PlainCommand::plain(t));
            }
            reading(
                &mut e,
                s("state_topic"),
                tpl("value_template")?,
                Some(p),
                states(),
            );
        }
        "light" => light(c, &mut e, &prefixed, &on, &off, &tpl)?,
        "cover" => {
            let (state, position) = (prefixed("state"), prefixed("position"));
            let values = ["payload_open", "payload_close", "payload_stop"]
                .iter()
                .zip(["OPEN", "CLOSE", "STOP"])
                .map(|(k, d)| Value::from(s(k).unwrap_or_else(|| d.into())))
                .collect();
            let settable = s("command_topic").is_some();
            e.properties.insert(
                state.clone(),
                Property {
                    kind: "enum".into(),
                    values,
                    settable,
                    ..Property::default()
                },
            );
            if let Some(t) = s("command_topic") {
                e.commands.insert(state.clone(), PlainCommand::plain(t));
            }
            reading(
                &mut e,
                s("state_topic"),
                tpl("value_template")?,
                Some(state),
                None,
            );
            if s("position_topic").is_some() || s("set_position_topic").is_some() {
                e.properties.insert(
                    position.clone(),
                    Property::numeric(
                        Some("%".into()),
                        Some(0.0),
                        Some(100.0),
                        s("set_position_topic").is_some(),
                    ),
                );
                if let Some(t) = s("set_position_topic") {
                    e.commands.insert(position.clone(), PlainCommand::plain(t));
                }
                reading(
                    &mut e,
                    s("position_topic"),
                    tpl("position_template")?,
                    Some(position),
                    None,
                );
            }
        }
        "climate" => {
            let num = |k: &str| c.get(k).and_then(Value::as_f64);
            let unit = Some(
                if s("temperature_unit").as_deref() == Some("F") {
                    "°F"
                } else {
                    "°C"
                }
                .to_string(),
            );
            let target = prefixed("target_temperature");
            e.properties.insert(
                target.clone(),
                Property::numeric(
                    unit.clone(),
                    num("min_temp"),
                    num("max_temp"),
                    s("temperature_command_topic").is_some(),
                ),
            );
            if let Some(t) = s("temperature_command_topic") {
                e.commands.insert(target.clone(), PlainCommand::plain(t));
            }
            reading(
                &mut e,
                s("temperature_state_topic"),
                tpl("temperature_state_template")?,
                Some(target),
                None,
            );
            if s("current_temperature_topic").is_some() {
                let current = prefixed("current_temperature");
                e.properties
                    .insert(current.clone(), Property::numeric(unit, None, None, false));
                reading(
                    &mut e,
                    s("current_temperature_topic"),
                    tpl("current_temperature_template")?,
                    Some(current),
                    None,
                );
            }
            if s("mode_command_topic").is_some() || s("mode_state_topic").is_some() {
                let mode = prefixed("mode");
                let values = c
                    .get("modes")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                e.properties.insert(
                    mode.clone(),
                    Property {
                        kind: "enum".into(),
                        values,
                        settable: s("mode_command_topic").is_some(),
                        ..Property::default()
                    },
                );
                if let Some(t) = s("mode_command_topic") {
                    e.commands.insert(mode.clone(), PlainCommand::plain(t));
                }
                reading(
                    &mut e,
                    s("mode_state_topic"),
                    tpl("mode_state_template")?,
                    Some(mode),
                    None,
                );
            }
        }
        other => return Err(format!("component {other:?} is not supported")),
    }
    if let Some(t) = s("json_attributes_topic") {
        e.readings.push(Reading {
            topic: t,
            template: Template::parse("{{ value_json }}")?,
            property: None,
            states: None,
        });
    }
    Ok(e)
}

fn light(
    c: &Map<String, Value>,
    e: &mut Entity,
    prefixed: &dyn Fn(&str) -> String,
    on: &str,
    off: &str,
    tpl: &dyn Fn(&str) -> Result<Template, String>,
) -> Result<(), String> {
    let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    let num = |k: &str, d: f64| c.get(k).and_then(Value::as_f64).unwrap_or(d);
    let (state, bri, ct) = (
        prefixed("state"),
        prefixed("brightness"),
        prefixed("color_temp"),
    );
    let settable = s("command_topic").is_some();
    if s("schema").as_deref() == Some("json") {
        e.properties.insert(
            state.clone(),
            Property::binary(Value::from("ON"), Value::from("OFF"), settable),
        );
        let mut keys = vec![(state, "state")];
        if c.get("brightness")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            e.properties.insert(
                bri.clone(),
                Property::numeric(
                    None,
                    Some(0.0),
                    Some(num("brightness_scale", 255.0)),
                    settable,
                ),
            );
            keys.push((bri, "brightness"));
        }
        if let Some(t) = s("command_topic") {
            for (p, key) in &keys {
                e.commands.insert(
                    p.clone(),
                    PlainCommand {
                        topic: t.clone(),
                        json_key: Some(key.to_string()),
                    },
                );
            }
        }
        if let Some(t) = s("state_topic") {
            // The state JSON's keys are the properties (renamed when the entity is named).
            let renamed = keys.iter().all(|(p, k)| p == k);
            let template = Template::parse("{{ value_json }}")?;
            if renamed {
                e.readings.push(Reading {
                    topic: t,
                    template,
                    property: None,
                    states: None,
                });
            } else {
                for (p, k) in keys {
                    e.readings.push(Reading {
                        topic: t.clone(),
                        template: Template::parse(&format!("{{{{ value_json.{k} }}}}"))?,
                        property: Some(p),
                        states: None,
                    });
                }
            }
        }
        return Ok(());
    }
    e.properties.insert(
        state.clone(),
        Property::binary(Value::from(on), Value::from(off), settable),
    );
    if let Some(t) = s("command_topic") {
        e.commands.insert(state.clone(), PlainCommand::plain(t));
    }
    if let Some(t) = s("state_topic") {
        let states = Some([
            (on.to_string(), Value::from(on)),
            (off.to_string(), Value::from(off)),
        ]);
        e.readings.push(Reading {
            topic: t,
            template: tpl("state_value_template")?,
            property: Some(state),
            states,
        });
    }
    if s("brightness_command_topic").is_some() || s("brightness_state_topic").is_some() {
        e.properties.insert(
            bri.clone(),
            Property::numeric(
                None,
                Some(0.0),
                Some(num("brightness_scale", 255.0)),
                s("brightness_command_topic").is_some(),
            ),
        );
        if let Some(t) = s("brightness_command_topic") {
            e.commands.insert(bri.clone(), PlainCommand::plain(t));
        }
        if let Some(t) = s("brightness_state_topic") {
            e.readings.push(Reading {
                topic: t,
                template: tpl("brightness_value_template")?,
                property: Some(bri),
                states: None,
            });
        }
    }
    if s("color_temp_command_topic").is_some() || s("color_temp_state_topic").is_some() {
        e.properties.insert(
            ct.clone(),
            Property::numeric(
                Some("mired".into()),
                Some(num("min_mireds", 153.0)),
                Some(num("max_mireds", 500.0)),
                s("color_temp_command_topic").is_some(),
            ),
        );
        if let Some(t) = s("color_temp_command_topic") {
            e.commands.insert(ct.clone(), PlainCommand::plain(t));
        }
        if let Some(t) = s("color_temp_state_topic") {
            e.readings.push(Reading {
                topic: t,
                template: tpl("color_temp_value_template")?,
                property: Some(ct),
                states: None,
            });
        }
    }
    Ok(())
}

fn availability(c: &Map<String, Value>, e: &mut Entity) {
    let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
    let on = s("payload_available").unwrap_or_else(|| "online".into());
    let off = s("payload_not_available").unwrap_or_else(|| "offline".into());
    if let Some(t) = s("availability_topic") {
        e.availability.push((t, on.clone(), off.clone()));
    }
    for a in c
        .get("availability")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |k: &str, abbr: &str| {
            a.get(k)
                .or_else(|| a.get(abbr))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if let Some(t) = field("topic", "t") {
            let t = c
                .get("~")
                .and_then(Value::as_str)
                .map_or(t.clone(), |base| tilde(&t, base));
            e.availability.push((
                t,
                field("payload_available", "pl_avail").unwrap_or(on.clone()),
                field("payload_not_available", "pl_not_avail").unwrap_or(off.clone()),
            ));
        }
    }
}

/// The device an entity belongs to: its first identifier, else the entity itself.
fn device_key(c: &Map<String, Value>, entity_key: &str) -> String {
    let ids = &c.get("device").cloned().unwrap_or(Value::Null)["identifiers"];
    let first = match ids {
        Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_string),
        Value::String(s) => Some(s.clone()),
        _ => None,
    };
    first
        .or_else(|| {
            c.get("unique_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| entity_key.to_string())
}

/// Physical identities: Zigbee2MQTT's `zigbee2mqtt_0x...` identifiers, MAC connections.
fn aliases(dev: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let ids = match &dev["identifiers"] {
        Value::Array(a) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    };
    for id in ids {
        if let Some(ieee) = id.strip_prefix("zigbee2mqtt_") {
            out.push(format!("ieee:{}", ieee.to_ascii_lowercase()));
        }
        out.push(format!("ha:{id}"));
    }
    for c in dev["connections"].as_array().into_iter().flatten() {
        if let (Some("mac"), Some(m)) = (c[0].as_str(), c[1].as_str()) {
            out.push(super::tasmota::mac_alias(m));
        }
    }
    out
}

/// Full key names, and `~` replaced in topics.
fn expand(raw: Map<String, Value>) -> Map<String, Value> {
    let full = |k: &str, table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(a, _)| *a == k)
            .map_or(k.to_string(), |(_, f)| f.to_string())
    };
    let base = raw.get("~").and_then(Value::as_str).map(str::to_string);
    raw.into_iter()
        .map(|(k, v)| {
            let k = full(&k, ABBREVIATIONS);
            let v = match (k.as_str(), v) {
                ("device", Value::Object(d)) => Value::Object(
                    d.into_iter()
                        .map(|(k, v)| (full(&k, DEVICE_ABBREVIATIONS), v))
                        .collect(),
                ),
                (k, Value::String(s)) if k.ends_with("_topic") => {
                    Value::String(base.as_deref().map_or(s.clone(), |b| tilde(&s, b)))
                }
                (_, v) => v,
            };
            (k, v)
        })
        .collect()
}

fn tilde(topic: &str, base: &str) -> String {
    if let Some(rest) = topic.strip_prefix('~') {
        format!("{base}{rest}")
    } else if let Some(rest) = topic.strip_suffix('~') {
        format!("{rest}{base}")
    } else {
        topic.to_string()
    }
}
