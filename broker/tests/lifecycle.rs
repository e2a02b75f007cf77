//! Listeners from config, connection limits, TCP_NODELAY, and clean shutdown.

use std::time::{Duration, Instant};

use hcore_broker::{BrokerConfig, ListenerConfig, LocalOptions, QoS};
use hcore_tests::broker::*;

#[tokio::test]
async fn extra_listeners_share_one_broker_and_enforce_their_limits() {
    let config = BrokerConfig {
        listeners: vec![
            ListenerConfig::new("lan", "127.0.0.1:0".parse().unwrap()),
            ListenerConfig {
                max_connections: Some(1),
                ..ListenerConfig::new("small", "127.0.0.1:0".parse().unwrap())
            },
        ],
        ..BrokerConfig::default()
    };
    let broker = start_with(config, None).await;
    let (a, b) = (broker.local_addrs()[0], broker.local_addrs()[1]);
    assert_ne!(a, b);
    let mut on_a = v4(a, "on-a").await;
    on_a.subscribe("x/#", rumqttc::QoS::AtMostOnce).await;
    let on_b = v5(b, "on-b").await;
    on_b.client
        .publish("x/1", rumqttc::v5::mqttbytes::QoS::AtMostOnce, false, "hi")
        .await
        .unwrap();
    assert_eq!(on_a.next_publish().await.unwrap().payload, "hi".as_bytes());
    // The second listener allows one connection: another one is closed at once.
    let mut extra = Wire::connect(b).await;
    extra.send(&connect_packet(4, "too-many", 30, true)).await;
    assert!(extra.closed().await);
    broker.shutdown().await;
}

#[tokio::test]
async fn bind_errors_name_the_address() {
    let first = start().await;
    let taken = addr(&first);
    let err = hcore_broker::Broker::start(BrokerConfig::with_listener(taken))
        .await
        .err()
        .expect("port in use");
    assert!(err.to_string().contains(&taken.to_string()), "{err}");
    first.shutdown().await;
}

/// With Nagle's algorithm on the broker's sockets, a QoS 1 round trip takes ~40 ms
/// (Nagle waits for the delayed ACK) every time; with TCP_NODELAY it is well under 1 ms.
/// The median of 100 round trips tells the two apart without depending on how fast or
/// loaded the machine is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_ping_pong_has_no_nagle_stall() {
    let broker = start().await;
    let addr = addr(&broker);
    let mut echo = v4(addr, "echo").await;
    echo.subscribe("ping", rumqttc::QoS::AtLeastOnce).await;
    let mut caller = v4(addr, "caller").await;
    caller.subscribe("pong", rumqttc::QoS::AtLeastOnce).await;
    let echo_client = echo.client.clone();
    let responder = tokio::spawn(async move {
        while let Some(p) = echo.next_publish().await {
            echo_client
                .publish("pong", rumqttc::QoS::AtLeastOnce, false, p.payload)
                .await
                .unwrap();
        }
    });
    let mut rtts = Vec::new();
    for i in 0..100u32 {
        let start = Instant::now();
        caller
            .client
            .publish(
                "ping",
                rumqttc::QoS::AtLeastOnce,
                false,
                i.to_be_bytes().to_vec(),
            )
            .await
            .unwrap();
        let p = caller.next_publish().await.expect("pong");
        assert_eq!(p.payload, i.to_be_bytes().to_vec());
        rtts.push(start.elapsed());
    }
    rtts.sort();
    let median = rtts[rtts.len() / 2];
    assert!(
        median < Duration::from_millis(20),
        "median QoS 1 round trip {median:?}: Nagle stall"
    );
    responder.abort();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_everything_and_returns() {
    let broker = start().await;
    let addr = addr(&broker);
    let c4 = v4(addr, "c4").await;
    let mut c5 = v5(addr, "c5").await;
    let (_local, mut lrx) = broker
        .local_client("local", LocalOptions::default())
        .await
        .unwrap();
    _local.subscribe("a", QoS::AtMostOnce).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), broker.shutdown())
        .await
        .expect("shutdown returns");
    // v5 clients are told why (rumqttc reports the server's DISCONNECT as an error).
    let mut why = String::new();
    while let Ok(Some(e)) = tokio::time::timeout(WAIT, c5.events.recv()).await {
        if let Err(e) = e {
            why = e;
            break;
        }
    }
    assert!(why.contains("ServerShuttingDown"), "{why}");
    assert!(lrx.recv().await.is_none(), "in-process clients are closed");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
    drop(c4);
}
