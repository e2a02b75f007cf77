//! Home Assistant discovery read entity by entity.

use super::super::{Description, Local, Route, Update};
use super::{Ha, Wiring, SOURCE};
use serde_json::json;
use serde_json::Value;

fn discover(ha: &mut Ha, topic: &str, config: Value) -> (Vec<Update>, Wiring) {
    ha.parse(topic, config.to_string().as_bytes())
}

fn described(updates: &[Update]) -> &Description {
    updates
        .iter()
        .find_map(|u| match u {
            Update::Describe(d) => Some(d),
            _ => None,
        })
        .expect("a description")
}

#[test]
fn cover_and_climate_entities() {
    let mut ha = Ha::new("homeassistant");
    let dev = json!({"ids": ["zwave-12"], "name": "Living room"});
    let (u, wiring) = discover(
        &mut ha,
        "homeassistant/cover/zwave-12/blind/config",
        json!({"name": "Blind", "cmd_t": "zw/12/cmd", "stat_t": "zw/12/state", "pos_t": "zw/12/pos",
               "set_pos_t": "zw/12/pos/set", "dev": dev}),
    );
    let d = described(&u);
    assert_eq!(
        d.properties["blind_state"].values,
        vec![json!("OPEN"), json!("CLOSE"), json!("STOP")]
    );
    assert!(d.properties["blind_position"].settable);
    let mut subscribe = wiring.subscribe.clone();
    subscribe.sort();
    assert_eq!(subscribe, ["zw/12/pos", "zw/12/state"]);
    let (u, _) = discover(
        &mut ha,
        "homeassistant/climate/zwave-12/thermostat/config",
        json!({"temp_cmd_t": "zw/12/setpoint/set", "temp_stat_t": "zw/12/setpoint", "curr_temp_t": "zw/12/temp",
               "mode_cmd_t": "zw/12/mode/set", "mode_stat_t": "zw/12/mode", "modes": ["off", "heat"],
               "min_temp": 7, "max_temp": 28, "dev": dev}),
    );
    let d = described(&u);
    assert_eq!(
        (
            d.properties["target_temperature"].min,
            d.properties["target_temperature"].max
        ),
        (Some(7.0), Some(28.0))
    );
    assert!(!d.properties["current_temperature"].settable);
    assert_eq!(
        d.properties["mode"].values,
        vec![json!("off"), json!("heat")]
    );
    assert!(
        d.properties.contains_key("blind_position"),
        "one device, both entities"
    );
    let Route::PerProperty { topics } = &d.route else {
        panic!()
    };
    assert_eq!(topics["blind_position"].topic, "zw/12/pos/set");
    // Readings: the setpoint, the mode and the JSON attributes.
    let (u, _) = ha.parse("zw/12/setpoint", b"21.5");
    assert_eq!(
        u,
        vec![Update::Report {
            local: Local::new(SOURCE, "zwave-12"),
            values: json!({"target_temperature": 21.5})
                .as_object()
                .unwrap()
                .clone()
        }]
    );
}

#[test]
fn unsupported_components_and_templates_are_skipped() {
    let mut ha = Ha::new("homeassistant");
    let (u, _) = discover(
        &mut ha,
        "homeassistant/fan/x/config",
        json!({"cmd_t": "x/set"}),
    );
    assert!(u.is_empty());
    let (u, _) = discover(
        &mut ha,
        "homeassistant/sensor/y/config",
        json!({"stat_t": "y/state", "val_tpl": "{{ value_json.t * 1.8 + 32 }}"}),
    );
    assert!(u.is_empty());
    // A binary sensor's state payloads become its values; attributes are reported.
    let (u, _) = discover(
        &mut ha,
        "homeassistant/binary_sensor/door/config",
        json!({"name": "Door", "stat_t": "door/state", "pl_on": "open", "pl_off": "closed", "json_attr_t": "door/attrs"}),
    );
    assert_eq!(
        described(&u).properties["door"].values,
        vec![json!("open"), json!("closed")]
    );
    let (u, _) = ha.parse("door/attrs", br#"{"battery": 80}"#);
    assert!(matches!(&u[0], Update::Report { values, .. } if values["battery"] == 80));
}

#[test]
fn configs_that_come_and_go_leave_no_topics_behind() {
    let mut ha = Ha::new("homeassistant");
    for i in 0..50 {
        let topic = format!("homeassistant/sensor/n{i}/t/config");
        let (_, w) = discover(
            &mut ha,
            &topic,
            serde_json::json!({"stat_t": format!("n{i}/t"), "unit_of_meas": "°C"}),
        );
        assert_eq!(w.subscribe, [format!("n{i}/t")]);
        let (u, w) = ha.parse(&topic, b"");
        assert!(matches!(&u[0], Update::Forget(_)));
        assert_eq!(w.unsubscribe, [format!("n{i}/t")]);
    }
    assert!(ha.topics.is_empty() && ha.devices.is_empty() && ha.configs.is_empty());
    // A config moved to another device leaves the old one, and the old topic with it.
    let topic = "homeassistant/switch/x/config";
    discover(
        &mut ha,
        topic,
        serde_json::json!({"stat_t": "a/state", "dev": {"ids": "dev-a"}}),
    );
    let (_, w) = discover(
        &mut ha,
        topic,
        serde_json::json!({"stat_t": "b/state", "dev": {"ids": "dev-b"}}),
    );
    assert_eq!(
        (w.subscribe, w.unsubscribe),
        (vec!["b/state".to_string()], vec!["a/state".to_string()])
    );
    assert!(
        !ha.devices.contains_key("dev-a"),
        "the old device had nothing else"
    );
    // A config with neither a name nor a device is read (no panic on missing keys).
    let (u, _) = discover(
        &mut ha,
        "homeassistant/sensor/bare/config",
        serde_json::json!({"stat_t": "bare/t"}),
    );
    assert!(matches!(&u[0], Update::Describe(_)));
}
