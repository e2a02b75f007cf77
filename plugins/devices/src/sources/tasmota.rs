//! Tasmota, native: its discovery (`tasmota/discovery/<mac>/config`, `.../sensors`),
//! `tele/<t>/LWT` (`Online`/`Offline`), `tele/<t>/STATE` (relays, dimmer),
//! `tele/<t>/SENSOR` (sensor readings, nested per sensor), `stat/<t>/POWER[n]` and
//! `stat/<t>/RESULT`; commands on `cmnd/<t>/POWER[n]` and `cmnd/<t>/Dimmer`. A device
//! without discovery appears when it first reports, with the relays it reports.
//! Devices with a custom full topic are supported through discovery only.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::{online_payload, parse_value, Description, Local, PlainCommand, Route, Update};
use crate::model::{slug, Property};

pub const SOURCE: &str = "tasmota";

/// Most Tasmota devices tracked.
const MAX_DEVICES: usize = 2000;

#[derive(Default)]
struct Known {
    name: Option<String>,
    model: Option<String>,
    mac: Option<String>,
    /// `cmnd/<t>/` unless discovery says otherwise.
    cmnd: String,
    online: String,
    offline: String,
    properties: BTreeMap<String, Property>,
}

#[derive(Default)]
pub struct Tasmota {
    devices: HashMap<String, Known>,
}

impl Tasmota {
    pub fn filters(&self) -> Vec<String> {
        [
            "tele/+/+",
            "stat/+/+",
            "tasmota/discovery/+/config",
            "tasmota/discovery/+/sensors",
        ]
        .map(String::from)
        .to_vec()
    }

    pub fn parse(&mut self, topic: &str, payload: &[u8]) -> Vec<Update> {
        let parts: Vec<&str> = topic.split('/').collect();
        match parts.as_slice() {
            ["tasmota", "discovery", _, "config"] => self.discovery(payload),
            ["tasmota", "discovery", _, "sensors"] => self.sensors_discovery(payload),
            ["tele", t, "LWT"] => {
                let k = self.known(t);
                let Some(k) = k else { return Vec::new() };
                online_payload(payload, &k.online, &k.offline)
                    .map(|online| Update::Availability {
                        local: Local::new(SOURCE, t),
                        online,
                    })
                    .into_iter()
                    .collect()
            }
            ["tele", t, "STATE"] | ["stat", t, "RESULT"] => self.report(t, payload, false),
            ["tele", t, "SENSOR"] => self.report(t, payload, true),
            ["stat", t, power] if power.starts_with("POWER") => {
                let mut values = Map::new();
                values.insert(power.to_ascii_lowercase(), parse_value(payload));
                self.with_described(t, values)
            }
            _ => Vec::new(),
        }
    }

    fn known(&mut self, t: &str) -> Option<&mut Known> {
        if !self.devices.contains_key(t) && self.devices.len() >= MAX_DEVICES {
            return None;
        }
        Some(self.devices.entry(t.to_string()).or_insert_with(|| Known {
            cmnd: format!("cmnd/{t}/"),
            online: "Online".into(),
            offline: "Offline".into(),
            ..Known::default()
        }))
    }

    fn report(&mut self, t: &str, payload: &[u8], sensors: bool) -> Vec<Update> {
        let Ok(Value::Object(o)) = serde_json::from_slice::<Value>(payload) else {
            return Vec::new();
        };
        let mut values = Map::new();
        if sensors {
            flatten_sensors(&o, &mut values);
        } else {
            for (k, v) in &o {
                if k.starts_with("POWER") || k == "Dimmer" {
                    values.insert(k.to_ascii_lowercase(), v.clone());
                }
            }
        }
        if values.is_empty() {
            return Vec::new();
        }
        self.with_described(t, values)
    }

    /// A report, preceded by a description when it shows properties not yet known.
    fn with_described(&mut self, t: &str, values: Map<String, Value>) -> Vec<Update> {
        let Some(k) = self.known(t) else {
            return Vec::new();
        };
        let mut new = false;
        for (name, v) in &values {
            if !k.properties.contains_key(name) {
                k.properties.insert(name.clone(), property_for(name, v));
                new = true;
            }
        }
        let mut out = Vec::new();
        if new {
            out.push(self.describe(t));
        }
        out.push(Update::Report {
            local: Local::new(SOURCE, t),
            values,
        });
        out
    }

    fn describe(&self, t: &str) -> Update {
        let k = &self.devices[t];
        let topics = k
            .properties
            .iter()
            .filter(|(_, p)| p.settable)
            .map(|(name, _)| {
                let command = if name == "dimmer" {
                    "Dimmer".to_string()
                } else {
                    name.to_ascii_uppercase()
                };
                (
                    name.clone(),
                    PlainCommand::plain(format!("{}{command}", k.cmnd)),
                )
            })
            .collect();
        let name = k.name.clone().unwrap_or_else(|| t.to_string());
        Update::Describe(Description {
            local: Local::new(SOURCE, t),
            suggested_id: slug(&name),
            name,
            manufacturer: Some("Tasmota".into()),
            model: k.model.clone(),
            properties: k.properties.clone(),
            route: Route::PerProperty { topics },
            aliases: k.mac.iter().map(|m| format!("mac:{m}")).collect(),
        })
    }

