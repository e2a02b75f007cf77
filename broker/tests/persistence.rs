//! Persistence: retained messages and persistent sessions (MQTT 3.1.1 and 5) survive a
//! restart of the broker on the same `persistence_dir`.

use std::time::Duration;

use hcore_broker::{Broker, BrokerConfig};
use hcore_tests::broker::*;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;

fn config(dir: &TempDir) -> BrokerConfig {
    let mut c = test_config();
    c.persistence_dir = Some(dir.path().join("broker"));
    c
}

async fn restart(broker: Broker, dir: &TempDir) -> Broker {
    broker.shutdown().await;
    start_with(config(dir), None).await
}

/// The retained message on `topic` a new subscriber gets, if any (a marker published
/// after subscribing arrives first when there is none).
async fn retained_on(broker: &Broker, topic: &str) -> Option<rumqttc::v5::mqttbytes::v5::Publish> {
    let mut o = v5_options(addr(broker), "reader");
    o.set_max_packet_size(Some(16 << 20));
    let mut c = v5_with(o).await.unwrap();
    c.sub(topic).await;
    c.publish(topic, "marker", false).await;
    let first = c.next().await;
    (first.retain).then_some(first)
}

#[tokio::test]
async fn retained_messages_and_their_properties_survive_a_restart() {
    let dir = TempDir::new();
    let broker = start_with(config(&dir), None).await;
    // A Zigbee2MQTT-sized bridge/devices (365 KB in the field) through mosquitto_pub.
    let devices = dir.path().join("devices.json");
    let big = format!(
        "[{}]",
        vec![r#"{"ieee_address":"0x00124b0012345678"}"#; 10_000].join(",")
    );
    std::fs::write(&devices, &big).unwrap();
    let out = mosquitto_pub(
        addr(&broker),
        &[
            "-t",
            "zigbee2mqtt/bridge/devices",
            "-f",
            devices.to_str().unwrap(),
            "-r",
            "-q",
            "1",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let c = v5(addr(&broker), "publisher").await;
    let props = PublishProperties {
        content_type: Some("application/json".into()),
        user_properties: vec![("origin".into(), "test".into())],
        ..Default::default()
    };
    c.client
        .publish_with_properties(
            "homeassistant/light/lamp/config",
            QoS::AtLeastOnce,
            true,
            r#"{"name":"lamp"}"#,
            props,
        )
        .await
        .unwrap();
    c.publish("gone/soon", "x", true).await;
    c.publish("gone/soon", "", true).await;
    let expiring = PublishProperties {
        message_expiry_interval: Some(1),
        ..Default::default()
    };
    c.client
        .publish_with_properties("short/lived", QoS::AtLeastOnce, true, "x", expiring)
        .await
        .unwrap();
    wait_metric(&broker.handle(), |m| m.publishes_received >= 5).await;
    assert_eq!(broker.handle().retained_count(), 3);
    drop(c);

    let broker = restart(broker, &dir).await;
    let p = retained_on(&broker, "zigbee2mqtt/bridge/devices")
        .await
        .expect("bridge/devices kept");
    assert_eq!(p.payload, big.as_bytes());
    let p = retained_on(&broker, "homeassistant/light/lamp/config")
        .await
        .expect("discovery config kept");
    assert_eq!(p.payload, r#"{"name":"lamp"}"#.as_bytes());
    let props = p.properties.expect("properties kept");
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
    assert!(props
        .user_properties
        .contains(&("origin".into(), "test".into())));
    assert!(
        retained_on(&broker, "gone/soon").await.is_none(),
        "a deleted message stays deleted"
    );
    // The expiry kept counting while the broker was down (and after).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(retained_on(&broker, "short/lived").await.is_none());
    broker.shutdown().await;
}

async fn persistent_v5(addr: std::net::SocketAddr, id: &str) -> V5 {
    let mut o = v5_options(addr, id);
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(3600));
    v5_with(o).await.unwrap()
}

async fn persistent_v4(addr: std::net::SocketAddr, id: &str) -> V4 {
    let mut o = v4_options(addr, id);
    o.set_clean_session(false);
    v4_with(o).await.unwrap()
}

#[tokio::test]
async fn an_absent_mqtt5_clients_session_and_queued_messages_survive_a_restart() {
    let dir = TempDir::new();
    let broker = start_with(config(&dir), None).await;
    let mut s = persistent_v5(addr(&broker), "sensor-hub").await;
    assert!(!s.session_present);
    s.sub("cmd/#").await;
    drop(s);
    wait_metric(&broker.handle(), |m| m.clients_connected == 0).await;
    let p = v5(addr(&broker), "sender").await;
    for i in 0..3 {
        p.publish(&format!("cmd/{i}"), format!("m{i}"), false).await;
    }
    wait_metric(&broker.handle(), |m| m.publishes_received >= 3).await;
    drop(p);

    let broker = restart(broker, &dir).await;
    let mut s = persistent_v5(addr(&broker), "sensor-hub").await;
    assert!(s.session_present, "the session was restored");
    for i in 0..3 {
        let m = s.next().await;
        assert_eq!(m.topic, format!("cmd/{i}").as_bytes());
        assert_eq!(m.payload, format!("m{i}").as_bytes());
    }
    // The subscription itself came back too.
    let p = v5(addr(&broker), "sender").await;
    p.publish("cmd/live", "now", false).await;
    assert_eq!(s.next().await.payload, "now".as_bytes());
    broker.shutdown().await;
}

#[tokio::test]
async fn an_mqtt311_persistent_session_survives_a_restart_and_a_clean_start_ends_it() {
    let dir = TempDir::new();
    let broker = start_with(config(&dir), None).await;
    let mut s = persistent_v4(addr(&broker), "tasmota-1").await;
    s.subscribe("cmnd/tasmota-1/#", rumqttc::QoS::AtLeastOnce)
        .await;
    drop(s);
    wait_metric(&broker.handle(), |m| m.clients_connected == 0).await;
    let p = v5(addr(&broker), "sender").await;
    p.publish("cmnd/tasmota-1/POWER", "ON", false).await;
    wait_metric(&broker.handle(), |m| m.publishes_received >= 1).await;
    drop(p);

    let broker = restart(broker, &dir).await;
    let mut s = persistent_v4(addr(&broker), "tasmota-1").await;
    assert!(s.session_present);
    let m = s.next_publish().await.expect("the queued command");
    assert_eq!(m.payload, "ON".as_bytes());
    drop(s);

    // A clean start ends the session, on disk too.
    let s = v4(addr(&broker), "tasmota-1").await;
    assert!(!s.session_present);
    drop(s);
    let broker = restart(broker, &dir).await;
    let s = persistent_v4(addr(&broker), "tasmota-1").await;
    assert!(!s.session_present, "nothing left to restore");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_store_in_an_unknown_format_is_refused_with_a_clear_error() {
    let dir = TempDir::new();
    let broker = start_with(config(&dir), None).await;
    broker.shutdown().await;
    {
        let db = sled::open(dir.path().join("broker")).unwrap();
        db.insert("format", &99u32.to_be_bytes()).unwrap();
        db.flush().unwrap();
    }
    let err = Broker::start(config(&dir)).await.err().expect("refused");
    assert!(err.to_string().contains("format"), "{err}");
}

#[tokio::test]
async fn a_store_in_use_by_a_running_broker_is_refused_and_free_again_after_shutdown() {
    let dir = TempDir::new();
    let broker = start_with(config(&dir), None).await;
    let err = Broker::start(config(&dir)).await.err().expect("refused");
    assert!(err.to_string().contains("in use"), "{err}");
    broker.shutdown().await;
    // Shutdown returns once the store is closed: it opens at once, here too.
    sled::open(dir.path().join("broker")).unwrap();
}
