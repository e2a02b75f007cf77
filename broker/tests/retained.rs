//! Retained messages: kept, delivered on subscribe, deleted only by an empty *retained*
//! publish (rumqttd deletes them on any empty publish).

use hcore_tests::broker::*;
use rumqttc::QoS;

async fn retained_payload(
    addr: std::net::SocketAddr,
    id: &str,
    filter: &str,
    marker_topic: &str,
) -> Option<String> {
    // Subscribe, then publish a marker: if a retained message exists it arrives first.
    let mut c = v4(addr, id).await;
    c.subscribe(filter, QoS::AtMostOnce).await;
    c.client
        .publish(marker_topic, QoS::AtMostOnce, false, "marker")
        .await
        .unwrap();
    let first = c.next_publish().await.expect("something arrives");
    if first.payload == "marker".as_bytes() && !first.retain {
        None
    } else {
        assert!(first.retain, "a stored message is flagged retained");
        Some(String::from_utf8_lossy(&first.payload).into_owned())
    }
}

#[tokio::test]
async fn retained_message_is_delivered_on_subscribe_to_every_kind_of_client() {
    let broker = start().await;
    let addr = addr(&broker);
    let out = mosquitto_pub(
        addr,
        &["-t", "home/lamp/state", "-m", "ON", "-r", "-q", "1"],
    )
    .await;
    assert!(out.status.success());
    assert_eq!(
        retained_payload(addr, "a", "home/+/state", "home/marker/state")
            .await
            .as_deref(),
        Some("ON")
    );
    let mut c5 = v5(addr, "b").await;
    c5.subscribe("home/#", rumqttc::v5::mqttbytes::QoS::AtMostOnce)
        .await;
    let p = c5.next_publish().await.unwrap();
    assert!(p.retain);
    assert_eq!(p.payload, "ON".as_bytes());
    let sub = mosquitto_sub(addr, &["-t", "home/lamp/state", "-C", "1", "-v"]);
    let out = tokio::time::timeout(WAIT, sub.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "home/lamp/state ON"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn empty_non_retained_publish_does_not_delete_the_retained_message() {
    let broker = start().await;
    let addr = addr(&broker);
    let p = v4(addr, "p").await;
    p.client
        .publish("t/x", QoS::AtLeastOnce, true, "kept")
        .await
        .unwrap();
    let mut live = v4(addr, "live").await;
    live.subscribe("t/x", QoS::AtMostOnce).await;
    assert_eq!(
        live.next_publish().await.unwrap().payload,
        "kept".as_bytes()
    );
    // An empty, non-retained publish is an ordinary (empty) message.
    p.client
        .publish("t/x", QoS::AtLeastOnce, false, "")
        .await
        .unwrap();
    let empty = live.next_publish().await.unwrap();
    assert!(empty.payload.is_empty() && !empty.retain);
    let out = mosquitto_pub(addr, &["-t", "t/x", "-n"]).await;
    assert!(out.status.success());
    assert!(live.next_publish().await.unwrap().payload.is_empty());
    assert_eq!(
        retained_payload(addr, "later", "t/x", "t/x")
            .await
            .as_deref(),
        Some("kept")
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn empty_retained_publish_deletes_only_that_topic() {
    let broker = start().await;
    let addr = addr(&broker);
    let p = v4(addr, "p").await;
    p.client
        .publish("r/a", QoS::AtLeastOnce, true, "a")
        .await
        .unwrap();
    p.client
        .publish("r/b", QoS::AtLeastOnce, true, "b")
        .await
        .unwrap();
    let out = mosquitto_pub(addr, &["-t", "r/a", "-n", "-r"]).await;
    assert!(out.status.success());
    assert_eq!(retained_payload(addr, "c1", "r/a", "r/a").await, None);
    assert_eq!(
        retained_payload(addr, "c2", "r/b", "r/b").await.as_deref(),
        Some("b")
    );
    assert_eq!(broker.handle().retained_count(), 1);
    let p = v4(hcore_tests::broker::addr(&broker), "counter").await;
    for i in 0..100u32 {
        p.client
            .publish(
                "race/tcp",
                rumqttc::QoS::AtMostOnce,
                true,
                i.to_be_bytes().to_vec(),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    eprintln!("metrics {:?}", broker.metrics());
    assert_eq!(broker.handle().retained_count(), 2);
    broker.shutdown().await;
}

#[tokio::test]
async fn retained_qos_is_the_lower_of_message_and_subscription() {
    let broker = start().await;
    let addr = addr(&broker);
    let p = v4(addr, "p").await;
    p.client
        .publish("q/one", QoS::AtLeastOnce, true, "1")
        .await
        .unwrap();
    p.client
        .publish("q/zero", QoS::AtMostOnce, true, "0")
        .await
        .unwrap();
    let mut s1 = v4(addr, "s1").await;
    s1.subscribe("q/one", QoS::AtLeastOnce).await;
    assert_eq!(s1.next_publish().await.unwrap().qos, QoS::AtLeastOnce);
    let mut s0 = v4(addr, "s0").await;
    s0.subscribe("q/one", QoS::AtMostOnce).await;
    assert_eq!(s0.next_publish().await.unwrap().qos, QoS::AtMostOnce);
    let mut s2 = v4(addr, "s2").await;
    s2.subscribe("q/zero", QoS::ExactlyOnce).await;
    assert_eq!(s2.next_publish().await.unwrap().qos, QoS::AtMostOnce);
    broker.shutdown().await;
}

#[tokio::test]
async fn v5_retain_handling_never_skips_stored_messages() {
    use rumqttc::v5::mqttbytes::v5::{Filter, RetainForwardRule};
    let broker = start().await;
    let addr = addr(&broker);
    let p = v4(addr, "p").await;
    p.client
        .publish("rh/x", QoS::AtLeastOnce, true, "stored")
        .await
        .unwrap();
    let mut c = v5(addr, "c").await;
    let mut f = Filter::new("rh/x", rumqttc::v5::mqttbytes::QoS::AtMostOnce);
    f.retain_forward_rule = RetainForwardRule::Never;
    c.client.subscribe_many([f]).await.unwrap();
    c.next_incoming(|p| matches!(p, rumqttc::v5::mqttbytes::v5::Packet::SubAck(_)).then_some(()))
        .await
        .unwrap();
    p.client
        .publish("rh/x", QoS::AtLeastOnce, false, "live")
        .await
        .unwrap();
    let first = c.next_publish().await.unwrap();
    assert_eq!(first.payload, "live".as_bytes());
    broker.shutdown().await;
}

/// Retained messages for a new subscription are paced by the subscriber's flow control
/// (its window and how fast it reads), never dropped: 3,000 messages of 1 KB are three
/// times what one subscriber may have queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_retained_message_reaches_a_new_subscriber_at_any_qos() {
    let broker = start().await;
    let addr = addr(&broker);
    let (loader, _rx) = broker
        .local_client("loader", Default::default())
        .await
        .unwrap();
    let payload = "x".repeat(1024);
    for i in 0..3000 {
        let m = hcore_broker::Message::new(format!("state/{i}"), payload.clone()).retained(true);
        loader.publish(m).await.unwrap();
    }
    assert_eq!(broker.handle().retained_count(), 3000);
    let count = |mut c: V4| async move {
        let mut topics = std::collections::HashSet::new();
        while topics.len() < 3000 {
            match c.next_publish().await {
                Some(p) => topics.insert(p.topic),
                None => break,
            };
        }
        topics.len()
    };
    let mut q1 = v4(addr, "qos1").await;
    q1.subscribe("state/#", QoS::AtLeastOnce).await;
    let mut q0 = v4(addr, "qos0").await;
    q0.subscribe("state/#", QoS::AtMostOnce).await;
    let sub = mosquitto_sub(addr, &["-t", "state/#", "-q", "1", "-C", "3000"]);
    let (n1, n0) = tokio::join!(count(q1), count(q0));
    assert_eq!((n1, n0), (3000, 3000));
    let out = tokio::time::timeout(WAIT, sub.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3000);
    assert_eq!(broker.metrics().dropped_slow_subscriber, 0);
    broker.shutdown().await;
}
