//! Hostile input over raw TCP. Each case closes only the offending connection; a witness
//! client connected before is checked during and after every case.

use std::net::SocketAddr;

use hcore_tests::broker::*;
use rumqttc::QoS;

struct Witness {
    sub: V4,
    publisher: V4,
    n: u32,
}

impl Witness {
    async fn new(addr: SocketAddr) -> Witness {
        let mut sub = v4(addr, "witness").await;
        sub.subscribe("w/#", QoS::AtLeastOnce).await;
        let publisher = v4(addr, "witness-pub").await;
        Witness {
            sub,
            publisher,
            n: 0,
        }
    }

    /// The already-connected client is still served.
    async fn check(&mut self) {
        self.n += 1;
        let payload = self.n.to_string();
        self.publisher
            .client
            .publish("w/check", QoS::AtLeastOnce, false, payload.clone())
            .await
            .unwrap();
        let got = self.sub.next_publish().await.expect("witness still served");
        assert_eq!(got.payload, payload.as_bytes());
    }
}

async fn setup() -> (hcore_broker::Broker, SocketAddr, Witness) {
    let mut config = test_config();
    config.max_packet_size = 1024;
    config.connect_timeout_ms = 500;
    let broker = start_with(config, None).await;
    let addr = addr(&broker);
    let witness = Witness::new(addr).await;
    (broker, addr, witness)
}

#[tokio::test]
async fn garbage_bytes_close_the_connection() {
    let (broker, addr, mut w) = setup().await;
    let mut raw = Wire::connect(addr).await;
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(raw.closed().await);
    let mut raw = Wire::connect(addr).await;
    raw.send(&[0x10, 0x04, 0xde, 0xad, 0xbe, 0xef]).await;
    assert!(raw.closed().await);
    w.check().await;
    // Garbage after a valid CONNECT.
    let mut raw = raw_connected(addr, "g", 30).await;
    raw.send(&[0xf5, 0x00, 0x01, 0x02]).await;
    assert!(raw.closed().await);
    w.check().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn truncated_packets_close_only_their_connection() {
    let (broker, addr, mut w) = setup().await;
    // A PUBLISH announcing 100 bytes, 10 sent, then the client goes away.
    let mut raw = raw_connected(addr, "t1", 30).await;
    let mut p = vec![0x30, 100, 0, 3, b'a', b'/', b'b'];
    p.extend_from_slice(b"xyz");
    raw.send(&p).await;
    w.check().await;
    raw.stream.shutdown().await.ok();
    assert!(raw.closed().await);
    // A truncated CONNECT.
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_packet(4, "t2", 30, true)[..8]).await;
    raw.stream.shutdown().await.ok();
    assert!(raw.closed().await);
    // A client that opens a socket and never sends CONNECT is closed at the timeout.
    let mut idle = Wire::connect(addr).await;
    assert!(idle.closed().await);
    w.check().await;
    broker.shutdown().await;
}

use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn remaining_length_over_the_limit_closes_before_the_body_arrives() {
    let (broker, addr, mut w) = setup().await;
    // v3.1.1: header says 2000 bytes (limit 1024); no body is ever sent.
    let mut raw = raw_connected(addr, "big4", 30).await;
    raw.send(&[0x30, 0xd0, 0x0f]).await;
    assert!(raw.closed().await);
    // v5: the broker says why (DISCONNECT 0x95 packet too large).
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_packet(5, "big5", 30, true)).await;
    assert_eq!(raw.read_packet().await.expect("CONNACK").0, 0x20);
    raw.send(&[0x30, 0xd0, 0x0f]).await;
    let (b1, body) = raw.read_packet().await.expect("DISCONNECT");
    assert_eq!((b1, body[0]), (0xe0, 0x95));
    assert!(raw.closed().await);
    // A malformed remaining length (five bytes).
    let mut raw = raw_connected(addr, "len", 30).await;
    raw.send(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]).await;
    assert!(raw.closed().await);
    // An oversized CONNECT.
    let mut raw = Wire::connect(addr).await;
    raw.send(&[0x10, 0xff, 0x7f]).await;
    assert!(raw.closed().await);
    w.check().await;
    assert!(broker.metrics().protocol_errors >= 3);
    broker.shutdown().await;
}

