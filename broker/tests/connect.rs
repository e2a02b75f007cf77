//! One port for MQTT 3.1.1 and 5, keep-alive 0, and CONNECT refusals with the right
//! reason code for each protocol version.

use std::sync::Arc;

use hcore_broker::{ConnectInfo, ConnectRefusal, Hooks};
use hcore_tests::broker::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_v311_and_v5_clients() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut sub4 = v4(addr, "sub4").await;
    let mut sub5 = v5(addr, "sub5").await;
    sub4.subscribe("t/#", rumqttc::QoS::AtLeastOnce).await;
    sub5.subscribe("t/#", rumqttc::v5::mqttbytes::QoS::AtLeastOnce)
        .await;

    let pub4 = v4(addr, "pub4").await;
    pub4.client
        .publish("t/from4", rumqttc::QoS::AtLeastOnce, false, "four")
        .await
        .unwrap();
    let pub5 = v5(addr, "pub5").await;
    pub5.client
        .publish(
            "t/from5",
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            "five",
        )
        .await
        .unwrap();
    let out = mosquitto_pub(addr, &["-V", "311", "-t", "t/mosq311", "-m", "m311"]).await;
    assert!(out.status.success(), "{out:?}");
    let out = mosquitto_pub(addr, &["-V", "5", "-t", "t/mosq5", "-m", "m5"]).await;
    assert!(out.status.success(), "{out:?}");

    let mut got4 = Vec::new();
    let mut got5 = Vec::new();
    for _ in 0..4 {
        let p = sub4
            .next_publish()
            .await
            .expect("v3.1.1 subscriber got a publish");
        got4.push(String::from_utf8(p.payload.to_vec()).unwrap());
        let p = sub5
            .next_publish()
            .await
            .expect("v5 subscriber got a publish");
        got5.push(String::from_utf8(p.payload.to_vec()).unwrap());
    }
    got4.sort();
    got5.sort();
    assert_eq!(got4, ["five", "four", "m311", "m5"]);
    assert_eq!(got5, got4);
    broker.shutdown().await;
}

#[tokio::test]
async fn mosquitto_sub_receives_from_both_protocol_versions() {
    let broker = start().await;
    let addr = addr(&broker);
    // A retained probe tells us when mosquitto_sub's subscription is in place.
    let out = mosquitto_pub(addr, &["-V", "5", "-t", "dev/probe", "-m", "p", "-r"]).await;
    assert!(out.status.success());
    let mut sub = mosquitto_sub(addr, &["-V", "311", "-t", "dev/#", "-v", "-C", "2"]);
    let mut lines = lines_of(&mut sub);
    assert_eq!(next_line(&mut lines).await, "dev/probe p");
    let pub4 = v4(addr, "p").await;
    pub4.client
        .publish(
            "dev/lamp",
            rumqttc::QoS::AtMostOnce,
            false,
            "{\"state\":\"ON\"}",
        )
        .await
        .unwrap();
    assert_eq!(next_line(&mut lines).await, "dev/lamp {\"state\":\"ON\"}");
    broker.shutdown().await;
}

#[tokio::test]
async fn keep_alive_zero_is_accepted_for_both_versions() {
    let broker = start().await;
    let addr = addr(&broker);
    for level in [4u8, 5] {
        let mut raw = Wire::connect(addr).await;
        raw.send(&connect_packet(level, &format!("ka0-{level}"), 0, true))
            .await;
        let (b1, body) = raw.read_packet().await.expect("CONNACK");
        assert_eq!(b1, 0x20);
        assert_eq!(body[1], 0, "level {level} accepted");
        raw.send(&PINGREQ).await;
        let (b1, _) = raw.read_packet().await.expect("PINGRESP");
        assert_eq!(b1, 0xd0);
    }
    broker.shutdown().await;
}

struct Creds;

impl Hooks for Creds {
    fn authenticate(&self, c: &ConnectInfo<'_>) -> Result<(), ConnectRefusal> {
        match (c.username, c.password) {
            (Some("good"), Some("secret")) => Ok(()),
            (Some("banned"), _) => Err(ConnectRefusal::NotAuthorized),
            _ => Err(ConnectRefusal::BadCredentials),
        }
    }
}

