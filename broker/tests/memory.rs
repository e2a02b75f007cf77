//! Bounded memory: 3 million QoS 0 messages through one topic to a slow subscriber keep
//! the broker's RSS under 64 MB (rumqttd's sample config reached 1 GB), and every message
//! the slow subscriber misses is counted. The broker runs in this test process (its own
//! binary, so no other test shares the RSS); the clients are raw sockets that hold no
//! messages.

use std::time::Duration;

use hcore_tests::broker::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_million_messages_to_a_slow_subscriber_stay_under_64_mb() {
    const N: usize = 3_000_000;
    let broker = start().await;
    let addr = addr(&broker);
    let h = broker.handle();

    // The slow subscriber: reads 4 KB every 5 ms (~0.8 MB/s) until told to hurry, then
    // drains what is left until the socket is quiet for a second.
    let mut slow = raw_connected(addr, "slow", 0).await;
    slow.send(&subscribe_packet(1, "flood/t", 0)).await;
    assert_eq!(slow.read_packet().await.expect("SUBACK").0, 0x90);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        let mut total = 0u64;
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                r = slow.stream.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n as u64,
                },
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_secs(1), slow.stream.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });

    // Peak RSS sampler.
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        loop {
            peak = peak.max(rss_bytes());
            tokio::select! {
                _ = &mut done_rx => break peak,
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    });

    // The publisher: raw QoS 0 publishes of 64-byte payloads, written in 64 KB batches.
    let mut publisher = raw_connected(addr, "flood", 0).await;
    let one = publish_packet(b"flood/t", &[0x5a; 64], 0, 0, false);
    let per_batch = 65_536 / one.len();
    let batch: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * per_batch)
        .collect();
    let mut sent = 0;
    while sent < N {
        publisher.stream.write_all(&batch).await.unwrap();
        sent += per_batch;
    }
    // A marker through a fresh subscriber shows the broker has processed the flood.
    let mut check = v4(addr, "check").await;
    check
        .subscribe("flood/done", rumqttc::QoS::AtMostOnce)
        .await;
    publisher
        .stream
        .write_all(&publish_packet(b"flood/done", b"x", 0, 0, false))
        .await
        .unwrap();
    assert!(check.next_publish().await.is_some());

    let _ = done_tx.send(());
    let peak = sampler.await.unwrap();
    let _ = stop_tx.send(());
    let read = reader.await.unwrap();
    let m = h.metrics();
    println!(
        "sent {sent} messages; slow subscriber read {read} bytes; dropped {} (edge) + {} (router); peak RSS {:.1} MB",
        m.dropped_slow_subscriber,
        m.dropped_expired,
        peak as f64 / 1e6
    );
    assert!(peak < 64 * 1024 * 1024, "peak RSS {peak} bytes");
    assert!(
        m.dropped_slow_subscriber > 0,
        "drops for the slow subscriber are counted"
    );
    // Every message was either delivered to the slow subscriber or counted as dropped.
    let delivered = read / one.len() as u64;
    assert_eq!(
        delivered + m.dropped_slow_subscriber + m.dropped_expired,
        sent as u64,
        "delivered + dropped = sent: no silent loss"
    );
    broker.shutdown().await;
}
