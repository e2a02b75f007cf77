//! In-process clients: the same API and rules as network clients, without TCP.

use bytes::Bytes;
use hcore_broker::{LocalOptions, Message, Properties, QoS};
use hcore_tests::broker::*;
use rumqttc::v5::mqttbytes::QoS as Q5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_and_network_clients_exchange_messages_with_properties() {
    let broker = start().await;
    let addr = addr(&broker);
    let (kernel, mut inbox) = broker
        .local_client("kernel", LocalOptions::default())
        .await
        .unwrap();
    kernel
        .subscribe("zigbee2mqtt/#", QoS::AtMostOnce)
        .await
        .unwrap();

    let mut app = v5(addr, "app").await;
    app.subscribe("hc/#", Q5::AtLeastOnce).await;

    // network -> in-process
    let dev = v4(addr, "z2m").await;
    dev.client
        .publish(
            "zigbee2mqtt/lamp",
            rumqttc::QoS::AtMostOnce,
            false,
            r#"{"state":"ON"}"#,
        )
        .await
        .unwrap();
    let m = tokio::time::timeout(WAIT, inbox.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (m.topic.as_str(), m.payload_str()),
        ("zigbee2mqtt/lamp", Some(r#"{"state":"ON"}"#))
    );

    // in-process -> network, with retain and v5 properties
    let props = Properties {
        response_topic: Some("hc/reply/app".into()),
        correlation_data: Some(Bytes::from_static(b"42")),
        user_properties: vec![("source".into(), "kernel".into())],
        content_type: Some("application/json".into()),
        ..Default::default()
    };
    kernel
        .publish(
            Message::new("hc/state/lamp", "{}")
                .retained(true)
                .with_properties(props.clone()),
        )
        .await
        .unwrap();
    let p = app.next_publish().await.unwrap();
    let got = p.properties.unwrap();
    assert_eq!(got.response_topic, props.response_topic);
    assert_eq!(got.correlation_data, props.correlation_data);
    assert_eq!(got.user_properties, props.user_properties);
    assert_eq!(got.content_type, props.content_type);

    // Retained messages reach a new in-process subscriber, flagged and with properties.
    let (other, mut rx) = broker
        .local_client("other", LocalOptions::default())
        .await
        .unwrap();
    other
        .subscribe("hc/state/+", QoS::AtMostOnce)
        .await
        .unwrap();
    let m = rx
        .try_recv()
        .expect("retained message queued before subscribe returned");
    assert!(m.retain);
    assert_eq!(
        m.properties.unwrap().user_property("source"),
        Some("kernel")
    );

    // Bad input is a clear error, not a panic.
    assert!(kernel.publish(Message::new("a/+", "x")).await.is_err());
    assert!(kernel.subscribe("a/#/b", QoS::AtMostOnce).await.is_err());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_will_on_drop_and_none_on_disconnect() {
    let broker = start().await;
    let (watch, mut rx) = broker
        .local_client("watch", LocalOptions::default())
        .await
        .unwrap();
    watch.subscribe("status/#", QoS::AtMostOnce).await.unwrap();
    let opts = |name: &str| LocalOptions {
        will: Some(Message::new(format!("status/{name}"), "offline")),
        ..Default::default()
    };
    let (clean, _r1) = broker.local_client("clean", opts("clean")).await.unwrap();
    clean.disconnect().await.unwrap();
    let (crashy, r2) = broker.local_client("crashy", opts("crashy")).await.unwrap();
    drop(crashy);
    drop(r2);
    let m = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.topic, "status/crashy", "only the dropped client's will");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_messages_through_an_in_process_subscriber() {
    let broker = start().await;
    let (sub, mut rx) = broker
        .local_client("sink", LocalOptions::default())
        .await
        .unwrap();
    sub.subscribe("load/#", QoS::AtMostOnce).await.unwrap();
    let (publisher, _prx) = broker
        .local_client("source", LocalOptions::default())
        .await
        .unwrap();
    const N: u32 = 100_000;
    let producer = tokio::spawn(async move {
        for i in 0..N {
            publisher
                .publish(Message::new("load/x", i.to_be_bytes().to_vec()))
                .await
                .unwrap();
        }
    });
    for expected in 0..N {
        let m = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("no stall")
            .unwrap();
        let got = u32::from_be_bytes(m.payload[..4].try_into().unwrap());
        assert_eq!(got, expected, "in order, none lost");
    }
    producer.await.unwrap();
    let m = broker.metrics();
    assert_eq!((m.dropped_slow_subscriber, m.dropped_expired), (0, 0));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_subscribers_that_keep_up_lose_nothing() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut s4 = v4(addr, "s4").await;
    s4.subscribe("q1/#", rumqttc::QoS::AtLeastOnce).await;
    let mut s5 = v5(addr, "s5").await;
    s5.subscribe("q1/#", Q5::AtLeastOnce).await;
    let (local, mut lrx) = broker
        .local_client("local", LocalOptions::default())
        .await
        .unwrap();
    local.subscribe("q1/#", QoS::AtLeastOnce).await.unwrap();

    const N: u32 = 20_000;
    let mut o = v4_options(addr, "producer");
    o.set_inflight(100);
    let producer = v4_with(o).await.unwrap();
    let client = producer.client.clone();
    let send = tokio::spawn(async move {
        for i in 0..N {
            client
                .publish(
                    "q1/x",
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    i.to_be_bytes().to_vec(),
                )
                .await
                .unwrap();
        }
    });
    for expected in 0..N {
        let p = s4.next_publish().await.expect("v3.1.1 QoS 1 subscriber");
        assert_eq!(p.qos, rumqttc::QoS::AtLeastOnce);
        assert_eq!(
            u32::from_be_bytes(p.payload[..4].try_into().unwrap()),
            expected
        );
        let p = s5.next_publish().await.expect("v5 QoS 1 subscriber");
        assert_eq!(
            u32::from_be_bytes(p.payload[..4].try_into().unwrap()),
            expected
        );
        let m = tokio::time::timeout(WAIT, lrx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            u32::from_be_bytes(m.payload[..4].try_into().unwrap()),
            expected
        );
    }
    send.await.unwrap();
    let m = broker.metrics();
    assert_eq!(
        (m.dropped_slow_subscriber, m.dropped_expired),
        (0, 0),
        "{m:?}"
    );
    drop(producer);
    broker.shutdown().await;
}
