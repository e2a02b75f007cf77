//! Keep-alive per spec (incoming packets only) and wills: published on abnormal close,
//! not on a clean DISCONNECT, and never stale after a session takeover.

use hcore_tests::broker::*;

/// An observer subscribed to `filter`.
async fn observer(addr: std::net::SocketAddr, id: &str, filter: &str) -> V4 {
    let mut o = v4(addr, id).await;
    o.subscribe(filter, rumqttc::QoS::AtMostOnce).await;
    o
}

fn text(p: &rumqttc::Publish) -> String {
    String::from_utf8_lossy(&p.payload).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_expires_while_the_client_keeps_receiving() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut watcher = observer(addr, "watcher", "will/#").await;

    // A hung client: keep-alive 1 s, subscribed to a busy topic, never sends again.
    let mut hung = Wire::connect(addr).await;
    hung.send(&connect_with_will("hung", 1, "will/hung", b"gone", false))
        .await;
    assert_eq!(hung.read_packet().await.expect("CONNACK").0, 0x20);
    hung.send(&subscribe_packet(1, "busy/#", 0)).await;
    assert_eq!(hung.read_packet().await.expect("SUBACK").0, 0x90);

    let publisher = v4(addr, "busy-pub").await;
    let flood = tokio::spawn(async move {
        for i in 0u64.. {
            if publisher
                .client
                .publish("busy/x", rumqttc::QoS::AtMostOnce, false, i.to_string())
                .await
                .is_err()
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });

    let will = watcher
        .next_publish()
        .await
        .expect("will after keep-alive expiry");
    assert_eq!(
        (will.topic.as_str(), text(&will).as_str()),
        ("will/hung", "gone")
    );
    assert!(hung.closed().await, "the hung connection is closed");
    assert!(broker.metrics().keep_alive_timeouts >= 1);
    flood.abort();
    broker.shutdown().await;
}

#[tokio::test]
async fn will_is_published_when_the_socket_drops() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut watcher = observer(addr, "watcher", "will/#").await;
    let mut dev = Wire::connect(addr).await;
    dev.send(&connect_with_will("dev", 30, "will/dev", b"offline", false))
        .await;
    assert_eq!(dev.read_packet().await.expect("CONNACK").0, 0x20);
    drop(dev);
    let will = watcher.next_publish().await.expect("will");
    assert_eq!(text(&will), "offline");
    broker.shutdown().await;
}

#[tokio::test]
async fn no_will_after_a_clean_disconnect() {
    let broker = start().await;
    let addr = addr(&broker);
    let h = broker.handle();
    let mut watcher = observer(addr, "watcher", "will/#").await;
    let mut dev = Wire::connect(addr).await;
    dev.send(&connect_with_will("dev", 30, "will/dev", b"offline", false))
        .await;
    assert_eq!(dev.read_packet().await.expect("CONNACK").0, 0x20);
    dev.send(&DISCONNECT).await;
    assert!(dev.closed().await);
    // Once the broker has finished with "dev", a marker published now arrives after a
    // will, if there was one.
    wait_clients_below(&h, 2).await;
    let marker = v4(addr, "marker").await;
    marker
        .client
        .publish("will/marker", rumqttc::QoS::AtMostOnce, false, "marker")
        .await
        .unwrap();
    let first = watcher.next_publish().await.expect("a message");
    assert_eq!(first.topic, "will/marker", "no will was published");
    assert_eq!(broker.metrics().wills_published, 0);
    broker.shutdown().await;
}

async fn wait_clients_below(h: &hcore_broker::BrokerHandle, n: u64) {
    wait_metric(h, |m| m.clients_connected < n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_keeps_the_new_will_and_never_fires_the_old_one() {
    let broker = start().await;
    let addr = addr(&broker);
    let h = broker.handle();
    let mut watcher = observer(addr, "watcher", "status/#").await;

    // First connection of "lamp": will "offline-old", then it goes half-open (silent).
    let mut old = Wire::connect(addr).await;
    old.send(&connect_with_will(
        "lamp",
        60,
        "status/lamp",
        b"offline-old",
        true,
    ))
    .await;
    assert_eq!(old.read_packet().await.expect("CONNACK").0, 0x20);

    // The device reboots and reconnects with the same id and a new will.
    let mut new = Wire::connect(addr).await;
    new.send(&connect_with_will(
        "lamp",
        60,
        "status/lamp",
        b"offline-new",
        true,
    ))
    .await;
    assert_eq!(new.read_packet().await.expect("CONNACK").0, 0x20);
    new.send(&publish_packet(b"status/lamp", b"online", 0, 0, true))
        .await;
    assert!(
        old.closed().await,
        "the old connection is closed by the takeover"
    );

    let first = watcher.next_publish().await.expect("birth");
    assert_eq!(text(&first), "online");
    assert_eq!(h.metrics().takeovers, 1);

    // Now the new connection dies: its own will fires, and only it.
    drop(new);
    let will = watcher
        .next_publish()
        .await
        .expect("will of the new connection");
    assert_eq!(text(&will), "offline-new");
    drop(old);
    let late = v4(addr, "late").await;
    late.client
        .publish("status/marker", rumqttc::QoS::AtMostOnce, false, "marker")
        .await
        .unwrap();
    let next = watcher.next_publish().await.expect("marker");
    assert_eq!(text(&next), "marker", "the old will never fired");

    // The retained status is the new will, not the old one.
    let mut fresh = v4(addr, "fresh").await;
    fresh
        .subscribe("status/lamp", rumqttc::QoS::AtMostOnce)
        .await;
    let retained = fresh.next_publish().await.expect("retained status");
    assert!(retained.retain);
    assert_eq!(text(&retained), "offline-new");
    broker.shutdown().await;
}

#[tokio::test]
async fn v5_will_delay_is_cancelled_by_a_reconnect() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut watcher = observer(addr, "watcher", "will/#").await;
    let mut o = v5_options(addr, "delayed");
    let props = rumqttc::v5::mqttbytes::v5::LastWillProperties {
        delay_interval: Some(2),
        payload_format_indicator: None,
        message_expiry_interval: None,
        content_type: None,
        response_topic: None,
        correlation_data: None,
        user_properties: Vec::new(),
    };
    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
        "will/delayed",
        "gone",
        rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        false,
        Some(props),
    ));
    let first = v5_with(o.clone()).await.unwrap();
    first.task.abort(); // drop the socket without DISCONNECT
    drop(first);
    // Reconnect within the delay: the will must not be published.
    let second = v5_with(o).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let marker = v4(addr, "marker").await;
    marker
        .client
        .publish("will/marker", rumqttc::QoS::AtMostOnce, false, "m")
        .await
        .unwrap();
    assert_eq!(watcher.next_publish().await.unwrap().topic, "will/marker");
    drop(second);
    broker.shutdown().await;
}
