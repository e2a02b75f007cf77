//! One Home Assistant entity: the properties, command topics, readings and
//! availability its discovery config describes, per component.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::super::template::Template;
use super::super::PlainCommand;
use crate::model::{slug, Property};

/// One way an entity reports: a topic, a template, and the property it feeds (`None`:
/// a JSON object of properties, as a JSON-schema light's state).
#[derive(Debug, Clone)]
pub(super) struct Reading {
    pub(super) topic: String,
    pub(super) template: Template,
    pub(super) property: Option<String>,
    /// A binary property's state payloads and the property values they stand for.
    pub(super) states: Option<[(String, Value); 2]>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Entity {
    pub(super) properties: BTreeMap<String, Property>,
    pub(super) commands: BTreeMap<String, PlainCommand>,
    pub(super) readings: Vec<Reading>,
    /// (topic, online payload, offline payload).
    pub(super) availability: Vec<(String, String, String)>,
    pub(super) mode: String,
}

/// A reading's values from one payload.
pub(super) fn read(r: &Reading, payload: &[u8], out: &mut Map<String, Value>) {
    let Some(v) = r.template.render(payload) else {
        return;
    };
    match (&r.property, v) {
        (None, Value::Object(o)) => out.extend(o),
        (Some(p), v) => {
            let v = match &r.states {
                Some([(on_text, on), (off_text, off)]) => {
                    let text = crate::sources::plain(&v);
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
pub(super) fn entity(
    platform: &str,
    object: &str,
    c: &Map<String, Value>,
) -> Result<Entity, String> {
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
                .map_or(t.clone(), |base| super::config::tilde(&t, base));
            e.availability.push((
                t,
                field("payload_available", "pl_avail").unwrap_or(on.clone()),
                field("payload_not_available", "pl_not_avail").unwrap_or(off.clone()),
            ));
        }
    }
}
