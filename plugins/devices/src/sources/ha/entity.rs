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

/// A discovery config being read.
struct Config<'a> {
    c: &'a Map<String, Value>,
    /// The entity's name, if it has one (`null` or absent: it is the device itself).
    name: Option<String>,
}

impl Config<'_> {
    fn s(&self, k: &str) -> Option<String> {
        self.c.get(k).and_then(Value::as_str).map(str::to_string)
    }

    fn num(&self, k: &str) -> Option<f64> {
        self.c.get(k).and_then(Value::as_f64)
    }

    fn template(&self, k: &str) -> Result<Template, String> {
        match self.s(k) {
            Some(t) => Template::parse(&t),
            None => Ok(Template::value()),
        }
    }

    /// A component property's name: `p`, or `<entity name>_p` for a named entity.
    fn prefixed(&self, p: &str) -> String {
        match &self.name {
            Some(n) => format!("{}_{p}", slug(n)),
            None => p.to_string(),
        }
    }

    /// `payload_on`/`payload_off`, and the state payloads that stand for them.
    fn on_off(&self) -> (Value, Value, [(String, Value); 2]) {
        let on = self.s("payload_on").unwrap_or_else(|| "ON".into());
        let off = self.s("payload_off").unwrap_or_else(|| "OFF".into());
        let states = [
            (
                self.s("state_on").unwrap_or_else(|| on.clone()),
                Value::from(on.clone()),
            ),
            (
                self.s("state_off").unwrap_or_else(|| off.clone()),
                Value::from(off.clone()),
            ),
        ];
        (Value::from(on), Value::from(off), states)
    }
}

/// Where one property is commanded and read.
struct Wiring<'k> {
    command: &'k str,
    state: &'k str,
    template: &'k str,
    states: Option<[(String, Value); 2]>,
}

impl Wiring<'_> {
    fn new<'k>(command: &'k str, state: &'k str, template: &'k str) -> Wiring<'k> {
        Wiring {
            command,
            state,
            template,
            states: None,
        }
    }
}

impl Entity {
    /// A property, settable if the config names its command topic, read from its state
    /// topic if the config names one.
    fn control(
        &mut self,
        cfg: &Config,
        name: String,
        mut p: Property,
        w: Wiring,
    ) -> Result<(), String> {
        p.settable = cfg.s(w.command).is_some();
        self.properties.insert(name.clone(), p);
        if let Some(t) = cfg.s(w.command) {
            self.commands.insert(name.clone(), PlainCommand::plain(t));
        }
        if let Some(topic) = cfg.s(w.state) {
            let template = cfg.template(w.template)?;
            self.readings.push(Reading {
                topic,
                template,
                property: Some(name),
                states: w.states,
            });
        }
        Ok(())
    }
}

/// The properties, commands, readings and availability of one entity.
pub(super) fn entity(
    platform: &str,
    object: &str,
    c: &Map<String, Value>,
) -> Result<Entity, String> {
    let cfg = Config {
        c,
        name: c
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string),
    };
    let mut e = Entity {
        mode: cfg
            .s("availability_mode")
            .unwrap_or_else(|| "latest".into()),
        ..Entity::default()
    };
    availability(c, &mut e);
    match platform {
        "sensor" | "binary_sensor" => sensor(&cfg, platform, object, &mut e)?,
        "switch" => {
            let (on, off, states) = cfg.on_off();
            let name = cfg
                .name
                .as_deref()
                .map(slug)
                .unwrap_or_else(|| "state".into());
            let wiring = Wiring {
                states: Some(states),
                ..Wiring::new("command_topic", "state_topic", "value_template")
            };
            e.control(&cfg, name, Property::binary(on, off, false), wiring)?;
        }
        "light" if cfg.s("schema").as_deref() == Some("json") => json_light(&cfg, &mut e)?,
        "light" => light(&cfg, &mut e)?,
        "cover" => cover(&cfg, &mut e)?,
        "climate" => climate(&cfg, &mut e)?,
        other => return Err(format!("component {other:?} is not supported")),
    }
    if let Some(topic) = cfg.s("json_attributes_topic") {
        let template = Template::parse("{{ value_json }}")?;
        e.readings.push(Reading {
            topic,
            template,
            property: None,
            states: None,
        });
    }
    Ok(e)
}

/// Sensors are named after what they measure (the entity's name, its device class, or
/// its object id); they only report.
fn sensor(cfg: &Config, platform: &str, object: &str, e: &mut Entity) -> Result<(), String> {
    let name = cfg
        .name
        .as_deref()
        .map(slug)
        .or_else(|| cfg.s("device_class"))
        .unwrap_or_else(|| slug(object));
    let (on, off, states) = cfg.on_off();
    let (p, states) = match platform {
        "binary_sensor" => (Property::binary(on, off, false), Some(states)),
        _ if cfg.s("unit_of_measurement").is_some() || cfg.s("device_class").is_some() => (
            Property::numeric(cfg.s("unit_of_measurement"), None, None, false),
            None,
        ),
        _ => (Property::text(false), None),
    };
    e.control(
        cfg,
        name,
        p,
        Wiring {
            states,
            ..Wiring::new("", "state_topic", "value_template")
        },
    )
}

