//! Protocol details where rumqttd's router alone misbehaves: UNSUBSCRIBE answers, shared
//! subscriptions, persistent sessions, client ids, QoS 2 with v5 properties.

use std::time::Duration;

use hcore_tests::broker::*;
use rumqttc::QoS;

#[tokio::test]
async fn unsubscribe_is_answered_once_with_a_code_per_filter() {
    let broker = start().await;
    let mut raw = Wire::connect(addr(&broker)).await;
    raw.send(&connect_packet(5, "u5", 30, true)).await;
    assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
    raw.send(&raw_packet(0x82, &[0, 1, 0, 0, 3, b'a', b'/', b'b', 0]))
        .await;
    assert_eq!(raw.read_packet().await.unwrap().0, 0x90);
    // UNSUBSCRIBE a/b and never/subscribed in one packet (v5: empty properties).
    let mut body = vec![0, 2, 0, 0, 3, b'a', b'/', b'b', 0, 16];
    body.extend_from_slice(b"never/subscribed");
    raw.send(&raw_packet(0xa2, &body)).await;
    let (b1, body) = raw.read_packet().await.expect("UNSUBACK");
    assert_eq!((b1, body), (0xb0, vec![0, 2, 0, 0x00, 0x11]));
    raw.send(&PINGREQ).await;
    assert_eq!(
        raw.read_packet().await.unwrap().0,
        0xd0,
        "exactly one UNSUBACK"
    );
    // v3.1.1: an UNSUBSCRIBE of an unknown filter is still acknowledged.
    let mut raw4 = raw_connected(addr(&broker), "u4", 30).await;
    raw4.send(&raw_packet(0xa2, &[0, 9, 0, 1, b'z'])).await;
    assert_eq!(raw4.read_packet().await.unwrap(), (0xb0, vec![0, 9]));
    broker.shutdown().await;
}

async fn collect(c: &mut V4, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_millis(300), c.next_publish()).await {
            Ok(Some(p)) => out.push(String::from_utf8_lossy(&p.payload).into_owned()),
            _ => break,
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscriptions_split_load_per_filter_and_survive_unsubscribe() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut m1 = v4(addr, "m1").await;
    let mut m2 = v4(addr, "m2").await;
    for m in [&mut m1, &mut m2] {
        m.subscribe("$share/svc/req/a", QoS::AtLeastOnce).await;
        m.subscribe("$share/svc/req/b", QoS::AtLeastOnce).await;
        m.subscribe("other", QoS::AtMostOnce).await;
    }
    // m1 drops an unrelated subscription: rumqttd would take it out of every shared group.
    m1.client.unsubscribe("other").await.unwrap();
    m1.next_incoming(|p| matches!(p, rumqttc::Packet::UnsubAck(_)).then_some(()))
        .await
        .unwrap();
    let caller = v4(addr, "caller").await;
    // Requests one at a time, as RPC callers send them: each reaches exactly one member.
    for i in 0..20 {
        let topic = if i % 2 == 0 { "req/a" } else { "req/b" };
        caller
            .client
            .publish(topic, QoS::AtLeastOnce, false, format!("{topic}:{i}"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let got1 = collect(&mut m1, 20).await;
    let got2 = collect(&mut m2, 20).await;
    let mut all: Vec<String> = got1.iter().chain(got2.iter()).cloned().collect();
    all.sort();
    let mut want: Vec<String> = (0..20)
        .map(|i| format!("{}:{i}", if i % 2 == 0 { "req/a" } else { "req/b" }))
        .collect();
    want.sort();
    assert_eq!(all, want, "each request delivered exactly once");
    assert!(
        !got1.is_empty() && !got2.is_empty(),
        "both members served: {got1:?} {got2:?}"
    );
    // A member that goes away stops taking its share.
    drop(m2);
    wait_metric(&broker.handle(), |m| m.clients_connected == 2).await;
    for i in 0..6 {
        caller
            .client
            .publish("req/a", QoS::AtLeastOnce, false, format!("late:{i}"))
            .await
            .unwrap();
    }
    assert_eq!(collect(&mut m1, 6).await.len(), 6);
    broker.shutdown().await;
}

#[tokio::test]
async fn persistent_session_resumes_and_unsubscribe_still_works() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut o = v4_options(addr, "persist");
    o.set_clean_session(false);
    let mut c = v4_with(o.clone()).await.unwrap();
    c.subscribe("p/#", QoS::AtLeastOnce).await;
    c.client.disconnect().await.unwrap();
    while let Some(Ok(_)) = c.events.recv().await {}
    // Published while the client is offline: kept for the session.
    let publisher = v4(addr, "pub").await;
    publisher
        .client
        .publish("p/1", QoS::AtLeastOnce, false, "while away")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = v4_with(o).await.unwrap();
    let p = c
        .next_publish()
        .await
        .expect("offline message delivered on resume");
    assert_eq!(p.payload, "while away".as_bytes());
    // Unsubscribing a restored filter works (rumqttd alone would keep delivering).
    c.client.unsubscribe("p/#").await.unwrap();
    c.next_incoming(|p| matches!(p, rumqttc::Packet::UnsubAck(_)).then_some(()))
        .await
        .unwrap();
    c.subscribe("marker", QoS::AtMostOnce).await;
    publisher
        .client
        .publish("p/2", QoS::AtLeastOnce, false, "after")
        .await
        .unwrap();
    publisher
        .client
        .publish("marker", QoS::AtLeastOnce, false, "m")
        .await
        .unwrap();
    assert_eq!(c.next_publish().await.unwrap().topic, "marker");
    broker.shutdown().await;
}

#[tokio::test]
async fn any_utf8_client_id_works_and_empty_ids_are_assigned() {
    let broker = start().await;
    let addr = addr(&broker);
    for id in ["kitchen/lamp", "a+b#c", "$weird", "%2F", "кухня"] {
        let mut c = v4(addr, id).await;
        c.subscribe("ids", QoS::AtMostOnce).await;
        c.client
            .publish("ids", QoS::AtMostOnce, false, id)
            .await
            .unwrap();
        assert_eq!(c.next_publish().await.unwrap().payload, id.as_bytes());
    }
    // v5 with an empty client id: CONNACK carries the assigned identifier.
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_packet(5, "", 30, true)).await;
    let (b1, body) = raw.read_packet().await.unwrap();
    assert_eq!((b1, body[1]), (0x20, 0));
    assert!(
        body.windows(5).any(|w| w == b"auto-"),
        "assigned client id in CONNACK"
    );
    // v3.1.1 empty id without clean session is refused with 0x02.
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_packet(4, "", 30, false)).await;
    assert_eq!(raw.read_packet().await.unwrap(), (0x20, vec![0, 2]));
    broker.shutdown().await;
}

