//! What the devices tests share: the recorded formats, a hub with the devices plugin,
//! simulated devices that answer commands, and waiting for a device to reach a state.

#![allow(dead_code)] // each test file uses a part

use std::sync::Arc;
use std::time::{Duration, Instant};

use hcore_client::{Client, ClientOptions, Subscription};
use hcore_devices_plugin::{DevicesConfig, DevicesPlugin};
use hcore_kernel::PluginFactory;
use hcore_tests::hub::{wait_registered, Harness};
use serde_json::{json, Value};

pub fn data(name: &str) -> Value {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn devices() -> Vec<(String, PluginFactory)> {
    let factory: PluginFactory =
        Arc::new(|| Box::new(DevicesPlugin::new(DevicesConfig::default())));
    vec![("devices".into(), factory)]
}

/// A client, once the devices plugin answers.
pub async fn client(h: &Harness, id: &str) -> Client {
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

pub async fn publish(sim: &Client, topic: &str, v: &Value, retain: bool) {
    let payload = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    sim.publish_raw(topic, payload.into_bytes(), retain)
        .await
        .unwrap();
}

/// Polls `f` on `devices.get <id>` until it holds.
pub async fn until_device(
    admin: &Client,
    id: &str,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
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

pub async fn next_json(sub: &mut Subscription) -> (String, Value) {
    let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a command")
        .unwrap();
    let v = serde_json::from_slice(&m.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&m.payload).into_owned()));
    (m.topic, v)
}

/// Zigbee2MQTT as it behaves: applies a `/set` to the device and reports its new state.
pub fn answer_like_z2m(sim: Client, mut sets: Subscription, mut state: Value) {
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

/// A device that answers commands by reporting on a state topic what it was told.
pub fn echo(
    sim: Client,
    mut commands: Subscription,
    to: &'static str,
    translate: fn(Value) -> Value,
) {
    tokio::spawn(async move {
        while let Some(m) = commands.next().await {
            let v = serde_json::from_slice(&m.payload).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&m.payload).into_owned())
            });
            publish(&sim, to, &translate(v), false).await;
        }
    });
}
