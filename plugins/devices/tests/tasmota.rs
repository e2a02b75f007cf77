//! The devices plugin with a simulated Tasmota plug (discovery, LWT, STATE, SENSOR,
//! commands answered the way Tasmota does), and a restart that keeps what it knows.

mod common;

use common::*;
use hcore_tests::hub::{start_in, start_with};
use hcore_tests::TempDir;
use serde_json::json;

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