fn light(cfg: &Config, e: &mut Entity) -> Result<(), String> {
    let (on, off, _) = cfg.on_off();
    // A light's state topic carries the command payloads themselves.
    let states = Some([
        (super::super::plain(&on), on.clone()),
        (super::super::plain(&off), off.clone()),
    ]);
    let wiring = Wiring {
        states,
        ..Wiring::new("command_topic", "state_topic", "state_value_template")
    };
    e.control(
        cfg,
        cfg.prefixed("state"),
        Property::binary(on, off, false),
        wiring,
    )?;
    if cfg.s("brightness_command_topic").is_some() || cfg.s("brightness_state_topic").is_some() {
        let p = Property::numeric(
            None,
            Some(0.0),
            Some(cfg.num("brightness_scale").unwrap_or(255.0)),
            false,
        );
        let wiring = Wiring::new(
            "brightness_command_topic",
            "brightness_state_topic",
            "brightness_value_template",
        );
        e.control(cfg, cfg.prefixed("brightness"), p, wiring)?;
    }
    if cfg.s("color_temp_command_topic").is_some() || cfg.s("color_temp_state_topic").is_some() {
        let (min, max) = (
            cfg.num("min_mireds").unwrap_or(153.0),
            cfg.num("max_mireds").unwrap_or(500.0),
        );
        let p = Property::numeric(Some("mired".into()), Some(min), Some(max), false);
        let wiring = Wiring::new(
            "color_temp_command_topic",
            "color_temp_state_topic",
            "color_temp_value_template",
        );
        e.control(cfg, cfg.prefixed("color_temp"), p, wiring)?;
    }
    Ok(())
}

/// A JSON-schema light: one JSON object commands it, one reports its state.
fn json_light(cfg: &Config, e: &mut Entity) -> Result<(), String> {
    let settable = cfg.s("command_topic").is_some();
    let mut keys = vec![(cfg.prefixed("state"), "state")];
    e.properties.insert(
        keys[0].0.clone(),
        Property::binary(Value::from("ON"), Value::from("OFF"), settable),
    );
    if cfg
        .c
        .get("brightness")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        let max = cfg.num("brightness_scale").unwrap_or(255.0);
        let name = cfg.prefixed("brightness");
        e.properties.insert(
            name.clone(),
            Property::numeric(None, Some(0.0), Some(max), settable),
        );
        keys.push((name, "brightness"));
    }
    if let Some(topic) = cfg.s("command_topic") {
        for (p, key) in &keys {
            e.commands.insert(
                p.clone(),
                PlainCommand {
                    topic: topic.clone(),
                    json_key: Some(key.to_string()),
                },
            );
        }
    }
    let Some(topic) = cfg.s("state_topic") else {
        return Ok(());
    };
    // The state JSON's keys are the properties, unless the entity is named.
    if keys.iter().all(|(p, k)| p == k) {
        let template = Template::parse("{{ value_json }}")?;
        e.readings.push(Reading {
            topic,
            template,
            property: None,
            states: None,
        });
        return Ok(());
    }
    for (p, k) in keys {
        let template = Template::parse(&format!("{{{{ value_json.{k} }}}}"))?;
        e.readings.push(Reading {
            topic: topic.clone(),
            template,
            property: Some(p),
            states: None,
        });
    }
    Ok(())
}

fn cover(cfg: &Config, e: &mut Entity) -> Result<(), String> {
    let values = [
        ("payload_open", "OPEN"),
        ("payload_close", "CLOSE"),
        ("payload_stop", "STOP"),
    ]
    .iter()
    .map(|(k, d)| Value::from(cfg.s(k).unwrap_or_else(|| d.to_string())))
    .collect();
    let p = Property {
        kind: "enum".into(),
        values,
        ..Property::default()
    };
    e.control(
        cfg,
        cfg.prefixed("state"),
        p,
        Wiring::new("command_topic", "state_topic", "value_template"),
    )?;
    if cfg.s("position_topic").is_some() || cfg.s("set_position_topic").is_some() {
        let p = Property::numeric(Some("%".into()), Some(0.0), Some(100.0), false);
        let wiring = Wiring::new("set_position_topic", "position_topic", "position_template");
        e.control(cfg, cfg.prefixed("position"), p, wiring)?;
    }
    Ok(())
}

fn climate(cfg: &Config, e: &mut Entity) -> Result<(), String> {
    let unit = Some(
        if cfg.s("temperature_unit").as_deref() == Some("F") {
            "°F"
        } else {
            "°C"
        }
        .to_string(),
    );
    let target = Property::numeric(
        unit.clone(),
        cfg.num("min_temp"),
        cfg.num("max_temp"),
        false,
    );
    let wiring = Wiring::new(
        "temperature_command_topic",
        "temperature_state_topic",
        "temperature_state_template",
    );
    e.control(cfg, cfg.prefixed("target_temperature"), target, wiring)?;
    if cfg.s("current_temperature_topic").is_some() {
        let p = Property::numeric(unit, None, None, false);
        let wiring = Wiring::new(
            "",
            "current_temperature_topic",
            "current_temperature_template",
        );
        e.control(cfg, cfg.prefixed("current_temperature"), p, wiring)?;
    }
    if cfg.s("mode_command_topic").is_some() || cfg.s("mode_state_topic").is_some() {
        let values = cfg
            .c
            .get("modes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let p = Property {
            kind: "enum".into(),
            values,
            ..Property::default()
        };
        let wiring = Wiring::new(
            "mode_command_topic",
            "mode_state_topic",
            "mode_state_template",
        );
        e.control(cfg, cfg.prefixed("mode"), p, wiring)?;
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