#[tokio::test]
async fn refused_connect_gets_the_right_reason_code() {
    let broker = start_with(test_config(), Some(Arc::new(Creds))).await;
    let addr = addr(&broker);
    let cases = [
        (4u8, "good", "secret", 0x00u8),
        (4, "good", "wrong", 0x04),
        (4, "banned", "x", 0x05),
        (5, "good", "secret", 0x00),
        (5, "good", "wrong", 0x86),
        (5, "banned", "x", 0x87),
    ];
    for (level, user, pass, code) in cases {
        let mut raw = Wire::connect(addr).await;
        raw.send(&connect_login(
            level,
            &format!("c-{level}-{user}-{pass}"),
            user,
            pass,
        ))
        .await;
        let (b1, body) = raw.read_packet().await.expect("CONNACK");
        assert_eq!(b1, 0x20);
        assert_eq!(body[1], code, "level {level} user {user} pass {pass}");
        if code != 0 {
            assert!(raw.closed().await, "refused connection is closed");
        }
    }
    // rumqttc sees the refusal as a connection error.
    let mut o = v4_options(addr, "rc");
    o.set_credentials("good", "wrong");
    let err = v4_with(o).await.err().expect("refused");
    assert!(
        err.contains("BadUserNamePassword") || err.contains("refused"),
        "{err}"
    );
    assert!(broker.metrics().connections_refused >= 4);
    broker.shutdown().await;
}

#[tokio::test]
async fn mqtt_3_1_is_refused_with_unacceptable_protocol_version() {
    let broker = start().await;
    let mut raw = Wire::connect(addr(&broker)).await;
    let mut body = vec![0, 6];
    body.extend_from_slice(b"MQIsdp");
    body.extend_from_slice(&[3, 2, 0, 30, 0, 1, b'x']);
    raw.send(&raw_packet(0x10, &body)).await;
    let (b1, body) = raw.read_packet().await.expect("CONNACK");
    assert_eq!((b1, body), (0x20, vec![0, 1]));
    assert!(raw.closed().await);
    broker.shutdown().await;
}

/// The port of the broker's first listener, reached over loopback.
fn via_loopback(b: &hcore_broker::Broker) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], b.local_addrs()[0].port()))
}

/// The CONNACK's reason code (and the body's length).
async fn connack_code(to: std::net::SocketAddr, packet: &[u8]) -> (u8, u8) {
    let mut raw = Wire::connect(to).await;
    raw.send(packet).await;
    let (b1, body) = raw.read_packet().await.expect("CONNACK");
    assert_eq!(b1, 0x20);
    (body[1], body.len() as u8)
}

#[tokio::test]
async fn anonymous_clients_are_let_in_on_loopback_listeners_only_unless_configured() {
    use hcore_broker::{BrokerConfig, ListenerConfig};
    let listener = |bind: &str, allow: Option<bool>| BrokerConfig {
        listeners: vec![ListenerConfig {
            allow_anonymous: allow,
            ..ListenerConfig::new("t", bind.parse().unwrap())
        }],
        ..BrokerConfig::default()
    };
    // A listener on every address (reachable from the LAN): no anonymous clients.
    let lan = start_with(listener("0.0.0.0:0", None), None).await;
    let addr = via_loopback(&lan);
    assert_eq!(
        connack_code(addr, &connect_packet(4, "anon4", 30, true))
            .await
            .0,
        0x05
    );
    assert_eq!(
        connack_code(addr, &connect_packet(5, "anon5", 30, true))
            .await
            .0,
        0x87
    );
    // With a user name the authentication hook decides (the default hook accepts).
    assert_eq!(
        connack_code(addr, &connect_login(4, "u4", "user", "pw"))
            .await
            .0,
        0
    );
    assert_eq!(
        connack_code(addr, &connect_login(5, "u5", "user", "pw"))
            .await
            .0,
        0
    );
    assert_eq!(lan.handle().metrics().connections_refused, 2);
    lan.shutdown().await;
    // Allowed on purpose.
    let open = start_with(listener("0.0.0.0:0", Some(true)), None).await;
    let addr = via_loopback(&open);
    assert_eq!(
        connack_code(addr, &connect_packet(4, "anon", 30, true))
            .await
            .0,
        0
    );
    open.shutdown().await;
    // Refused on purpose, even on loopback.
    let closed = start_with(listener("127.0.0.1:0", Some(false)), None).await;
    let local = closed.local_addrs()[0];
    assert_eq!(
        connack_code(local, &connect_packet(4, "anon", 30, true))
            .await
            .0,
        0x05
    );
    closed.shutdown().await;
}
