//! MQTT 5 semantics, one test per feature, each with a real MQTT 5 client (rumqttc v5,
//! or the raw client where the test must see the exact bytes on the wire): delivery QoS,
//! message expiry, session expiry and offline queueing, subscription options, topic
//! aliases in both directions, receive maximum in both directions, server keep-alive,
//! subscription identifiers and a DISCONNECT that carries only a reason code.

use std::time::Duration;

use bytes::Bytes;
use hcore_broker::BrokerConfig;
use hcore_tests::broker::*;
use rumqttc::v5::mqttbytes::v5::{
    Filter, Packet, Publish, PublishProperties, RetainForwardRule, SubscribeProperties,
};
use rumqttc::v5::mqttbytes::QoS;

/// Waits for the SUBACK of a subscribe sent with the client directly.
async fn suback(c: &mut V5) {
    c.next_incoming(|p| matches!(p, Packet::SubAck(_)).then_some(()))
        .await
        .expect("SUBACK");
}

async fn subscribe_filter(c: &mut V5, f: Filter) {
    c.client.subscribe_many([f]).await.unwrap();
    suback(c).await;
}

/// Publishes `marker` on `topic` and returns every payload `c` receives up to it.
async fn payloads_until_marker(c: &mut V5, from: &V5, topic: &str) -> Vec<String> {
    from.client
        .publish(topic, QoS::AtLeastOnce, false, "marker")
        .await
        .unwrap();
    let mut got = Vec::new();
    loop {
        let p = c.next().await;
        let text = String::from_utf8(p.payload.to_vec()).unwrap();
        if text == "marker" {
            return got;
        }
        got.push(text);
    }
}

fn persistent(addr: std::net::SocketAddr, id: &str, expiry: u32) -> rumqttc::v5::MqttOptions {
    let mut o = v5_options(addr, id);
    o.set_clean_start(false);
    o.set_session_expiry_interval(Some(expiry));
    o
}

