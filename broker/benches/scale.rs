//! Broker scale benchmark: what a months-long home installation does to a broker, hcore's
//! side by side with mosquitto (TCP_NODELAY on), each in its own process.
//!
//! - default clients: QoS 1 request/response between two clients that leave Nagle's
//!   algorithm on and write one packet at a time (paho / libmosquitto defaults);
//! - idle connections: RSS per connected, idle MQTT client;
//! - 300,000 distinct topics published (a `#` subscriber reading), then idle: RSS;
//! - 90,000 filters: three rounds of 30 clients x 1,000 filters that then disconnect:
//!   RSS after each round, and QoS 0 round trip p50 before and after;
//! - restart with 100,000 retained messages: spawn to listening, to first CONNACK, and
//!   until a `#` subscriber has all of them back.
//!
//! Run: `cargo bench -p hcore-broker --bench scale` (needs `mosquitto` on PATH).

#[path = "brokers.rs"]
mod brokers;
#[path = "echo.rs"]
mod echo;
#[path = "mqtt_client.rs"]
mod mqtt_client;
#[path = "support.rs"]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use brokers::{serve_if_asked, spawn_broker, BrokerProcess};
use bytes::{BufMut, BytesMut};
use echo::{percentiles, round_trips, Clients};
use hcore_broker::wire::encode::put_varint;
use mqtt_client::{connect, publish, Reader, Writer};
use support::{free_port, rss_mb, wait_port};

const IDLE_CONNECTIONS: usize = 2000;
const TOPICS: usize = 300_000;
const FILTER_ROUNDS: usize = 3;
const FILTER_CLIENTS: usize = 30;
const FILTERS_PER_CLIENT: usize = 1000;
const RETAINED: usize = 100_000;

