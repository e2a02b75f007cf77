//! Reading a discovery config: abbreviated keys, `~` topics, the device it belongs to and
//! the device's physical identities.

use serde_json::{Map, Value};

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

/// The device an entity belongs to: its first identifier, else the entity itself.
pub(super) fn device_key(c: &Map<String, Value>, entity_key: &str) -> String {
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
pub(super) fn aliases(dev: &Value) -> Vec<String> {
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
            out.push(crate::sources::tasmota::mac_alias(m));
        }
    }
    out
}

/// Full key names, and `~` replaced in topics.
pub(super) fn expand(raw: Map<String, Value>) -> Map<String, Value> {
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

pub(super) fn tilde(topic: &str, base: &str) -> String {
    if let Some(rest) = topic.strip_prefix('~') {
        format!("{base}{rest}")
    } else if let Some(rest) = topic.strip_suffix('~') {
        format!("{rest}{base}")
    } else {
        topic.to_string()
    }
}
