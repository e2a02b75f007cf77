//! The devices plugin with a simulated Zigbee2MQTT 2.x bridge replaying its real
//! formats (tests/data/zigbee2mqtt.json): devices and properties, reports in state,
//! availability (its will too), commands through `devices.set` and the state command
//! topic, confirmed by the bridge's report.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hcore_tests::hub::start_with;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zigbee2mqtt_devices_are_listed_reported_and_commanded() {
    let z = data("zigbee2mqtt.json");
    let h = start_with(devices()).await;
    let admin = client(&h, "admin-test").await;
    let sim = client(&h, "z2m-sim").await;
    let mut events = admin.subscribe("hc/event/devices/#").await.unwrap();
    publish(&sim, "zigbee2mqtt/bridge/state", &z["bridge_state"], true).await;
    publish(
        &sim,
        "zigbee2mqtt/bridge/devices",
        &z["bridge_devices"],
        true,
    )
    .await;
    let lamp = until_device(&admin, "living_room_lamp", "described", |_| true).await;
    assert_eq!(lamp["name"], "living_room/lamp");
    assert_eq!(
        (lamp["manufacturer"].as_str(), lamp["model"].as_str()),
        (Some("IKEA"), Some("LED1545G12"))
    );
    assert_eq!(lamp["sources"], json!(["zigbee2mqtt"]));
    assert_eq!(lamp["availability"]["state"], "unknown");
    let p = &lamp["properties"];
    assert_eq!(
        p["state"],
        json!({"type": "binary", "values": ["ON", "OFF"], "settable": true})
    );
    assert_eq!(
        p["brightness"],
        json!({"type": "numeric", "min": 0.0, "max": 254.0, "settable": true})
    );
    assert_eq!(p["color_temp"]["unit"], "mired");
    assert_eq!(p["linkquality"]["settable"], false);
    let list = admin.call("devices.list", json!({})).await.unwrap();
    let ids: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["bedroom_sensor", "living_room_lamp"],
        "the coordinator is not a device"
    );
    let mut added = Vec::new();
    while added.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap();
        if e.topic == "hc/event/devices/added" {
            added.push(e.envelope.unwrap().data["id"].as_str().unwrap().to_string());
        }
    }
    added.sort();
    assert_eq!(added, ["bedroom_sensor", "living_room_lamp"]);

    // Reports land in state, with the source message as context.
    publish(
        &sim,
        "zigbee2mqtt/living_room/lamp",
        &z["lamp_state"],
        false,
    )
    .await;
    publish(
        &sim,
        "zigbee2mqtt/bedroom_sensor",
        &z["sensor_state"],
        false,
    )
    .await;
    let sensor = until_device(&admin, "bedroom_sensor", "reported", |d| {
        d["reported"]["temperature"] == 21.84
    })
    .await;
    assert_eq!(sensor["properties"]["temperature"]["unit"], "°C");
    assert_eq!(sensor["availability"]["state"], "online", "it spoke");
    let start = Instant::now();
    let record = loop {
        if let Some(r) = admin.state().get("devices/living_room_lamp").await.unwrap() {
            if r.value["reported"]["brightness"] == 120 {
                break r;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "devices/living_room_lamp never written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(record.value["availability"], "online");
    assert_eq!(record.source, "devices");
    assert_eq!(record.value["source_topic"], "zigbee2mqtt/living_room/lamp");

    // Availability: the JSON form, then the legacy plain one.
    publish(
        &sim,
        "zigbee2mqtt/living_room/lamp/availability",
        &z["availability_offline"],
        true,
    )
    .await;
    until_device(&admin, "living_room_lamp", "offline", |d| {
        d["availability"]["state"] == "offline"
    })
    .await;
    let refused = admin
        .call(
            "devices.set",
            json!({"id": "living_room_lamp", "properties": {"state": "ON"}}),
        )
        .await;
    assert!(refused.unwrap_err().to_string().contains("offline"));
    publish(
        &sim,
        "zigbee2mqtt/living_room/lamp/availability",
        &z["legacy_availability_online"],
        true,
    )
    .await;
    until_device(&admin, "living_room_lamp", "online", |d| {
        d["availability"]["state"] == "online"
    })
    .await;

    // devices.set: the bridge gets its native command; the reply says it was confirmed.
    let sets = sim.subscribe("zigbee2mqtt/#").await.unwrap();
    let mut seen = admin
        .subscribe("zigbee2mqtt/living_room/lamp/set")
        .await
        .unwrap();
    answer_like_z2m(sim.clone(), sets, z["lamp_state"].clone());
    let out = admin
        .call(
            "devices.set",
            json!({"id": "living_room_lamp", "properties": {"state": true, "brightness": 200}}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "done", "{out}");
    assert_eq!(out["confirmed"], true);
    assert_eq!(out["reported"]["state"], "ON");
    let (topic, payload) = next_json(&mut seen).await;
    assert_eq!(topic, "zigbee2mqtt/living_room/lamp/set");
    assert_eq!(payload, json!({"brightness": 200, "state": "ON"}));

    // The state command topic does the same; desired is not written as reported.
    admin
        .publish_raw(
            "hc/state/devices/living_room_lamp/set",
            r#"{"state": "OFF"}"#,
            false,
        )
        .await
        .unwrap();
    let (_, payload) = next_json(&mut seen).await;
    assert_eq!(payload, json!({"state": "OFF"}));
    until_device(&admin, "living_room_lamp", "reported off", |d| {
        d["reported"]["state"] == "OFF"
    })
    .await;

    // Refusals name the problem; a device that never answers is "sent", not "done".
    for (props, why) in [
        (json!({"brightness": 999}), "0 .. 254"),
        (json!({"linkquality": 3}), "only reports"),
        (json!({"colour": 3}), "no property colour"),
    ] {
        let e = admin
            .call(
                "devices.set",
                json!({"id": "living_room_lamp", "properties": props}),
            )
            .await
            .unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }
    let e = admin
        .call(
            "devices.set",
            json!({"id": "nope", "properties": {"state": "ON"}}),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not_found"), "{e}");
    // Zigbee2MQTT's will: when the bridge's connection dies, every Zigbee device is
    // offline (and says so in an event).
    let will = Some((
        "zigbee2mqtt/bridge/state".to_string(),
        br#"{"state":"offline"}"#.to_vec(),
    ));
    let bridge = hcore_tests::clients::raw(h.hub_addrs()[0], "zigbee2mqtt-bridge", will).await;
    bridge
        .client
        .publish(
            "zigbee2mqtt/bridge/state",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            true,
            r#"{"state":"online"}"#,
        )
        .await
        .unwrap();
    until_device(&admin, "bedroom_sensor", "online", |d| {
        d["availability"]["state"] == "online"
    })
    .await;
    drop(bridge);
    for id in ["living_room_lamp", "bedroom_sensor"] {
        until_device(&admin, id, "offline by the bridge's will", |d| {
            d["availability"]["state"] == "offline"
        })
        .await;
    }
    let start = Instant::now();
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .unwrap()
            .unwrap();
        let data = e.envelope.map(|env| env.data).unwrap_or_default();
        if e.topic == "hc/event/devices/availability"
            && data == json!({"id": "bedroom_sensor", "availability": "offline"})
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10));
    }
    publish(&sim, "zigbee2mqtt/bridge/devices", &json!([]), true).await;
    let list = loop {
        let l = admin.call("devices.list", json!({})).await.unwrap();
        if l["devices"].as_array().unwrap().is_empty() {
            break l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        list["devices"],
        json!([]),
        "removed from the bridge, removed here"
    );
}
