//! The device model (docs/PROTOCOL.md, "Devices") and the `devices.*` commands, shared by
//! the plugin and its callers (the `hcore devices` CLI): a device has an id, a name,
//! where it comes from, its availability and its properties (what they are, and which
//! can be set). What it reports lives in hcore state under `devices/<id>`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A device as `devices.list` and `devices.get` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The integrations it is seen through (`zigbee2mqtt`, `homeassistant`, `tasmota`),
    /// the one commands go through first.
    pub sources: Vec<String>,
    pub availability: Availability,
    /// When it last reported, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    pub properties: BTreeMap<String, Property>,
}

/// `online`, `offline` or `unknown` (not heard from since the plugin started), and since
/// when (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub state: String,
    pub since: u64,
}

impl Availability {
    pub fn unknown(now: u64) -> Availability {
        Availability {
            state: "unknown".into(),
            since: now,
        }
    }
}

/// What one property is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Property {
    /// `binary`, `numeric`, `enum` or `text`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The values of an `enum`; the on and off values of a `binary`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Value>,
    /// Can `devices.set` change it?
    pub settable: bool,
}

impl Property {
    pub fn binary(on: Value, off: Value, settable: bool) -> Property {
        Property {
            kind: "binary".into(),
            values: vec![on, off],
            settable,
            ..Property::default()
        }
    }

    pub fn numeric(
        unit: Option<String>,
        min: Option<f64>,
        max: Option<f64>,
        settable: bool,
    ) -> Property {
        Property {
            kind: "numeric".into(),
            unit,
            min,
            max,
            settable,
            ..Property::default()
        }
    }

    pub fn text(settable: bool) -> Property {
        Property {
            kind: "text".into(),
            settable,
            ..Property::default()
        }
    }

    /// The native value for a requested one, or why it cannot be set.
    pub fn check(&self, name: &str, v: &Value) -> Result<Value, String> {
        if !self.settable {
            return Err(format!("{name} cannot be set (the device only reports it)"));
        }
        match self.kind.as_str() {
            "binary" => {
                let (on, off) = (&self.values[0], &self.values[1]);
                let truthy = match v {
                    Value::Bool(b) => Some(*b),
                    Value::String(s) if s.eq_ignore_ascii_case("on") => Some(true),
                    Value::String(s) if s.eq_ignore_ascii_case("off") => Some(false),
                    _ if v == on => Some(true),
                    _ if v == off => Some(false),
                    Value::String(s) if s.eq_ignore_ascii_case("toggle") => {
                        return Ok(Value::String(s.to_uppercase()))
                    }
                    _ => None,
                };
                truthy
                    .map(|t| if t { on.clone() } else { off.clone() })
                    .ok_or_else(|| format!("{name} is on/off: true, false, {on} or {off}"))
            }
            "numeric" => {
                let n = v.as_f64().ok_or_else(|| format!("{name} is a number"))?;
                let below = self.min.is_some_and(|m| n < m);
                let above = self.max.is_some_and(|m| n > m);
                if below || above {
                    return Err(format!(
                        "{name} must be within {} .. {}",
                        self.min.map_or("-inf".into(), |m| m.to_string()),
                        self.max.map_or("inf".into(), |m| m.to_string())
                    ));
                }
                Ok(v.clone())
            }
            "enum" if !self.values.contains(v) => Err(format!(
                "{name} is one of {}",
                Value::Array(self.values.clone())
            )),
            _ => Ok(v.clone()),
        }
    }
}

/// The value published retained on `<root>/state/devices/<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// The last value the device reported for each property.
    pub reported: Map<String, Value>,
    pub availability: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<u64>,
    /// The topic of the message behind the latest report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_topic: Option<String>,
}

/// `devices.list {}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesList {}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceList {
    pub devices: Vec<Device>,
}

/// `devices.get {"id"}`: the device and what it reported.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesGet {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceWithState {
    #[serde(flatten)]
    pub device: Device,
    pub reported: Map<String, Value>,
}

/// `devices.set {"id", "properties", "timeout_ms"?}`: sends the device its native
/// command and waits (at most `timeout_ms`, default 5000) for a report that shows the
/// values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesSet {
    pub id: String,
    pub properties: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// What `devices.set` did: the native command, and whether the device confirmed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetOutcome {
    pub id: String,
    /// `done`: a report showed every value; `sent`: no such report within the timeout.
    pub status: String,
    pub confirmed: bool,
    /// Where the command went and what it said.
    pub sent: Vec<Sent>,
    pub reported: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sent {
    pub topic: String,
    pub payload: String,
}

/// A device id from a name: lower case, `[a-z0-9_-]`, other characters as `_`.
pub fn slug(name: &str) -> String {
    let s: String = name
        .trim()
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '_') => c,
            _ => '_',
        })
        .take(64)
        .collect();
    if s.is_empty() {
        "device".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_checked_and_translated() {
        let state = Property::binary(json!("ON"), json!("OFF"), true);
        assert_eq!(state.check("state", &json!(true)), Ok(json!("ON")));
        assert_eq!(state.check("state", &json!("off")), Ok(json!("OFF")));
        assert_eq!(state.check("state", &json!("toggle")), Ok(json!("TOGGLE")));
        assert!(state.check("state", &json!(3)).is_err());
        let bri = Property::numeric(None, Some(0.0), Some(254.0), true);
        assert!(bri
            .check("brightness", &json!(300))
            .unwrap_err()
            .contains("0 .. 254"));
        let temp = Property::numeric(Some("°C".into()), None, None, false);
        assert!(temp
            .check("temperature", &json!(20))
            .unwrap_err()
            .contains("only reports"));
        assert_eq!(slug("Living Room/Lamp 1"), "living_room_lamp_1");
    }
}