#[tokio::test]
async fn v5_qos2_with_properties_on_pubrel_completes() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut sub = v4(addr, "sub").await;
    sub.subscribe("q2/#", QoS::ExactlyOnce).await;
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_packet(5, "q2pub", 30, true)).await;
    assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
    // PUBLISH QoS 2, pkid 5, empty properties.
    raw.send(&raw_packet(
        0x34,
        &[0, 4, b'q', b'2', b'/', b'x', 0, 5, 0, b'!'],
    ))
    .await;
    let (b1, body) = raw.read_packet().await.unwrap();
    assert_eq!((b1, &body[..2]), (0x50, &[0u8, 5][..]));
    // PUBREL with a reason string property (rumqttd ignores such a PUBREL).
    let mut rel = vec![0, 5, 0, 5, 0x1f, 0, 2, b'o', b'k'];
    rel[3] = 5;
    raw.send(&raw_packet(0x62, &rel)).await;
    let (b1, body) = raw.read_packet().await.unwrap();
    assert_eq!((b1, &body[..2]), (0x70, &[0u8, 5][..]));
    let p = sub.next_publish().await.expect("delivered once released");
    assert_eq!(p.payload, "!".as_bytes());
    broker.shutdown().await;
}

#[tokio::test]
async fn server_packets_from_a_client_close_the_connection_without_a_panic() {
    let broker = start().await;
    let addr = addr(&broker);
    for level in [4u8, 5] {
        for packet in [vec![0x20, 2, 0, 0], vec![0x90, 3, 0, 1, 0], vec![0xd0, 0]] {
            let mut raw = Wire::connect(addr).await;
            raw.send(&connect_packet(level, &format!("srv{level}"), 30, true))
                .await;
            assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
            raw.send(&packet).await;
            assert!(raw.closed().await, "level {level} packet {packet:?}");
        }
    }
    let mut ok = v4(addr, "still-fine").await;
    ok.subscribe("x", QoS::AtMostOnce).await;
    broker.shutdown().await;
}

/// Packets sent right behind the CONNECT, in the same write, are handled at once (they
/// used to wait in the buffer until the client sent something else).
#[tokio::test]
async fn packets_pipelined_behind_connect_are_handled() {
    let broker = start().await;
    let mut wire = Wire::connect(addr(&broker)).await;
    let mut burst = connect_packet(4, "eager", 30, true);
    burst.extend(subscribe_packet(1, "echo/#", 0));
    burst.extend(publish_packet(b"echo/1", b"hi", 0, 0, false));
    wire.send(&burst).await;
    let types: Vec<u8> = [
        wire.read_packet().await,
        wire.read_packet().await,
        wire.read_packet().await,
    ]
    .into_iter()
    .map(|p| p.expect("a packet").0 >> 4)
    .collect();
    assert_eq!(types, vec![2, 9, 3], "CONNACK, SUBACK, then the PUBLISH");
    broker.shutdown().await;
}
