//! The devices plugin with Home Assistant MQTT discovery (ESPHome, a Shelly
//! device-based config, Tasmota SetOption19, Zigbee2MQTT's own discovery): entities of a
//! device become one device, and a device seen natively and through discovery is one.

mod common;

use common::*;
use hcore_tests::hub::start_with;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_discovery_devices_and_one_device_per_physical_device() {
    let ha = data("homeassistant.json");
    let z = data("zigbee2mqtt.json");
    let t = data("tasmota.json");
    let h = start_with(devices()).await;
    let admin = client(&h, "admin-test").await;
    let sim = client(&h, "ha-sim").await;
    for c in ha["configs"].as_array().unwrap() {
        publish(&sim, c[0].as_str().unwrap(), &c[1], true).await;
    }
    // ESPHome: a switch and a sensor of one node are one device.
    let garden = until_device(&admin, "garden", "both entities", |d| {
        d["properties"].get("soil_moisture").is_some()
    })
    .await;
    assert_eq!(
        (garden["manufacturer"].as_str(), garden["model"].as_str()),
        (Some("espressif"), Some("esp32dev"))
    );
    assert_eq!(
        garden["properties"]["pump"],
        json!({"type": "binary", "values": ["ON", "OFF"], "settable": true})
    );
    assert_eq!(garden["properties"]["soil_moisture"]["unit"], "%");
    assert!(
        garden["properties"].get("uptime").is_none(),
        "its template is not supported: {garden}"
    );
    publish(&sim, "garden/status", &ha["garden_status_online"], true).await;
    publish(
        &sim,
        "garden/switch/pump/state",
        &ha["pump_state_on"],
        false,
    )
    .await;
    publish(
        &sim,
        "garden/sensor/soil_moisture/state",
        &ha["moisture_state"],
        false,
    )
    .await;
    until_device(&admin, "garden", "reported", |d| {
        d["reported"]["soil_moisture"] == 41.5
            && d["reported"]["pump"] == "ON"
            && d["availability"]["state"] == "online"
    })
    .await;
    let commands = sim.subscribe("garden/switch/pump/command").await.unwrap();
    echo(sim.clone(), commands, "garden/switch/pump/state", |v| v);
    let out = admin
        .call(
            "devices.set",
            json!({"id": "garden", "properties": {"pump": false}}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "done", "{out}");
    assert_eq!(
        out["sent"],
        json!([{"topic": "garden/switch/pump/command", "payload": "OFF"}])
    );
    publish(&sim, "garden/status", &ha["garden_status_offline"], true).await;
    until_device(&admin, "garden", "offline", |d| {
        d["availability"]["state"] == "offline"
    })
    .await;

    // Device-based discovery with `~` and abbreviations: a JSON-schema light.
    until_device(&admin, "hall_dimmer", "described", |d| {
        d["properties"].get("power").is_some()
    })
    .await;
    publish(
        &sim,
        "shellyplus1pm-c4d8d5/online",
        &ha["shelly_online"],
        true,
    )
    .await;
    publish(
        &sim,
        "shellyplus1pm-c4d8d5/light/state",
        &ha["shelly_light_state"],
        false,
    )
    .await;
    publish(
        &sim,
        "shellyplus1pm-c4d8d5/status/switch:0",
        &ha["shelly_switch_status"],
        false,
    )
    .await;
    // (Two topics report it, in either order: wait for both.)
    let dimmer = until_device(&admin, "hall_dimmer", "reported", |d| {
        d["reported"]["brightness"] == 40 && !d["reported"]["power"].is_null()
    })
    .await;
    assert_eq!(dimmer["properties"]["brightness"]["max"], 100.0);
    assert_eq!(dimmer["reported"]["power"], 0.0);
    assert_eq!(dimmer["availability"]["state"], "online");
    let commands = sim
        .subscribe("shellyplus1pm-c4d8d5/light/set")
        .await
        .unwrap();
    echo(
        sim.clone(),
        commands,
        "shellyplus1pm-c4d8d5/light/state",
        |v| v,
    );
    let out = admin
        .call(
            "devices.set",
            json!({"id": "hall_dimmer", "properties": {"state": "ON", "brightness": 80}}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "done", "{out}");
    let sent: Value = serde_json::from_str(out["sent"][0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"state": "ON", "brightness": 80}));

    // Zigbee2MQTT's own topics and its Home Assistant discovery of the same lamp, and a
    // Tasmota plug natively and through discovery: each appears once.
    publish(
        &sim,
        "zigbee2mqtt/bridge/devices",
        &z["bridge_devices"],
        true,
    )
    .await;
    publish(
        &sim,
        t["discovery_topic"].as_str().unwrap(),
        &t["discovery"],
        true,
    )
    .await;
    publish(&sim, "tele/tasmota_B3C4D5/STATE", &t["tele_state"], false).await;
    let lamp = until_device(&admin, "living_room_lamp", "both sources", |d| {
        d["sources"] == json!(["zigbee2mqtt", "homeassistant"])
    })
    .await;
    assert_eq!(lamp["model"], "LED1545G12", "the native description wins");
    until_device(&admin, "desk_plug", "both sources", |d| {
        d["sources"] == json!(["tasmota", "homeassistant"])
    })
    .await;
    let list = admin.call("devices.list", json!({})).await.unwrap();
    let mut ids: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "bedroom_sensor",
            "desk_plug",
            "garden",
            "hall_dimmer",
            "living_room_lamp"
        ]
    );
    // Commands take the native route.
    let mut native = sim
        .subscribe("zigbee2mqtt/living_room/lamp/set")
        .await
        .unwrap();
    admin
        .call(
            "devices.set",
            json!({"id": "living_room_lamp", "properties": {"state": "ON"}, "timeout_ms": 100}),
        )
        .await
        .unwrap();
    let (_, payload) = next_json(&mut native).await;
    assert_eq!(payload, json!({"state": "ON"}));

    // A removed discovery config (empty retained payload) removes the entity.
    publish(
        &sim,
        "homeassistant/sensor/garden/soil_moisture/config",
        &json!(""),
        true,
    )
    .await;
    until_device(&admin, "garden", "sensor gone", |d| {
        d["properties"].get("soil_moisture").is_none()
    })
    .await;
}
