//! MQTT 3.1.1 end to end: the SDK (and so the kernel's external mode and the CLI) speaks
//! MQTT 5 where the broker does, falls back to 3.1.1 where it does not (nats-server's
//! MQTT listener), or uses the version the URL sets; RPC, state and subscriptions work
//! over either.

use std::process::Stdio;

use hcore_client::{Client, ClientOptions, MqttVersion};
use hcore_tests::hub::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_uses_mqtt_5_or_the_version_the_url_sets() {
    let h = start().await;
    let auto = h.tcp("auto").await;
    assert_eq!(auto.mqtt_version(), Some(MqttVersion::V5));
    let url = format!("{}?version=3.1.1", h.url());
    let old = Client::connect(&url, ClientOptions::new("old"))
        .await
        .unwrap();
    assert_eq!(old.mqtt_version(), Some(MqttVersion::V311));
    // Over 3.1.1 (no properties) the payload carries everything: calls both ways, state.
    old.provide("old.echo", |c| async move { Ok(c.params) })
        .await
        .unwrap();
    wait_registered(&auto, "old.echo", "old").await;
    assert_eq!(
        auto.call("old.echo", json!({"x": 1})).await.unwrap(),
        json!({"x": 1})
    );
    old.state().set("old/k", json!(2)).await.unwrap();
    assert_eq!(
        old.state().get("old/k").await.unwrap().unwrap().value,
        json!(2)
    );
    let mut sub = old.subscribe("raw/#").await.unwrap();
    auto.publish_raw("raw/x", "hi", false).await.unwrap();
    let m = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.payload, "hi".as_bytes());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_falls_back_to_mqtt_311_on_nats() {
    let dir = TempDir::new();
    let (port, mqtt) = (free_port(), free_port());
    let conf = dir.path().join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "server_name: hc1\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: \"{}\" }}\n\
             mqtt {{ listen: 127.0.0.1:{mqtt} }}\n",
            dir.path().join("js").display()
        ),
    )
    .unwrap();
    let _nats = hcore_tests::daemon("nats-server", &conf);
    let url = format!("mqtt://127.0.0.1:{mqtt}");
    let deadline = tokio::time::Instant::now() + WAIT;
    let a = loop {
        match Client::connect(&url, ClientOptions::new("a").quiet()).await {
            Ok(c) => break c,
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(a.mqtt_version(), Some(MqttVersion::V311));
    let b = Client::connect(&url, ClientOptions::new("b").quiet())
        .await
        .unwrap();
    let mut sub = b.subscribe("dev/+/state").await.unwrap();
    a.publish_raw("dev/lamp/state", r#"{"on":true}"#, false)
        .await
        .unwrap();
    let m = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.topic, "dev/lamp/state");
    // Asked for MQTT 5 explicitly, it says why it cannot connect.
    let e = Client::connect(&format!("{url}?version=5"), ClientOptions::new("c").quiet())
        .await
        .err()
        .expect("nats-server does not speak MQTT 5");
    assert!(e.to_string().contains("MQTT 5"), "{e}");

    // The kernel on NATS: it falls back too, and answers state calls over 3.1.1.
    let mut status = a.subscribe("hc/kernel/status").await.unwrap();
    let _kernel = hcore_tests::binary::hcore()
        .args(["run", "--broker", &url, "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    until_online(&mut status).await;
    a.state().set("a/lamp", json!({"on": true})).await.unwrap();
    let rec = b.state().get("a/lamp").await.unwrap().unwrap();
    assert_eq!((rec.value, rec.source.as_str()), (json!({"on": true}), "a"));
}
