//! MQTT 5 messages with properties reaching MQTT 3.1.1 subscribers (rumqttd's v4 encoder
//! panics on them and poisons the listener), with v5 subscribers seeing every property.

use bytes::Bytes;
use hcore_tests::broker::*;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS as Q5;

fn props(i: usize) -> PublishProperties {
    PublishProperties {
        response_topic: Some(format!("reply/{i}")),
        correlation_data: Some(Bytes::from(vec![i as u8, 0xab])),
        user_properties: vec![("source".into(), "test".into())],
        content_type: Some("application/json".into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_properties_reach_v311_plain_and_v5_intact_and_the_listener_survives() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut sub4 = v4(addr, "old-device").await;
    sub4.subscribe("rpc/#", rumqttc::QoS::AtLeastOnce).await;
    let mut sub5 = v5(addr, "new-client").await;
    sub5.subscribe("rpc/#", Q5::AtLeastOnce).await;
    let mut mosq = mosquitto_sub(addr, &["-V", "311", "-t", "rpc/#", "-C", "101"]);
    let mut mosq_lines = lines_of(&mut mosq);

    // Make sure mosquitto_sub is subscribed before the 100 messages: a retained probe.
    let pub5 = v5(addr, "caller").await;
    pub5.client
        .publish_with_properties("rpc/probe", Q5::AtLeastOnce, true, "probe", props(999))
        .await
        .unwrap();
    assert_eq!(next_line(&mut mosq_lines).await, "probe");
    assert_eq!(sub4.next_publish().await.unwrap().topic, "rpc/probe");
    assert_eq!(sub5.next_publish().await.unwrap().topic, "rpc/probe");

    for i in 0..100 {
        pub5.client
            .publish_with_properties("rpc/call", Q5::AtLeastOnce, false, format!("{i}"), props(i))
            .await
            .unwrap();
    }
    for i in 0..100 {
        let p = sub4
            .next_publish()
            .await
            .expect("v3.1.1 subscriber still served");
        assert_eq!(p.payload, format!("{i}").as_bytes());
        let p = sub5.next_publish().await.expect("v5 subscriber");
        assert_eq!(p.payload, format!("{i}").as_bytes());
        let got = p.properties.expect("properties intact");
        let want = props(i);
        assert_eq!(got.response_topic, want.response_topic);
        assert_eq!(got.correlation_data, want.correlation_data);
        assert_eq!(got.user_properties, want.user_properties);
        assert_eq!(got.content_type, want.content_type);
        assert_eq!(next_line(&mut mosq_lines).await, format!("{i}"));
    }

    // The 3.1.1 side of the (single) listener keeps accepting and serving.
    for n in 0..20 {
        let mut c = v4(addr, &format!("after-{n}")).await;
        c.subscribe(&format!("after/{n}"), rumqttc::QoS::AtMostOnce)
            .await;
        c.client
            .publish(format!("after/{n}"), rumqttc::QoS::AtMostOnce, false, "ok")
            .await
            .unwrap();
        assert_eq!(
            c.next_publish().await.expect("served").payload,
            "ok".as_bytes()
        );
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn v5_will_and_retained_with_properties_reach_a_v311_subscriber() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut o = v5_options(addr, "sensor");
    let will_props = rumqttc::v5::mqttbytes::v5::LastWillProperties {
        delay_interval: None,
        payload_format_indicator: Some(1),
        message_expiry_interval: None,
        content_type: Some("text/plain".into()),
        response_topic: None,
        correlation_data: None,
        user_properties: vec![("why".into(), "lost".into())],
    };
    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
        "state/sensor",
        "offline",
        Q5::AtLeastOnce,
        true,
        Some(will_props),
    ));
    let sensor = v5_with(o).await.unwrap();
    sensor
        .client
        .publish_with_properties("state/sensor", Q5::AtLeastOnce, true, "online", props(1))
        .await
        .unwrap();
    let mut old = v4(addr, "old").await;
    old.subscribe("state/#", rumqttc::QoS::AtLeastOnce).await;
    let p = old.next_publish().await.expect("retained with properties");
    assert!(p.retain);
    assert_eq!(p.payload, "online".as_bytes());
    sensor.task.abort();
    let p = old.next_publish().await.expect("will with properties");
    assert_eq!(p.payload, "offline".as_bytes());
    broker.shutdown().await;
}
