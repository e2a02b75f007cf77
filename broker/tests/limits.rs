//! Every resource limit, tried by a hostile client: the limit holds, the refusal carries
//! the right reason code, a metric counts it, and everyone else is still served.

use hcore_broker::{BrokerConfig, BrokerHandle};
use hcore_tests::broker::*;
use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode;
use rumqttc::QoS;

/// Another client still gets a round trip through the broker.
async fn still_serves(addr: std::net::SocketAddr) {
    let mut c = v4(addr, "bystander").await;
    c.subscribe("alive", QoS::AtLeastOnce).await;
    c.client
        .publish("alive", QoS::AtLeastOnce, false, "yes")
        .await
        .unwrap();
    assert_eq!(c.next_publish().await.expect("served").payload, "yes");
}

/// The retained messages a new subscriber to `filter` receives (up to a marker).
async fn retained_count(addr: std::net::SocketAddr, filter: &str) -> usize {
    let mut c = v4(addr, "counter").await;
    c.subscribe("count/marker", QoS::AtLeastOnce).await;
    c.subscribe(filter, QoS::AtMostOnce).await;
    c.client
        .publish("count/marker", QoS::AtLeastOnce, false, "end")
        .await
        .unwrap();
    let mut n = 0;
    while c.next_publish().await.expect("marker").topic != "count/marker" {
        n += 1;
    }
    n
}

