//! A Zigbee network of 200 devices, each reporting once a second for a minute, through
//! the devices plugin running as its own process (`devices-plugin`): every device's
//! state record ends current (its last report), a command in the middle of the burst is
//! confirmed, and the plugin's CPU time and memory are printed.

use std::time::{Duration, Instant};

use hcore_client::{Client, ClientOptions};
use hcore_tests::binary::{proc_status_kb, workspace_bin};
use hcore_tests::hub::start;
use serde_json::{json, Value};

const DEVICES: usize = 200;
const SECONDS: u64 = 60;

fn device_list() -> Value {
    let lamp = json!({"type": "light", "features": [
        {"type": "binary", "name": "state", "property": "state", "access": 7, "value_on": "ON", "value_off": "OFF"},
        {"type": "numeric", "name": "brightness", "property": "brightness", "access": 7, "value_min": 0, "value_max": 254}]});
    let list: Vec<Value> = (0..DEVICES)
        .map(|i| {
            json!({"ieee_address": format!("0x00158d00{i:08x}"), "type": "Router", "friendly_name": format!("dev_{i}"),
                   "definition": {"model": "LED1545G12", "vendor": "IKEA", "exposes": [lamp,
                     {"type": "numeric", "name": "seq", "property": "seq", "access": 1}]}})
        })
        .collect();
    Value::Array(list)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_devices_reporting_every_second_for_a_minute() {
    let h = start().await;
    let mut plugin = tokio::process::Command::new(workspace_bin("devices-plugin"))
        .arg(h.url())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = plugin.id().unwrap();
    let admin = Client::connect(&h.url(), ClientOptions::new("admin-test").quiet())
        .await
        .unwrap();
    let bridge = Client::connect(&h.url(), ClientOptions::new("z2m-sim").quiet())
        .await
        .unwrap();
    hcore_tests::hub::wait_registered(&admin, "devices.set", "devices").await;
    bridge
        .publish_raw(
            "zigbee2mqtt/bridge/devices",
            device_list().to_string().into_bytes(),
            true,
        )
        .await
        .unwrap();
    let start_wait = Instant::now();
    while admin.call("devices.list", json!({})).await.unwrap()["devices"]
        .as_array()
        .unwrap()
        .len()
        < DEVICES
    {
        assert!(
            start_wait.elapsed() < Duration::from_secs(20),
            "devices never listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The bridge answers commands as Zigbee2MQTT does.
    let mut sets = bridge.subscribe("zigbee2mqtt/+/set").await.unwrap();
    let b = bridge.clone();
    tokio::spawn(async move {
        while let Some(m) = sets.next().await {
            let name = m
                .topic
                .trim_start_matches("zigbee2mqtt/")
                .trim_end_matches("/set")
                .to_string();
            b.publish_raw(&format!("zigbee2mqtt/{name}"), m.payload.clone(), false)
                .await
                .unwrap();
        }
    });

    let cpu_before = hcore_tests::binary::proc_cpu_secs(pid);
    let began = Instant::now();
    let tick = Duration::from_micros(1_000_000 / DEVICES as u64);
    let mut next = tokio::time::Instant::now();
    let mut confirmed = None;
    for second in 0..SECONDS {
        for i in 0..DEVICES {
            let report = json!({"seq": second, "brightness": (second as usize + i) % 254, "linkquality": 100});
            bridge
                .publish_raw(
                    &format!("zigbee2mqtt/dev_{i}"),
                    report.to_string().into_bytes(),
                    false,
                )
                .await
                .unwrap();
            next += tick;
            tokio::time::sleep_until(next).await;
        }
        if second == SECONDS / 2 {
            let a = admin.clone();
            confirmed = Some(tokio::spawn(async move {
                a.call(
                    "devices.set",
                    json!({"id": "dev_7", "properties": {"state": "ON"}}),
                )
                .await
            }));
        }
    }
    let sent_for = began.elapsed();
    // Every device's record ends at its last report.
    let settle = Instant::now();
    let last = SECONDS - 1;
    loop {
        let items = admin.state().list("devices/").await.unwrap();
        let current = items
            .iter()
            .filter(|it| it.value["reported"]["seq"] == last)
            .count();
        if current == DEVICES {
            break;
        }
        assert!(
            settle.elapsed() < Duration::from_secs(20),
            "only {current} of {DEVICES} records current"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let settled = settle.elapsed();
    let cpu = hcore_tests::binary::proc_cpu_secs(pid) - cpu_before;
    let (rss, peak) = (proc_status_kb(pid, "VmRSS:"), proc_status_kb(pid, "VmHWM:"));
    let set = confirmed.unwrap().await.unwrap().unwrap();
    assert_eq!(set["status"], "done", "a command during the burst: {set}");
    let _ = plugin.start_kill();
    let reports = DEVICES as u64 * SECONDS;
    eprintln!(
        "devices plugin, {DEVICES} devices x 1 report/s for {sent_for:.0?} ({reports} reports): \
         all records current {settled:.1?} after the last; CPU {cpu:.2} s ({:.1}% of one core, {:.0} us per report); \
         RSS {:.1} MB, peak {:.1} MB",
        cpu * 100.0 / sent_for.as_secs_f64(),
        cpu * 1e6 / reports as f64,
        rss as f64 / 1024.0,
        peak as f64 / 1024.0
    );
}
