//! The devices plugin against simulated ecosystems replaying their real formats
//! (tests/data/*.json, with the documents they come from): devices appear with their
//! properties, what they report lands in state, availability follows their wills,
//! `devices.set` and the state command topic reach the device's own command topic and
//! the answer says whether the device confirmed it, and known devices survive a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hcore_client::{Client, ClientOptions, Subscription};
use hcore_devices_plugin::{DevicesConfig, DevicesPlugin};
use hcore_kernel::PluginFactory;
use hcore_tests::hub::{start_in, start_with, wait_registered, Harness};
use hcore_tests::TempDir;
use serde_json::{json, Value};

fn data(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn devices() -> Vec<(String, PluginFactory)> {
    let factory: PluginFactory =
        Arc::new(|| Box::new(DevicesPlugin::new(DevicesConfig::default())));
    vec![("devices".into(), factory)]
}

/// A client, once the devices plugin answers.
async fn client(h: &Harness, id: &str) -> Client {
    let c = Client::connect(&h.url(), ClientOptions::new(id).quiet())
        .await
        .unwrap();
    wait_registered(&c, "devices.set", "devices").await;
    let start = Instant::now();
    while c.call("devices.list", json!({})).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "devices.list never answered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c
}

async fn publish(sim: &Client, topic: &str, v: &Value, retain: bool) {
    let payload = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    sim.publish_raw(topic, payload.into_bytes(), retain)
        .await
        .unwrap();
}

/// Polls `f` on `devices.get <id>` until it holds.
async fn until_device(admin: &Client, id: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        if let Ok(d) = admin.call("devices.get", json!({ "id": id })).await {
            if f(&d) {
                return d;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{id}: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next_json(sub: &mut Subscription) -> (String, Value) {
    let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a command")
        .unwrap();
    let v = serde_json::from_slice(&m.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&m.payload).into_owned()));
    (m.topic, v)
}

/// Zigbee2MQTT as it behaves: applies a `/set` to the device and reports its new state.
fn answer_like_z2m(sim: Client, mut sets: Subscription, mut state: Value) {
    tokio::spawn(async move {
        while let Some(m) = sets.next().await {
            if !m.topic.ends_with("/set") {
                continue;
            }
            let name = m
                .topic
                .trim_start_matches("zigbee2mqtt/")
                .trim_end_matches("/set")
                .to_string();
            let Ok(Value::Object(changes)) = serde_json::from_slice::<Value>(&m.payload) else {
                continue;
            };
            for (k, v) in changes {
                state[k] = v;
            }
            publish(&sim, &format!("zigbee2mqtt/{name}"), &state, false).await;
        }
    });
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasmota_devices_and_restarts() {
    let t = data("tasmota.json");
    let h = start_with(devices()).await;
    let admin = client(&h, "admin-test").await;
    let sim = client(&h, "tasmota-sim").await;
    publish(
        &sim,
        t["discovery_topic"].as_str().unwrap(),
        &t["discovery"],
        true,
    )
    .await;
    // (Tasmota retains its LWT; here it is not, so that nothing speaks for the device
    // after the restart below.)
    publish(&sim, "tele/tasmota_B3C4D5/LWT", &t["lwt_online"], false).await;
    publish(&sim, "tele/tasmota_B3C4D5/STATE", &t["tele_state"], false).await;
    publish(&sim, "tele/tasmota_B3C4D5/SENSOR", &t["tele_sensor"], false).await;
    let plug = until_device(&admin, "desk_plug", "reported", |d| {
        d["reported"]["energy_power"] == 37
    })
    .await;
    assert_eq!(plug["model"], "Sonoff S26");
    assert_eq!(plug["properties"]["power"]["settable"], true);
    assert_eq!(plug["properties"]["energy_power"]["unit"], "W");
    assert_eq!(plug["reported"]["power"], "OFF");
    assert_eq!(plug["availability"]["state"], "online");

    // A command, answered the way Tasmota answers.
    let mut cmnd = sim.subscribe("cmnd/tasmota_B3C4D5/#").await.unwrap();
    let sim2 = sim.clone();
    let answer = tokio::spawn(async move {
        let (topic, payload) = next_json(&mut cmnd).await;
        publish(
            &sim2,
            "stat/tasmota_B3C4D5/RESULT",
            &json!({ "POWER": payload }),
            false,
        )
        .await;
        publish(&sim2, "stat/tasmota_B3C4D5/POWER", &payload, false).await;
        (topic, payload)
    });
    let out = admin
        .call(
            "devices.set",
            json!({"id": "desk_plug", "properties": {"power": "on"}}),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "done", "{out}");
    assert_eq!(
        answer.await.unwrap(),
        ("cmnd/tasmota_B3C4D5/POWER".to_string(), json!("ON"))
    );

    // The will: offline.
    publish(&sim, "tele/tasmota_B3C4D5/LWT", &t["lwt_offline"], false).await;
    until_device(&admin, "desk_plug", "offline", |d| {
        d["availability"]["state"] == "offline"
    })
    .await;
    drop((admin, sim));

    // After a restart it is still known, availability unknown until it speaks.
    let dir: TempDir = h.stop().await;
    let h = start_in(dir, devices()).await;
    let admin = client(&h, "admin-test").await;
    let list = admin.call("devices.list", json!({})).await.unwrap();
    let plug = &list["devices"][0];
    assert_eq!(plug["id"], "desk_plug");
    assert_eq!(plug["availability"]["state"], "unknown");
    assert_eq!(plug["properties"]["power"]["settable"], true);
}

/// A device that answers commands by reporting on a state topic what it was told.
fn echo(sim: Client, mut commands: Subscription, to: &'static str, translate: fn(Value) -> Value) {
    tokio::spawn(async move {
        while let Some(m) = commands.next().await {
            let v = serde_json::from_slice(&m.payload).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&m.payload).into_owned())
            });
            publish(&sim, to, &translate(v), false).await;
        }
    });
}

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
    let dimmer = until_device(&admin, "hall_dimmer", "reported", |d| {
        d["reported"]["brightness"] == 40
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
