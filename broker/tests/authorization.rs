//! The authorization hook on SUBSCRIBE and PUBLISH: refused filters get a SUBACK failure
//! code, refused publishes are dropped (v5 QoS 1: PUBACK 0x87), and the connection stays.

use std::sync::{Arc, Mutex};

use hcore_broker::{ClientInfo, Hooks, PublishInfo};
use hcore_tests::broker::*;
use rumqttc::v5::mqttbytes::v5::{Packet as P5, PubAckReason, SubscribeReasonCode as S5};
use rumqttc::v5::mqttbytes::QoS as Q5;
use rumqttc::{QoS, SubscribeReasonCode as S4};

/// Clients may only touch topics under their own client id, `public/#` is readable by all.
#[derive(Default)]
struct OwnTopics {
    seen: Mutex<Vec<(String, Option<String>, String)>>,
}

impl Hooks for OwnTopics {
    fn authorize_publish(&self, c: &ClientInfo, p: &PublishInfo<'_>) -> bool {
        let topic = p.topic;
        self.seen.lock().unwrap().push((
            c.client_id.clone(),
            c.username.clone(),
            topic.to_string(),
        ));
        topic.starts_with(&format!("{}/", c.client_id)) || topic.starts_with("public/")
    }

    fn authorize_subscribe(&self, c: &ClientInfo, filter: &str) -> bool {
        filter.starts_with(&format!("{}/", c.client_id)) || filter.starts_with("public/")
    }
}