    fn discovery(&mut self, payload: &[u8]) -> Vec<Update> {
        let Ok(d) = serde_json::from_slice::<Value>(payload) else {
            return Vec::new();
        };
        let Some(t) = d["t"].as_str().map(str::to_string) else {
            return Vec::new();
        };
        let text = |v: &Value| v.as_str().map(str::to_string);
        let prefix = d["tp"][0].as_str().unwrap_or("cmnd");
        let full = d["ft"].as_str().unwrap_or("%prefix%/%topic%/");
        let relays: Vec<u64> = d["rl"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let Some(k) = self.known(&t) else {
            return Vec::new();
        };
        k.name = text(&d["fn"][0]).or_else(|| text(&d["dn"]));
        k.model = text(&d["md"]);
        k.mac = text(&d["mac"]).map(|m| normalize_mac(&m));
        k.cmnd = full.replace("%prefix%", prefix).replace("%topic%", &t);
        k.online = text(&d["onln"]).unwrap_or_else(|| "Online".into());
        k.offline = text(&d["ofln"]).unwrap_or_else(|| "Offline".into());
        let channels = relays.iter().filter(|r| **r > 0).count();
        for (i, kind) in relays.iter().enumerate().filter(|(_, r)| **r > 0) {
            let name = if channels == 1 {
                "power".to_string()
            } else {
                format!("power{}", i + 1)
            };
            k.properties
                .insert(name.clone(), property_for(&name, &Value::Null));
            // A light (2) with a dimmer.
            if *kind == 2 && d["lt_st"].as_u64().unwrap_or(0) >= 1 {
                k.properties
                    .insert("dimmer".into(), property_for("dimmer", &Value::Null));
            }
        }
        vec![self.describe(&t)]
    }

    fn sensors_discovery(&mut self, _payload: &[u8]) -> Vec<Update> {
        // The sensors' properties appear with their first `tele/<t>/SENSOR`.
        Vec::new()
    }
}

fn property_for(name: &str, v: &Value) -> Property {
    if name.starts_with("power") && !name.starts_with("power_") {
        return Property::binary(Value::from("ON"), Value::from("OFF"), true);
    }
    if name == "dimmer" {
        return Property::numeric(Some("%".into()), Some(0.0), Some(100.0), true);
    }
    if v.is_number() {
        return Property::numeric(unit_of(name), None, None, false);
    }
    Property::text(false)
}

fn unit_of(name: &str) -> Option<String> {
    let unit = match name {
        "temperature" => "°C",
        "humidity" => "%",
        "pressure" => "hPa",
        "energy_power" => "W",
        "energy_voltage" => "V",
        "energy_current" => "A",
        "energy_total" | "energy_today" | "energy_yesterday" => "kWh",
        _ => return None,
    };
    Some(unit.into())
}

/// `{"AM2301": {"Temperature": 22.3}, "ENERGY": {"Power": 12}}` ->
/// `temperature`, `energy_power` (the first sensor's field wins a name).
fn flatten_sensors(o: &Map<String, Value>, out: &mut Map<String, Value>) {
    for (sensor, fields) in o {
        let Value::Object(fields) = fields else {
            continue;
        };
        for (field, v) in fields {
            if !(v.is_number() || v.is_string()) {
                continue;
            }
            let name = if sensor == "ENERGY" {
                format!("energy_{}", field.to_ascii_lowercase())
            } else {
                field.to_ascii_lowercase()
            };
            out.entry(name).or_insert_with(|| v.clone());
        }
    }
}

fn normalize_mac(m: &str) -> String {
    m.chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Is `topic` one of Tasmota's?
pub fn owns(topic: &str) -> bool {
    topic.starts_with("tele/")
        || topic.starts_with("stat/")
        || topic.starts_with("tasmota/discovery/")
}

pub fn mac_alias(m: &str) -> String {
    format!("mac:{}", normalize_mac(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_device_without_discovery_appears_with_its_first_report() {
        let mut t = Tasmota::default();
        let u = t.parse("stat/plug2/POWER2", b"ON");
        let Update::Describe(d) = &u[0] else {
            panic!("{u:?}")
        };
        assert_eq!(
            (d.name.as_str(), d.suggested_id.as_str()),
            ("plug2", "plug2")
        );
        assert!(d.properties["power2"].settable);
        let Route::PerProperty { topics } = &d.route else {
            panic!()
        };
        assert_eq!(topics["power2"].topic, "cmnd/plug2/POWER2");
        assert!(matches!(&u[1], Update::Report { values, .. } if values["power2"] == "ON"));
        // The same properties again: a report alone.
        assert_eq!(
            t.parse("stat/plug2/RESULT", br#"{"POWER2":"OFF"}"#).len(),
            1
        );
        let u = t.parse(
            "tele/plug2/SENSOR",
            json!({"AM2301": {"Temperature": 21.3, "Humidity": 40}, "TempUnit": "C"})
                .to_string()
                .as_bytes(),
        );
        let Update::Describe(d) = &u[0] else {
            panic!("{u:?}")
        };
        assert_eq!(d.properties["temperature"].unit.as_deref(), Some("°C"));
        assert_eq!(
            t.parse("tele/plug2/LWT", b"Offline"),
            vec![Update::Availability {
                local: Local::new(SOURCE, "plug2"),
                online: false
            }]
        );
    }
}