#[tokio::test]
async fn delivery_qos_is_the_lower_of_publish_and_subscription() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut high = v5(addr, "high").await;
    high.subscribe("q/x", QoS::ExactlyOnce).await;
    let mut low = v5(addr, "low").await;
    low.subscribe("q/x", QoS::AtMostOnce).await;
    let p = v5(addr, "p").await;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        p.client.publish("q/x", qos, false, "m").await.unwrap();
        assert_eq!(high.next().await.qos, qos, "subscription QoS 2");
        assert_eq!(low.next().await.qos, QoS::AtMostOnce, "subscription QoS 0");
    }
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_expiry_counts_down_and_expired_messages_are_never_delivered() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut away = v5_with(persistent(addr, "away", 300)).await.unwrap();
    away.sub("exp/#").await;
    away.client.disconnect().await.unwrap();
    let handle = broker.handle();
    wait_metric(&handle, |m| m.clients_connected == 0).await;

    let p = v5(addr, "p").await;
    let with_expiry = |secs| PublishProperties {
        message_expiry_interval: Some(secs),
        ..Default::default()
    };
    p.publish_props("exp/long", "long", with_expiry(100)).await;
    p.publish_props("exp/short", "short", with_expiry(1)).await;
    p.publish("exp/none", "none", false).await;
    // The short one's interval runs out while its subscriber is away.
    tokio::time::sleep(Duration::from_millis(2100)).await;

    let mut back = v5_with(persistent(addr, "away", 300)).await.unwrap();
    assert!(back.session_present);
    let long = back.next().await;
    assert_eq!(long.payload, "long".as_bytes());
    let left = long.properties.unwrap().message_expiry_interval.unwrap();
    assert!((90..100).contains(&left), "remaining interval {left}");
    let rest = payloads_until_marker(&mut back, &p, "exp/marker").await;
    assert_eq!(rest, ["none"], "the expired message is dropped");
    assert!(handle.metrics().dropped_expired >= 1);
    // A retained message expires too: a late subscriber does not get it.
    p.client
        .publish_with_properties("exp/retained", QoS::AtLeastOnce, true, "r", with_expiry(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut late = v5(addr, "late").await;
    late.sub("exp/retained").await;
    assert_eq!(
        payloads_until_marker(&mut late, &p, "exp/retained").await,
        Vec::<String>::new()
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_outlives_its_connection_for_its_expiry_interval_only() {
    let broker = start().await;
    let addr = addr(&broker);
    let handle = broker.handle();
    let p = v5(addr, "p").await;

    // Interval 300 s: the session and what was published meanwhile wait for the client.
    let mut kept = v5_with(persistent(addr, "kept", 300)).await.unwrap();
    assert!(!kept.session_present);
    kept.sub("se/kept").await;
    kept.client.disconnect().await.unwrap();
    // Interval 1 s: the session ends soon after the connection.
    let mut brief = v5_with(persistent(addr, "brief", 1)).await.unwrap();
    brief.sub("se/brief").await;
    brief.client.disconnect().await.unwrap();
    // Interval 0 (the default): the session ends with the connection.
    let mut none = v5_with(v5_options(addr, "none")).await.unwrap();
    none.sub("se/none").await;
    drop(none);
    wait_metric(&handle, |m| m.clients_connected == 1).await;
    for t in ["se/kept", "se/brief", "se/none"] {
        p.publish(t, t.to_string(), false).await;
    }
    wait_metric(&handle, |m| m.sessions_expired >= 1).await;

    let mut kept = v5_with(persistent(addr, "kept", 300)).await.unwrap();
    assert!(kept.session_present);
    assert_eq!(kept.next().await.payload, "se/kept".as_bytes());
    let brief = v5_with(persistent(addr, "brief", 300)).await.unwrap();
    assert!(!brief.session_present, "expired session is gone");
    let none = v5_with(persistent(addr, "none", 300)).await.unwrap();
    assert!(!none.session_present);
    broker.shutdown().await;
}

#[tokio::test]
async fn no_local_hides_a_clients_own_messages_only() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut me = v5(addr, "me").await;
    let mut f = Filter::new("nl/#", QoS::AtLeastOnce);
    f.nolocal = true;
    subscribe_filter(&mut me, f).await;
    let other = v5(addr, "other").await;
    me.publish("nl/a", "mine", false).await;
    other.publish("nl/a", "theirs", false).await;
    assert_eq!(me.next().await.payload, "theirs".as_bytes());
    broker.shutdown().await;
}

#[tokio::test]
async fn retain_as_published_keeps_the_flag_on_live_messages() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut keep = v5(addr, "keep").await;
    let mut f = Filter::new("rap/x", QoS::AtLeastOnce);
    f.preserve_retain = true;
    subscribe_filter(&mut keep, f).await;
    let mut plain = v5(addr, "plain").await;
    plain.sub("rap/x").await;
    let p = v5(addr, "p").await;
    p.publish("rap/x", "r", true).await;
    assert!(keep.next().await.retain, "retain-as-published");
    assert!(!plain.next().await.retain, "live messages have retain 0");
    broker.shutdown().await;
}

#[tokio::test]
async fn retain_handling_decides_when_stored_messages_are_sent() {
    let broker = start().await;
    let addr = addr(&broker);
    let p = v5(addr, "p").await;
    p.publish("rh/x", "stored", true).await;
    let cases = [
        (RetainForwardRule::OnEverySubscribe, ["stored", "stored"]),
        (RetainForwardRule::OnNewSubscribe, ["stored", ""]),
        (RetainForwardRule::Never, ["", ""]),
    ];
    for (i, (rule, expect)) in cases.into_iter().enumerate() {
        let mut c = v5(addr, &format!("c{i}")).await;
        c.sub("rh/marker").await;
        for want in expect {
            let mut f = Filter::new("rh/x", QoS::AtLeastOnce);
            f.retain_forward_rule = rule.clone();
            subscribe_filter(&mut c, f).await;
            let got = payloads_until_marker(&mut c, &p, "rh/marker").await;
            let want: Vec<String> = [want]
                .into_iter()
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect();
            assert_eq!(got, want, "{rule:?}");
        }
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn topic_aliases_from_a_client_are_resolved_and_forgotten_with_the_connection() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut sub = v5(addr, "sub").await;
    sub.sub("ta/#").await;
    let p = v5(addr, "p").await;
    let alias = |a| PublishProperties {
        topic_alias: Some(a),
        ..Default::default()
    };
    p.publish_props("ta/x", "full", alias(3)).await;
    p.publish_props("", "aliased", alias(3)).await;
    for want in ["full", "aliased"] {
        let m = sub.next().await;
        assert_eq!(
            (m.topic, m.payload),
            (Bytes::from("ta/x"), Bytes::from(want))
        );
    }
    // A new connection starts with no aliases: using one is a protocol error (0x82).
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_v5("p2", 30, &[], None)).await;
    assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
    raw.send(&publish_v5("", b"x", 0, 0, &[0x23, 0, 3])).await;
    let (b1, body) = raw.read_packet().await.expect("DISCONNECT");
    assert_eq!((b1, body[0]), (0xe0, 0x82));
    // An alias over the maximum the broker announced is refused (0x94).
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_v5("p3", 30, &[], None)).await;
    let (_, connack) = raw.read_packet().await.unwrap();
    let max = property(&connack_properties(&connack), 0x22).unwrap().int();
    let over = (max + 1) as u16;
    let props = [0x23, (over >> 8) as u8, over as u8];
    raw.send(&publish_v5("ta/y", b"x", 0, 0, &props)).await;
    let (b1, body) = raw.read_packet().await.expect("DISCONNECT");
    assert_eq!((b1, body[0]), (0xe0, 0x94));
    broker.shutdown().await;
}