#[tokio::test]
async fn refused_subscribe_gets_a_failure_code_and_the_connection_stays() {
    let hooks = Arc::new(OwnTopics::default());
    let broker = start_with(test_config(), Some(hooks)).await;
    let addr = addr(&broker);

    let mut c4 = v4(addr, "alice").await;
    c4.client
        .subscribe_many([
            rumqttc::SubscribeFilter::new("bob/#".into(), QoS::AtMostOnce),
            rumqttc::SubscribeFilter::new("alice/#".into(), QoS::AtLeastOnce),
        ])
        .await
        .unwrap();
    let codes = c4
        .next_incoming(|p| match p {
            rumqttc::Packet::SubAck(s) => Some(s.return_codes.clone()),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(codes, vec![S4::Failure, S4::Success(QoS::AtLeastOnce)]);
    c4.client
        .publish("alice/x", QoS::AtMostOnce, false, "still here")
        .await
        .unwrap();
    assert_eq!(
        c4.next_publish().await.unwrap().payload,
        "still here".as_bytes()
    );

    let mut c5 = v5(addr, "carol").await;
    assert_eq!(
        c5.subscribe("bob/#", Q5::AtMostOnce).await,
        vec![S5::NotAuthorized]
    );
    assert_eq!(
        c5.subscribe("carol/#", Q5::AtMostOnce).await,
        vec![S5::Success(Q5::AtMostOnce)]
    );
    c5.client
        .publish("carol/y", Q5::AtMostOnce, false, "ok")
        .await
        .unwrap();
    assert_eq!(c5.next_publish().await.unwrap().payload, "ok".as_bytes());
    assert!(broker.metrics().not_authorized >= 2);
    broker.shutdown().await;
}

#[tokio::test]
async fn refused_publish_is_dropped_with_puback_0x87_for_v5() {
    let hooks = Arc::new(OwnTopics::default());
    let broker = start_with(test_config(), Some(hooks.clone())).await;
    let addr = addr(&broker);
    let mut watcher = v4(addr, "watcher").await;
    watcher.subscribe("public/#", QoS::AtMostOnce).await;
    let mut spy = v4(addr, "spy").await;
    // "spy" may not read bob/#, but a wildcard on public is fine; bob's topic is watched
    // through a client allowed to read everything under bob: bob himself.
    let mut bob = v4(addr, "bob").await;
    bob.subscribe("bob/#", QoS::AtMostOnce).await;

    // v5 QoS 1 publish to a forbidden topic: PUBACK with reason 0x87, nothing delivered.
    let mut mallory = v5(addr, "mallory").await;
    mallory
        .client
        .publish("bob/door", Q5::AtLeastOnce, false, "open")
        .await
        .unwrap();
    let reason = mallory
        .next_incoming(|p| match p {
            P5::PubAck(a) => Some(a.reason),
            _ => None,
        })
        .await
        .unwrap();
    assert_eq!(reason, PubAckReason::NotAuthorized);
    // v3.1.1 QoS 1 and QoS 0: acknowledged normally (3.1.1 cannot say no), dropped.
    spy.client
        .publish("bob/door", QoS::AtLeastOnce, false, "open")
        .await
        .unwrap();
    spy.next_incoming(|p| matches!(p, rumqttc::Packet::PubAck(_)).then_some(()))
        .await
        .unwrap();
    spy.client
        .publish("bob/door", QoS::AtMostOnce, false, "open")
        .await
        .unwrap();

    // Connections stay: each can still publish where allowed.
    mallory
        .client
        .publish("public/m", Q5::AtMostOnce, false, "m")
        .await
        .unwrap();
    spy.client
        .publish("public/s", QoS::AtMostOnce, false, "s")
        .await
        .unwrap();
    let mut got = vec![
        watcher.next_publish().await.unwrap().topic,
        watcher.next_publish().await.unwrap().topic,
    ];
    got.sort();
    assert_eq!(got, ["public/m", "public/s"]);
    bob.client
        .publish("bob/marker", QoS::AtMostOnce, false, "marker")
        .await
        .unwrap();
    assert_eq!(
        bob.next_publish().await.unwrap().topic,
        "bob/marker",
        "no forbidden publish got through"
    );

    // The hook saw the connection's identity.
    let seen = hooks.seen.lock().unwrap().clone();
    assert!(seen
        .iter()
        .any(|(c, _, t)| c == "mallory" && t == "bob/door"));
    broker.shutdown().await;
}

#[tokio::test]
async fn refused_qos2_publish_completes_its_handshake() {
    let broker = start_with(test_config(), Some(Arc::new(OwnTopics::default()))).await;
    let addr = addr(&broker);
    let mut raw = raw_connected(addr, "eve", 30).await;
    raw.send(&publish_packet(b"bob/x", b"nope", 2, 7, false))
        .await;
    let (b1, body) = raw.read_packet().await.expect("PUBREC");
    assert_eq!((b1, body), (0x50, vec![0, 7]));
    raw.send(&raw_packet(0x62, &[0, 7])).await;
    let (b1, body) = raw.read_packet().await.expect("PUBCOMP");
    assert_eq!((b1, body), (0x70, vec![0, 7]));
    raw.send(&PINGREQ).await;
    assert_eq!(raw.read_packet().await.expect("PINGRESP").0, 0xd0);
    broker.shutdown().await;
}

/// Stamps the publisher on `hc/...` and keeps `private/<id>/...` to client `<id>`.
struct Stamp;

impl Hooks for Stamp {
    fn stamps(&self, c: &ClientInfo, topic: &str, stamp: &mut dyn FnMut(&'static str, &str)) {
        if topic.starts_with("hc/") {
            stamp("hc-client", &c.client_id);
        }
    }

    fn authorize_delivery(&self, c: &ClientInfo, topic: &str) -> bool {
        match topic.strip_prefix("private/") {
            Some(rest) => rest.split('/').next() == Some(c.client_id.as_str()),
            None => true,
        }
    }
}

#[tokio::test]
async fn the_edge_stamps_the_publisher_and_strips_forgeries() {
    let broker = start_with(test_config(), Some(Arc::new(Stamp))).await;
    let addr = addr(&broker);
    let mut watcher = v5(addr, "watcher").await;
    watcher.subscribe("hc/#", Q5::AtMostOnce).await;
    let forger = v5(addr, "mallory").await;
    let props = rumqttc::v5::mqttbytes::v5::PublishProperties {
        user_properties: vec![
            ("hc-client".into(), "victim".into()),
            ("other".into(), "kept".into()),
        ],
        ..Default::default()
    };
    forger
        .client
        .publish_with_properties("hc/x", Q5::AtMostOnce, false, "a", props)
        .await
        .unwrap();
    let p = watcher.next_publish().await.unwrap();
    let users = p.properties.unwrap().user_properties;
    assert!(users.contains(&("hc-client".to_string(), "mallory".to_string())));
    assert!(users.contains(&("other".to_string(), "kept".to_string())));
    assert_eq!(users.iter().filter(|(k, _)| k == "hc-client").count(), 1);

    let old = v4(addr, "old-device").await;
    old.client
        .publish("hc/y", QoS::AtMostOnce, false, "b")
        .await
        .unwrap();
    let p = watcher.next_publish().await.unwrap();
    assert_eq!(
        p.properties.unwrap().user_properties,
        vec![("hc-client".to_string(), "old-device".to_string())]
    );
    let (local, _rx) = broker
        .local_client("inproc", Default::default())
        .await
        .unwrap();
    local
        .publish(hcore_broker::Message::new("hc/z", "c"))
        .await
        .unwrap();
    let p = watcher.next_publish().await.unwrap();
    assert_eq!(
        p.properties.unwrap().user_properties,
        vec![("hc-client".to_string(), "inproc".to_string())]
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn the_delivery_hook_keeps_private_topics_from_wildcard_subscribers() {
    let broker = start_with(test_config(), Some(Arc::new(Stamp))).await;
    let addr = addr(&broker);
    let p = v4(addr, "p").await;
    p.client
        .publish(
            "private/alice/box",
            QoS::AtLeastOnce,
            true,
            "retained secret",
        )
        .await
        .unwrap();
    let mut snoop = v4(addr, "snoop").await;
    snoop.subscribe("#", QoS::AtMostOnce).await;
    let mut alice = v4(addr, "alice").await;
    alice.subscribe("private/alice/#", QoS::AtMostOnce).await;
    assert_eq!(
        alice.next_publish().await.unwrap().payload,
        "retained secret".as_bytes()
    );
    let (local_snoop, mut lrx) = broker
        .local_client("local-snoop", Default::default())
        .await
        .unwrap();
    local_snoop
        .subscribe("private/#", hcore_broker::QoS::AtMostOnce)
        .await
        .unwrap();

    p.client
        .publish("private/alice/box", QoS::AtLeastOnce, false, "live secret")
        .await
        .unwrap();
    p.client
        .publish("public/news", QoS::AtLeastOnce, false, "news")
        .await
        .unwrap();
    assert_eq!(
        alice.next_publish().await.unwrap().payload,
        "live secret".as_bytes()
    );
    let first = snoop.next_publish().await.unwrap();
    assert_eq!(
        first.topic, "public/news",
        "neither the retained nor the live secret"
    );
    p.client
        .publish("private/local-snoop/x", QoS::AtLeastOnce, false, "mine")
        .await
        .unwrap();
    let m = tokio::time::timeout(WAIT, lrx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.topic, "private/local-snoop/x");
    broker.shutdown().await;
}

/// Messages a `#` subscriber may not see are skipped silently: not logged or counted as
/// lost (they used to be, as "fell behind the router's log").
#[tokio::test]
async fn hidden_messages_are_not_counted_as_lost() {
    let broker = start_with(test_config(), Some(Arc::new(Stamp))).await;
    let addr = addr(&broker);
    let mut watcher = v5(addr, "watcher").await;
    watcher.subscribe("#", Q5::AtMostOnce).await;
    let publisher = v5(addr, "publisher").await;
    for i in 0..50 {
        let topic = if i % 2 == 0 {
            "private/alice/x"
        } else {
            "public/x"
        };
        publisher
            .client
            .publish(topic, Q5::AtMostOnce, false, format!("{i}"))
            .await
            .unwrap();
    }
    for i in (1..50).step_by(2) {
        let p = watcher.next_publish().await.unwrap();
        assert_eq!(
            (&p.topic[..], &p.payload[..]),
            (&b"public/x"[..], format!("{i}").as_bytes())
        );
    }
    let m = broker.metrics();
    assert_eq!((m.dropped_expired, m.dropped_slow_subscriber), (0, 0));
    broker.shutdown().await;
}
