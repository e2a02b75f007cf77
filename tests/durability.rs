//! A successful storage or state reply means the write is on disk: the real `hcore`
//! binary is killed with SIGKILL right after acknowledged writes (and in the middle of a
//! load from 32 concurrent writers), restarted on the same data, and every acknowledged
//! write is there.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hcore_client::{Client, ClientOptions};
use hcore_tests::binary::*;
use hcore_tests::hub::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    init_tracing();
    let dir = TempDir::new();
    let (mut hcore, url) = spawn_hcore(&dir.0).await;

    // Sequential acknowledged writes, then an immediate SIGKILL.
    let c = Client::connect(&url, ClientOptions::new("seq").quiet())
        .await
        .unwrap();
    for i in 0..200 {
        c.storage().set(&format!("k{i}"), json!(i)).await.unwrap();
    }
    c.state().set("durable/last", json!(199)).await.unwrap();
    kill9(&mut hcore).await;

    let (mut hcore, url) = spawn_hcore(&dir.0).await;
    let c = Client::connect(&url, ClientOptions::new("seq").quiet())
        .await
        .unwrap();
    for i in 0..200 {
        assert_eq!(
            c.storage().get(&format!("k{i}")).await.unwrap(),
            Some(json!(i)),
            "k{i}"
        );
    }
    assert_eq!(
        c.state().get("durable/last").await.unwrap().unwrap().value,
        json!(199)
    );

    // 32 concurrent writers; SIGKILL in the middle of the load.
    let acked: Arc<Mutex<Vec<(String, String, u64)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..32 {
        let client = Client::connect(&url, ClientOptions::new(format!("w{w}")).quiet())
            .await
            .unwrap();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0u64.. {
                let key = format!("key{i}");
                match client.storage().set(&key, json!(i)).await {
                    Ok(()) => acked
                        .lock()
                        .unwrap()
                        .push((client.id().to_string(), key, i)),
                    Err(_) => break,
                }
            }
        }));
    }
    eventually(|| acked.lock().unwrap().len() >= 2000).await;
    kill9(&mut hcore).await;
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(15), w).await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 2000);

    let (mut hcore, url) = spawn_hcore(&dir.0).await;
    for w in 0..32 {
        let id = format!("w{w}");
        let client = Client::connect(&url, ClientOptions::new(id.clone()).quiet())
            .await
            .unwrap();
        for (_, key, value) in acked.iter().filter(|(who, _, _)| *who == id) {
            assert_eq!(
                client.storage().get(key).await.unwrap(),
                Some(json!(value)),
                "{id}/{key} was acknowledged before the kill"
            );
        }
    }
    let _ = hcore.kill().await;
}

/// Retained messages published by devices (here with mosquitto_pub) are kept by the
/// broker across a clean restart and across a SIGKILL once a save interval has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_device_messages_survive_restart_and_sigkill() {
    use hcore_tests::mosquitto::{mosquitto_pub, mosquitto_sub};
    init_tracing();
    let dir = TempDir::new();
    let addr =
        |url: &str| -> std::net::SocketAddr { url.trim_start_matches("mqtt://").parse().unwrap() };
    let retained = |url: String, n: usize| async move {
        let sub = mosquitto_sub(
            addr(&url),
            &["-t", "zigbee2mqtt/#", "-v", "-C", &n.to_string()],
        );
        let out = tokio::time::timeout(WAIT, sub.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    let (hcore, url) = spawn_hcore(&dir.0).await;
    for (topic, payload) in [
        ("zigbee2mqtt/bridge/state", "online"),
        ("zigbee2mqtt/lamp", r#"{"state":"ON"}"#),
    ] {
        let out = mosquitto_pub(addr(&url), &["-t", topic, "-m", payload, "-r", "-q", "1"]).await;
        assert!(out.status.success());
    }
    sigterm(hcore.id().unwrap());
    let _ = tokio::time::timeout(WAIT, wait_exit(hcore)).await;

    let (mut hcore, url) = spawn_hcore(&dir.0).await;
    assert_eq!(
        retained(url.clone(), 2).await,
        vec![
            r#"zigbee2mqtt/bridge/state online"#.to_string(),
            r#"zigbee2mqtt/lamp {"state":"ON"}"#.to_string()
        ]
    );
    let out = mosquitto_pub(
        addr(&url),
        &[
            "-t",
            "zigbee2mqtt/lamp",
            "-m",
            r#"{"state":"OFF"}"#,
            "-r",
            "-q",
            "1",
        ],
    )
    .await;
    assert!(out.status.success());
    // Saved within `persistence_interval_ms` (1 s by default); then no cleanup at all.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    kill9(&mut hcore).await;

    let (mut hcore, url) = spawn_hcore(&dir.0).await;
    assert_eq!(
        retained(url, 2).await,
        vec![
            r#"zigbee2mqtt/bridge/state online"#.to_string(),
            r#"zigbee2mqtt/lamp {"state":"OFF"}"#.to_string()
        ]
    );
    let _ = hcore.kill().await;
}

async fn wait_exit(mut child: tokio::process::Child) {
    let _ = child.wait().await;
}