fn main() {
    if serve_if_asked() {
        return;
    }
    let rt = support::runtime();
    let mut rows: Vec<(String, f64, f64)> = Vec::new();
    let mut add = |name: &str, h: f64, m: f64| rows.push((name.to_string(), h, m));
    let both = |f: &dyn Fn(&'static str) -> Vec<f64>| (f("hcore"), f("mosquitto"));

    let (h, m) = both(&|k| rt.block_on(default_clients(k)));
    add("default clients QoS1 req/resp p50 (us)", h[0], m[0]);
    add("default clients QoS1 req/resp p99 (us)", h[1], m[1]);
    let (h, m) = both(&|k| rt.block_on(idle_connections(k)));
    add("RSS per idle connection (KB)", h[0], m[0]);
    let (h, m) = both(&|k| rt.block_on(distinct_topics(k)));
    add("300k topics: RSS before (MB)", h[0], m[0]);
    add("300k topics: RSS after publishing (MB)", h[1], m[1]);
    add("300k topics: RSS idle after (MB)", h[2], m[2]);
    let (h, m) = both(&|k| rt.block_on(filter_churn(k)));
    add("90k filters: RSS before (MB)", h[0], m[0]);
    for r in 0..FILTER_ROUNDS {
        add(
            &format!("90k filters: RSS after round {} (MB)", r + 1),
            h[1 + r],
            m[1 + r],
        );
    }
    add("90k filters: QoS0 p50 before (us)", h[4], m[4]);
    add("90k filters: QoS0 p50 after (us)", h[5], m[5]);
    let (h, m) = both(&|k| rt.block_on(restart_with_retained(k)));
    add("100k retained: spawn to listening (ms)", h[0], m[0]);
    add("100k retained: spawn to CONNACK (ms)", h[1], m[1]);
    add("100k retained: spawn to all delivered (ms)", h[2], m[2]);
    add("100k retained: delivered after restart", h[3], m[3]);

    println!("\nbroker scale benchmark (loopback, 2 cores)");
    println!(
        "{:<46}{:>12}{:>12}{:>10}",
        "", "hcore", "mosquitto", "hc/mosq"
    );
    for (name, h, m) in rows {
        println!("{name:<46}{h:>12.1}{m:>12.1}{:>10.2}", h / m);
    }
}

async fn start(kind: &str, data: Option<&std::path::Path>) -> (BrokerProcess, SocketAddr) {
    let port = free_port();
    let broker = spawn_broker(kind, port, data);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_port(addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    (broker, addr)
}

async fn default_clients(kind: &'static str) -> Vec<f64> {
    let (_broker, addr) = start(kind, None).await;
    let (p50, p99) = percentiles(round_trips(addr, 1, 200, Clients::Default).await);
    eprintln!("{kind}: default clients p50 {p50:.0} us, p99 {p99:.0} us");
    vec![p50, p99]
}

async fn idle_connections(kind: &'static str) -> Vec<f64> {
    let (broker, addr) = start(kind, None).await;
    let before = rss_mb(broker.pid());
    let mut held = Vec::with_capacity(IDLE_CONNECTIONS);
    for i in 0..IDLE_CONNECTIONS {
        held.push(connect(addr, &format!("idle-{i}")).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_mb(broker.pid());
    let kb = (after - before) * 1024.0 / IDLE_CONNECTIONS as f64;
    eprintln!("{kind}: {IDLE_CONNECTIONS} idle connections: {before:.1} -> {after:.1} MB, {kb:.2} KB each");
    vec![kb]
}

/// Waits until everything `w` sent before is processed: a QoS 1 publish and its PUBACK.
async fn sync(r: &mut Reader, w: &mut Writer) {
    let mut out = BytesMut::new();
    publish(&mut out, "bench/sync", b"", 1, 1);
    w.send(&out).await.unwrap();
    while r.next().await.unwrap().kind() != 4 {}
}

/// Reads and discards everything a subscriber gets, until the connection closes.
fn drain(mut r: Reader) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move { while r.fill().await.is_ok_and(|n| n > 0) {} })
}

async fn distinct_topics(kind: &'static str) -> Vec<f64> {
    let (broker, addr) = start(kind, None).await;
    let before = rss_mb(broker.pid());
    let (mut sr, mut sw) = connect(addr, "everything").await.unwrap();
    sw.subscribe(&mut sr, "#", 0).await.unwrap();
    let reader = drain(sr);
    let (mut pr, mut pw) = connect(addr, "publisher").await.unwrap();
    let mut out = BytesMut::new();
    for chunk in (0..TOPICS).collect::<Vec<_>>().chunks(1000) {
        for i in chunk {
            publish(
                &mut out,
                &format!("sensors/{i}/temperature"),
                &[0x42; 64],
                0,
                0,
            );
        }
        pw.send(&out).await.unwrap();
        out.clear();
    }
    sync(&mut pr, &mut pw).await;
    let peak = rss_mb(broker.pid());
    drop((pr, pw, sw));
    reader.abort();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_mb(broker.pid());
    eprintln!("{kind}: 300k topics: {before:.1} -> {peak:.1} -> idle {idle:.1} MB");
    vec![before, peak, idle]
}

/// A SUBSCRIBE with many filters at QoS 0.
fn subscribe_many(filters: &[String]) -> BytesMut {
    let len = 2 + filters.iter().map(|f| 3 + f.len()).sum::<usize>();
    let mut b = BytesMut::new();
    b.put_u8(0x82);
    put_varint(&mut b, len);
    b.put_u16(1);
    for f in filters {
        b.put_u16(f.len() as u16);
        b.put_slice(f.as_bytes());
        b.put_u8(0);
    }
    b
}

async fn filter_churn(kind: &'static str) -> Vec<f64> {
    let (broker, addr) = start(kind, None).await;
    let p50 = |addr| async move { percentiles(round_trips(addr, 0, 1000, Clients::Tuned).await).0 };
    let latency_before = p50(addr).await;
    let mut out = vec![rss_mb(broker.pid())];
    for round in 0..FILTER_ROUNDS {
        let mut clients = Vec::new();
        for c in 0..FILTER_CLIENTS {
            let (mut r, mut w) = connect(addr, &format!("f-{round}-{c}")).await.unwrap();
            let filters: Vec<String> = (0..FILTERS_PER_CLIENT)
                .map(|j| format!("home/r{round}/c{c}/device{j}/+"))
                .collect();
            w.send(&subscribe_many(&filters)).await.unwrap();
            while r.next().await.unwrap().kind() != 9 {}
            clients.push((r, w));
        }
        drop(clients);
        // Give the broker a moment (hcore returns freed memory within a second).
        tokio::time::sleep(Duration::from_millis(2500)).await;
        out.push(rss_mb(broker.pid()));
    }
    let latency_after = p50(addr).await;
    out.extend([latency_before, latency_after]);
    eprintln!(
        "{kind}: 90k filters: RSS {:?} MB, QoS0 p50 {latency_before:.0} -> {latency_after:.0} us",
        &out[..4]
    );
    out
}

async fn restart_with_retained(kind: &'static str) -> Vec<f64> {
    let dir = std::env::temp_dir().join(format!("hcore-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (broker, addr) = start(kind, Some(&dir)).await;
    // Ten bridges, each with a tenth of the devices (one client may store 8 MB).
    for bridge in 0..10 {
        let (mut pr, mut pw) = connect(addr, &format!("bridge-{bridge}")).await.unwrap();
        let mine: Vec<usize> = (0..RETAINED).filter(|i| i % 10 == bridge).collect();
        publish_retained(&mut pw, &mine).await;
        sync(&mut pr, &mut pw).await;
    }
    broker.stop();
    let out = timed_restart(kind, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Publishes a retained 100-byte state for each device.
async fn publish_retained(w: &mut Writer, devices: &[usize]) {
    let mut out = BytesMut::new();
    for chunk in devices.chunks(1000) {
        for i in chunk {
            let topic = format!("zigbee2mqtt/device{i}/state");
            let len = 2 + topic.len() + 100;
            out.put_u8(0x31);
            put_varint(&mut out, len);
            out.put_u16(topic.len() as u16);
            out.put_slice(topic.as_bytes());
            out.put_slice(&[b'x'; 100]);
        }
        w.send(&out).await.unwrap();
        out.clear();
    }
}

/// Restarts `kind` on `dir` and measures how soon it serves its retained messages.
async fn timed_restart(kind: &'static str, dir: &std::path::Path) -> Vec<f64> {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t0 = Instant::now();
    let _broker = spawn_broker(kind, port, Some(dir));
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let listening = t0.elapsed();
    let (mut r, mut w) = connect(addr, "reader").await.unwrap();
    let connack = t0.elapsed();
    w.subscribe(&mut r, "zigbee2mqtt/#", 0).await.unwrap();
    let mut got = 0;
    while got < RETAINED {
        match tokio::time::timeout(Duration::from_secs(5), r.next()).await {
            Ok(Ok(p)) if p.kind() == 3 => got += 1,
            Ok(Ok(_)) => {}
            _ => break,
        }
    }
    let all = t0.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    eprintln!(
        "{kind}: restart with {RETAINED} retained: listening {:.1} ms, CONNACK {:.1} ms, {got} delivered by {:.0} ms",
        ms(listening), ms(connack), ms(all)
    );
    vec![ms(listening), ms(connack), ms(all), got as f64]
}