/// Connects a raw MQTT 5 client that accepts `aliases` topic aliases and subscribes
/// (QoS 0) to `filter`.
async fn alias_taker(addr: std::net::SocketAddr, id: &str, aliases: u16, filter: &str) -> Wire {
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_v5(
        id,
        30,
        &[0x22, (aliases >> 8) as u8, aliases as u8],
        None,
    ))
    .await;
    assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
    let mut body = vec![0, 1, 0];
    body.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    body.extend_from_slice(filter.as_bytes());
    body.push(0);
    raw.send(&raw_packet(0x82, &body)).await;
    assert_eq!(raw.read_packet().await.unwrap().0, 0x90);
    raw
}

async fn next_publish_v5(raw: &mut Wire) -> (String, Option<u32>, Vec<u8>) {
    let (b1, body) = raw.read_packet().await.expect("PUBLISH");
    assert_eq!(b1 & 0xf0, 0x30);
    let (topic, props, payload) = split_publish_v5(&body);
    (topic, property(&props, 0x23).map(|v| v.int()), payload)
}

#[tokio::test]
async fn the_broker_sends_topic_aliases_to_clients_that_accept_them() {
    let broker = start().await;
    let addr = addr(&broker);
    let p = v5(addr, "p").await;
    let mut raw = alias_taker(addr, "taker", 4, "tb/#").await;
    let mut none = alias_taker(addr, "plain", 0, "tb/#").await;
    for i in 0..3 {
        p.client
            .publish("tb/long/topic/name", QoS::AtMostOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    let (t0, a0, _) = next_publish_v5(&mut raw).await;
    assert_eq!(t0, "tb/long/topic/name");
    let alias = a0.expect("an alias is set up with the first message");
    for i in 1..3 {
        let (t, a, payload) = next_publish_v5(&mut raw).await;
        assert_eq!(
            (t.as_str(), a, payload),
            ("", Some(alias), format!("{i}").into_bytes())
        );
    }
    for _ in 0..3 {
        let (t, a, _) = next_publish_v5(&mut none).await;
        assert_eq!((t.as_str(), a), ("tb/long/topic/name", None));
    }
    // A new connection of the same client starts without aliases.
    drop(raw);
    let mut again = alias_taker(addr, "taker", 4, "tb/#").await;
    p.client
        .publish("tb/long/topic/name", QoS::AtMostOnce, false, "x")
        .await
        .unwrap();
    let (t, a, _) = next_publish_v5(&mut again).await;
    assert_eq!((t.as_str(), a.is_some()), ("tb/long/topic/name", true));
    broker.shutdown().await;
}

#[tokio::test]
async fn the_broker_respects_a_clients_receive_maximum() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut o = v5_options(addr, "slow");
    o.set_receive_maximum(Some(2));
    o.set_manual_acks(true);
    let mut slow = v5_with(o).await.unwrap();
    slow.sub("rm/#").await;
    let p = v5(addr, "p").await;
    for i in 0..5 {
        p.publish("rm/x", format!("{i}"), false).await;
    }
    let first: Vec<Publish> = vec![slow.next().await, slow.next().await];
    // Two unacknowledged: nothing more until one is acknowledged.
    let more = tokio::time::timeout(Duration::from_millis(300), slow.next_publish()).await;
    assert!(more.is_err(), "a third message beyond receive maximum 2");
    slow.client.ack(&first[0]).await.unwrap();
    let third = slow.next().await;
    assert_eq!(third.payload, "2".as_bytes());
    let mut rest = vec![first[1].clone(), third];
    for m in &rest {
        slow.client.ack(m).await.unwrap();
    }
    for _ in 0..2 {
        let m = slow.next().await;
        slow.client.ack(&m).await.unwrap();
        rest.push(m);
    }
    let got: Vec<_> = rest.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(got, ["1", "2", "3", "4"].map(Bytes::from));
    broker.shutdown().await;
}

#[tokio::test]
async fn a_client_that_exceeds_the_brokers_receive_maximum_is_disconnected_with_0x93() {
    let config = BrokerConfig {
        receive_maximum: 3,
        ..test_config()
    };
    let broker = start_with(config, None).await;
    let mut raw = Wire::connect(addr(&broker)).await;
    raw.send(&connect_v5("flood", 30, &[], None)).await;
    let (_, connack) = raw.read_packet().await.unwrap();
    assert_eq!(
        property(&connack_properties(&connack), 0x21).unwrap().int(),
        3
    );
    // QoS 2 publishes never released: three are allowed, the fourth is one too many.
    for pkid in 1..=4 {
        raw.send(&publish_v5("rx/x", b"m", 2, pkid, &[])).await;
    }
    for pkid in 1..=3u16 {
        let (b1, body) = raw.read_packet().await.expect("PUBREC");
        assert_eq!((b1, &body[..2]), (0x50, &pkid.to_be_bytes()[..]));
    }
    let (b1, body) = raw.read_packet().await.expect("DISCONNECT");
    assert_eq!((b1, body[0]), (0xe0, 0x93));
    broker.shutdown().await;
}

#[tokio::test]
async fn the_server_keep_alive_replaces_a_longer_or_missing_one() {
    let config = BrokerConfig {
        max_keep_alive_secs: Some(20),
        ..test_config()
    };
    let broker = start_with(config, None).await;
    for (asked, told) in [(60, Some(20)), (0, Some(20)), (10, None)] {
        let mut raw = Wire::connect(addr(&broker)).await;
        raw.send(&connect_v5("ka", asked, &[], None)).await;
        let (b1, connack) = raw.read_packet().await.unwrap();
        assert_eq!(b1, 0x20);
        let server = property(&connack_properties(&connack), 0x13).map(|v| v.int());
        assert_eq!(server, told, "client asked for {asked}");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn subscription_identifiers_come_back_with_matching_messages() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut c = v5(addr, "c").await;
    let props = SubscribeProperties {
        id: Some(7),
        user_properties: vec![],
    };
    c.client
        .subscribe_with_properties("si/a/#", QoS::AtLeastOnce, props)
        .await
        .unwrap();
    suback(&mut c).await;
    c.sub("si/b").await;
    let p = v5(addr, "p").await;
    p.publish("si/a/1", "a", false).await;
    p.publish("si/b", "b", false).await;
    let a = c.next().await;
    assert_eq!(a.properties.unwrap().subscription_identifiers, vec![7]);
    let b = c.next().await;
    let ids = b
        .properties
        .map(|p| p.subscription_identifiers)
        .unwrap_or_default();
    assert!(
        ids.is_empty(),
        "no identifier for a subscription without one"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_disconnect_with_only_a_reason_code_is_understood() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut watcher = v5(addr, "watcher").await;
    watcher.sub("dc/#").await;
    // 0x00 normal disconnection: no will. 0x04: the client asks for its will.
    for (code, id) in [(0x00u8, "normal"), (0x04, "with-will")] {
        let mut raw = Wire::connect(addr).await;
        let topic = format!("dc/{id}");
        raw.send(&connect_v5(id, 30, &[], Some((&topic, b"gone"))))
            .await;
        assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
        raw.send(&[0xe0, 0x01, code]).await;
        assert!(raw.closed().await);
    }
    let will = watcher.next().await;
    assert_eq!(will.topic, "dc/with-will".as_bytes());
    assert_eq!(broker.handle().metrics().protocol_errors, 0);
    broker.shutdown().await;
}