async fn flood_retained(addr: std::net::SocketAddr, id: &str, n: usize, size: usize) {
    let c = v4(addr, id).await;
    for i in 0..n {
        c.client
            .publish(
                format!("ret/{id}/{i}"),
                QoS::AtLeastOnce,
                true,
                vec![b'x'; size],
            )
            .await
            .unwrap();
    }
    // A QoS 1 round trip after the flood: everything before it was handled.
    let mut c = c;
    c.subscribe(&format!("done/{id}"), QoS::AtLeastOnce).await;
    c.client
        .publish(format!("done/{id}"), QoS::AtLeastOnce, false, "")
        .await
        .unwrap();
    c.next_publish().await.expect("flood handled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_are_bounded_in_count_and_bytes_per_client() {
    let config = BrokerConfig {
        max_retained_messages: 20,
        max_retained_bytes_per_client: 10 * 1100, // topic and payload count
        ..test_config()
    };
    let broker = start_with(config, None).await;
    let addr = addr(&broker);
    // One client: 15 x 1 KB fits its 11 KB share only 10 times.
    flood_retained(addr, "greedy", 15, 1000).await;
    assert_eq!(retained_count(addr, "ret/greedy/#").await, 10);
    assert_eq!(broker.handle().metrics().retained_refused, 5);
    // Others keep their own share until the total count is reached.
    flood_retained(addr, "second", 15, 10).await;
    assert_eq!(retained_count(addr, "ret/second/#").await, 10);
    assert_eq!(retained_count(addr, "ret/#").await, 20);
    // Replacing or deleting a stored message is always possible.
    let mut c = v4(addr, "greedy").await;
    c.client
        .publish("ret/greedy/0", QoS::AtLeastOnce, true, "")
        .await
        .unwrap();
    c.subscribe("ret/greedy/0", QoS::AtLeastOnce).await;
    c.client
        .publish("ret/greedy/0", QoS::AtLeastOnce, false, "sync")
        .await
        .unwrap();
    c.next_publish().await.expect("deletion handled");
    flood_retained(addr, "third", 1, 10).await;
    assert_eq!(retained_count(addr, "ret/third/#").await, 1);
    still_serves(addr).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn subscriptions_per_client_are_bounded_with_0x97_and_0x80() {
    let config = BrokerConfig {
        max_subscriptions_per_client: 5,
        ..test_config()
    };
    let broker = start_with(config, None).await;
    let addr = addr(&broker);
    let mut c5 = v5(addr, "many5").await;
    for i in 0..5 {
        assert_eq!(
            c5.sub(&format!("s/{i}")).await,
            vec![SubscribeReasonCode::Success(
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce
            )]
        );
    }
    assert_eq!(
        c5.sub("s/5").await,
        vec![SubscribeReasonCode::QuotaExceeded]
    );
    // Subscribing again to a filter it has is a replacement, not a new subscription.
    assert_eq!(c5.sub("s/0").await.len(), 1);
    let mut c4 = raw_connected(addr, "many4", 30).await;
    for i in 0..6u16 {
        c4.send(&subscribe_packet(i + 1, &format!("s/{i}"), 1))
            .await;
        let (b1, body) = c4.read_packet().await.expect("SUBACK");
        let want = if i < 5 { 1 } else { 0x80 };
        assert_eq!((b1, body[2]), (0x90, want));
    }
    assert_eq!(broker.handle().metrics().limit_subscriptions, 2);
    still_serves(addr).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn deep_and_long_topics_are_refused_at_once() {
    let broker = start().await;
    let addr = addr(&broker);
    // 32,000 levels: refused with 0x90, not walked.
    let deep = "a/".repeat(16_000) + "a";
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_v5("deep", 30, &[], None)).await;
    assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
    raw.send(&publish_v5(
        &deep[..deep.len().min(65_000)],
        b"x",
        0,
        0,
        &[],
    ))
    .await;
    let (b1, body) = raw.read_packet().await.expect("DISCONNECT");
    assert_eq!((b1, body[0]), (0xe0, 0x90));
    // 33 short levels: over the default depth of 32 (and well under the length limit).
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_v5("depth", 30, &[], None)).await;
    assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
    raw.send(&publish_v5(&"d/".repeat(33)[..65], b"x", 0, 0, &[]))
        .await;
    let (b1, body) = raw.read_packet().await.expect("DISCONNECT");
    assert_eq!((b1, body[0]), (0xe0, 0x90));
    // 33 levels as a filter: SUBACK 0x8f, connection kept.
    let filter = "l/".repeat(32) + "#";
    let mut c = v5(addr, "filters").await;
    assert_eq!(
        c.sub(&filter).await,
        vec![SubscribeReasonCode::TopicFilterInvalid]
    );
    assert_eq!(c.sub("l/#").await.len(), 1);
    still_serves(addr).await;
    broker.shutdown().await;
}

#[tokio::test]
async fn unreleased_qos2_publishes_are_bounded_for_mqtt311_too() {
    let config = BrokerConfig {
        receive_maximum: 3,
        ..test_config()
    };
    let broker = start_with(config, None).await;
    let addr = addr(&broker);
    let mut raw = raw_connected(addr, "qos2", 30).await;
    for pkid in 1..=4 {
        raw.send(&publish_packet(b"q2/x", b"m", 2, pkid, false))
            .await;
    }
    assert!(raw.closed().await, "the fourth unreleased publish closes");
    wait_metric(&broker.handle(), |m| m.protocol_errors == 1).await;
    still_serves(addr).await;
    broker.shutdown().await;
}

async fn connections_refused(handle: &BrokerHandle) -> u64 {
    let m = handle.metrics();
    m.limit_connections + m.limit_connect_rate
}

#[tokio::test]
async fn connections_per_address_and_connect_rate_are_bounded() {
    let config = BrokerConfig {
        max_connections_per_address: 3,
        limit_loopback: true,
        ..test_config()
    };
    let broker = start_with(config, None).await;
    let addr = addr(&broker);
    let handle = broker.handle();
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(raw_connected(addr, &format!("h{i}"), 30).await);
    }
    let mut fourth = Wire::connect(addr).await;
    fourth.send(&connect_packet(4, "h3", 30, true)).await;
    assert!(
        fourth.closed().await,
        "a fourth connection from one address"
    );
    assert_eq!(handle.metrics().limit_connections, 1);
    drop(held);
    wait_metric(&handle, |m| m.clients_connected == 0).await;

    let config = BrokerConfig {
        max_connects_per_second: 5,
        limit_loopback: true,
        ..test_config()
    };
    let rate = start_with(config, None).await;
    let mut refused = 0;
    for i in 0..50 {
        let mut raw = Wire::connect(rate.local_addrs()[0]).await;
        raw.send(&connect_packet(4, &format!("r{i}"), 30, true))
            .await;
        if raw.read_packet().await.is_none() {
            refused += 1;
        }
    }
    assert!(refused > 0, "50 connects in a row, 5 per second allowed");
    assert_eq!(connections_refused(&rate.handle()).await, refused);
    rate.shutdown().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn loopback_is_exempt_from_address_limits_unless_asked() {
    let config = BrokerConfig {
        max_connections_per_address: 2,
        ..test_config()
    };
    let broker = start_with(config, None).await;
    let addr = addr(&broker);
    let mut held = Vec::new();
    for i in 0..5 {
        held.push(raw_connected(addr, &format!("l{i}"), 30).await);
    }
    assert_eq!(connections_refused(&broker.handle()).await, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn persistent_sessions_are_bounded_and_the_oldest_absent_one_goes() {
    let config = BrokerConfig {
        max_persistent_sessions: 3,
        ..test_config()
    };
    let broker = start_with(config, None).await;
    let addr = addr(&broker);
    let handle = broker.handle();
    for i in 0..5 {
        let mut o = v4_options(addr, &format!("p{i}"));
        o.set_clean_session(false);
        let mut c = v4_with(o).await.unwrap();
        c.subscribe("ps/x", QoS::AtLeastOnce).await;
        drop(c);
        wait_metric(&handle, |m| m.clients_connected == 0).await;
    }
    wait_metric(&handle, |m| m.sessions_evicted == 2).await;
    // Newest first: each check is itself a client going away again.
    for (i, kept) in [(4, true), (3, true), (2, true), (1, false), (0, false)] {
        let mut o = v4_options(addr, &format!("p{i}"));
        o.set_clean_session(false);
        let c = v4_with(o).await.unwrap();
        assert_eq!(c.session_present, kept, "session p{i}");
        c.client.disconnect().await.unwrap();
        drop(c);
        wait_metric(&handle, |m| m.clients_connected == 0).await;
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_zigbee2mqtt_sized_message_passes_with_the_default_packet_limit() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut o = v4_options(addr, "ha");
    o.set_max_packet_size(1 << 20, 1 << 20);
    let mut sub = v4_with(o).await.unwrap();
    sub.subscribe("zigbee2mqtt/bridge/devices", QoS::AtLeastOnce)
        .await;
    let mut o = v4_options(addr, "z2m");
    o.set_max_packet_size(1 << 20, 1 << 20);
    let z2m = v4_with(o).await.unwrap();
    let devices = vec![b'd'; 365 * 1024];
    z2m.client
        .publish(
            "zigbee2mqtt/bridge/devices",
            QoS::AtLeastOnce,
            true,
            devices.clone(),
        )
        .await
        .unwrap();
    let got = sub.next_publish().await.expect("bridge/devices");
    assert_eq!(got.payload.len(), devices.len());
    assert_eq!(broker.handle().metrics().protocol_errors, 0);
    broker.shutdown().await;
}

#[tokio::test]
async fn connections_in_total_are_bounded() {
    let config = BrokerConfig {
        max_connections: 3,
        ..test_config()
    };
    let broker = start_with(config, None).await;
    let addr = addr(&broker);
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(raw_connected(addr, &format!("t{i}"), 30).await);
    }
    let mut fourth = Wire::connect(addr).await;
    fourth.send(&connect_packet(4, "t3", 30, true)).await;
    assert!(fourth.closed().await, "a fourth connection in all");
    assert_eq!(broker.handle().metrics().limit_connections, 1);
    // A place frees up when a client leaves.
    drop(held.pop());
    wait_metric(&broker.handle(), |m| m.clients_connected == 2).await;
    held.push(raw_connected(addr, "t4", 30).await);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_bytes_in_total_are_bounded() {
    let config = BrokerConfig {
        max_retained_bytes: 5 * 1100,
        ..test_config()
    };
    let broker = start_with(config, None).await;
    let addr = addr(&broker);
    for id in ["a", "b", "c"] {
        flood_retained(addr, id, 2, 1000).await;
    }
    // Five of the six 1 KB messages fit in 5.5 KB, whoever sent them.
    assert_eq!(retained_count(addr, "ret/#").await, 5);
    assert_eq!(broker.handle().metrics().retained_refused, 1);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt311_persistent_sessions_expire_after_session_expiry_secs() {
    let config = BrokerConfig {
        session_expiry_secs: 1,
        ..test_config()
    };
    let broker = start_with(config, None).await;
    let addr = addr(&broker);
    let mut o = v4_options(addr, "old-device");
    o.set_clean_session(false);
    let mut c = v4_with(o.clone()).await.unwrap();
    c.subscribe("dev/x", QoS::AtLeastOnce).await;
    drop(c);
    wait_metric(&broker.handle(), |m| m.sessions_expired == 1).await;
    let c = v4_with(o).await.unwrap();
    assert!(!c.session_present, "the session expired");
    broker.shutdown().await;
}