#[tokio::test]
async fn publish_before_connect_and_second_connect_close_the_connection() {
    let (broker, addr, mut w) = setup().await;
    let mut raw = Wire::connect(addr).await;
    raw.send(&publish_packet(b"a/b", b"x", 0, 0, false)).await;
    assert!(raw.closed().await);
    let mut raw = raw_connected(addr, "twice", 30).await;
    raw.send(&connect_packet(4, "twice", 30, true)).await;
    assert!(raw.closed().await);
    w.check().await;
    broker.shutdown().await;
}

#[tokio::test]
async fn invalid_topics_in_publish_close_the_connection() {
    let (broker, addr, mut w) = setup().await;
    let mut raw = raw_connected(addr, "utf8", 30).await;
    raw.send(&publish_packet(&[b'a', 0xff, 0xfe], b"x", 0, 0, false))
        .await;
    assert!(raw.closed().await);
    let mut raw = raw_connected(addr, "wild", 30).await;
    raw.send(&publish_packet(b"w/+", b"x", 0, 0, false)).await;
    assert!(raw.closed().await);
    let mut raw = Wire::connect(addr).await;
    raw.send(&connect_packet(5, "wild5", 30, true)).await;
    assert_eq!(raw.read_packet().await.expect("CONNACK").0, 0x20);
    // v5 PUBLISH "w/#" with an empty property block.
    raw.send(&raw_packet(0x30, &[0, 3, b'w', b'/', b'#', 0, b'x']))
        .await;
    let (b1, body) = raw.read_packet().await.expect("DISCONNECT");
    assert_eq!((b1, body[0]), (0xe0, 0x90));
    // A wildcard publish must not have reached the witness (subscribed to w/#).
    w.check().await;
    // A '$' filter other than $SYS is refused in the SUBACK; the client stays.
    let mut raw = raw_connected(addr, "sys", 30).await;
    raw.send(&subscribe_packet(3, "$private/#", 0)).await;
    let (b1, body) = raw.read_packet().await.expect("SUBACK");
    assert_eq!((b1, body), (0x90, vec![0, 3, 0x80]));
    raw.send(&PINGREQ).await;
    assert_eq!(raw.read_packet().await.expect("still connected").0, 0xd0);
    w.check().await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_dropped_mid_connect() {
    let (broker, addr, mut w) = setup().await;
    let h = broker.handle();
    let before = h.metrics();
    let storm = tokio::spawn(async move {
        let connect = connect_packet(4, "storm", 30, true);
        let mut tasks = Vec::new();
        for i in 0..1000 {
            let part = connect[..(i % (connect.len() - 1)) + 1].to_vec();
            tasks.push(tokio::spawn(async move {
                match tokio::net::TcpStream::connect(addr).await {
                    Ok(mut s) => s.write_all(&part).await.is_ok(),
                    Err(_) => false,
                }
            }));
            if i % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        let mut reached = 0u64;
        for t in tasks {
            reached += u64::from(t.await.unwrap_or(false));
        }
        reached
    });
    // The witness is served during the storm...
    for _ in 0..10 {
        w.check().await;
    }
    let reached = storm.await.unwrap();
    // (A connection attempt can fail when 1,000 arrive at once and the listen backlog
    // overflows; every one that reached the broker counts.)
    assert!(
        reached >= 900,
        "{reached} of 1000 connections reached the broker"
    );
    // ...and after it, once every connection the broker accepted has been dealt with.
    wait_metric(&h, |m| {
        let accepted = m.connections_accepted - before.connections_accepted;
        accepted >= 900 && m.connections_refused - before.connections_refused == accepted
    })
    .await;
    w.check().await;
    let mut fresh = v4(addr, "after-storm").await;
    fresh.subscribe("a/#", QoS::AtMostOnce).await;
    broker.shutdown().await;
}
