//! Kernel benchmark, in one run:
//!
//! * RPC round trip, SDK over TCP -> kernel `state.get`, against a raw QoS 0 ping-pong
//!   through the same broker and through mosquitto (TCP_NODELAY on);
//! * in-process RPC (SDK in-process -> kernel, no TCP);
//! * `state.set` -> a subscriber sees the retained update;
//! * durable `storage.set` writes/s with 1 and 32 concurrent callers;
//! * RSS of the `hcore run` process (broker + kernel) after all of it.
//!
//! Run: `cargo bench -p hcore --bench kernel` (needs `mosquitto` on PATH);
//! `BENCH_ONLY=storage` runs the durable-write part alone.

// The broker benchmark's raw client; this benchmark uses only part of it.
#[allow(dead_code)]
#[path = "../../../broker/benches/mqtt_client.rs"]
mod mqtt_client;
#[path = "../../../broker/benches/support.rs"]
mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hcore_broker::BrokerConfig;
use hcore_client::{Client, ClientOptions};
use hcore_kernel::settings::Settings;
use hcore_kernel::{Hub, KernelConfig};
use serde_json::json;
use support::{free_port, rss_mb, wait_port};

const ROUNDS: usize = 3000;
const WARMUP: usize = 300;

fn main() {
    support::runtime().block_on(bench());
}

struct Stats(Vec<Duration>);

impl Stats {
    fn p(&self, q: f64) -> f64 {
        let mut v = self.0.clone();
        v.sort();
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6
    }
}

fn temp_dir() -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("hcore-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&p).unwrap();
    p
}

async fn bench() {
    // hcore run (broker + kernel) as its own process, for RSS.
    let data = temp_dir();
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut hcore: Child = Command::new(env!("CARGO_BIN_EXE_hcore"))
        .args([
            "run",
            "--log",
            "warn",
            "--listen",
            &addr.to_string(),
            "--data-dir",
        ])
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(addr).await;
    let url = format!("mqtt://{addr}");
    if std::env::var("BENCH_ONLY").as_deref() == Ok("storage") {
        // A quick look at durable writes alone (for profiling).
        let w1 = storage_writes(&url, 1, Duration::from_secs(3)).await;
        let w32 = storage_writes(&url, 32, Duration::from_secs(3)).await;
        println!("durable storage.set: {w1:.0} writes/s with 1 caller, {w32:.0} writes/s with 32 callers");
        let _ = hcore.kill();
        let _ = hcore.wait();
        let _ = std::fs::remove_dir_all(&data);
        return;
    }
    // mosquitto for the reference ping-pong.
    let mport = free_port();
    let conf = std::env::temp_dir().join(format!("hcore-bench-{mport}.conf"));
    std::fs::write(
        &conf,
        format!("listener {mport} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"),
    )
    .unwrap();
    let mut mosquitto = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto");
    let maddr = SocketAddr::from(([127, 0, 0, 1], mport));
    wait_port(maddr).await;

    let client = Client::connect(&url, ClientOptions::new("bench").quiet())
        .await
        .unwrap();
    client.state().set("bench/x", json!(0)).await.unwrap();

    // Alternate the three round trips so they see the same machine conditions.
    let (mut raw_h, mut raw_m, mut rpc, mut raw_rpc) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        raw_h.extend(ping_pong(addr, ROUNDS / 3).await);
        raw_m.extend(ping_pong(maddr, ROUNDS / 3).await);
        rpc.extend(rpc_round_trips(&client, ROUNDS / 3).await);
        raw_rpc.extend(raw_rpc_round_trips(addr, ROUNDS / 3).await);
    }
    let (raw_h, raw_m, rpc, raw_rpc) = (Stats(raw_h), Stats(raw_m), Stats(rpc), Stats(raw_rpc));

    let retained = Stats(state_to_subscriber(&url, &client).await);
    let w1 = storage_writes(&url, 1, Duration::from_secs(3)).await;
    let w32 = storage_writes(&url, 32, Duration::from_secs(3)).await;
    let rss = rss_mb(hcore.id());

    // The in-process case gets its own single-threaded runtime, as an embedding
    // application on a small device would run it.
    let (inproc, local_pp) = {
        let (rpc, pp) = tokio::task::spawn_blocking(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(in_process_rpc())
        })
        .await
        .unwrap();
        (Stats(rpc), pp)
    };
    let inproc_mt = Stats(in_process_rpc().await.0);

    let _ = hcore.kill();
    let _ = hcore.wait();
    let _ = mosquitto.kill();
    let _ = mosquitto.wait();
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_file(&conf);

    println!("\nkernel benchmark ({} round trips each, loopback)", ROUNDS);
    println!("{:<52}{:>10}{:>10}", "", "p50 us", "p99 us");
    let row = |name: &str, s: &Stats| println!("{name:<52}{:>10.0}{:>10.0}", s.p(0.5), s.p(0.99));
    row("raw QoS0 ping-pong through hcore's broker", &raw_h);
    row("raw QoS0 ping-pong through mosquitto", &raw_m);
    row("RPC state.get, SDK over TCP", &rpc);
    row("RPC state.get, raw MQTT 3.1.1 client (no SDK)", &raw_rpc);
    row(
        "RPC state.get, SDK in-process (current-thread runtime)",
        &inproc,
    );
    row(
        "RPC state.get, SDK in-process (2-worker runtime)",
        &inproc_mt,
    );
    row(
        "raw in-process ping-pong, no kernel (queue + echo task)",
        &local_pp,
    );
    row("state.set -> subscriber sees retained update", &retained);
    println!(
        "RPC p50 / raw ping-pong p50 (same broker): {:.2}   vs mosquitto ping-pong: {:.2}",
        rpc.p(0.5) / raw_h.p(0.5),
        rpc.p(0.5) / raw_m.p(0.5)
    );
    println!(
        "durable storage.set: {w1:.0} writes/s with 1 caller, {w32:.0} writes/s with 32 callers"
    );
    println!("hcore run RSS after the benchmark: {rss:.1} MB");
}

fn next_pkid(p: &mut u16) -> u16 {
    *p = if *p == u16::MAX { 1 } else { *p + 1 };
    *p
}

/// QoS 0 request/response through the broker with raw clients.
async fn ping_pong(addr: SocketAddr, n: usize) -> Vec<Duration> {
    use mqtt_client::{connect, publish};
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (mut rr, mut rw) = connect(addr, &format!("r{id}")).await.unwrap();
    rw.subscribe(&mut rr, &format!("pp/{id}/ping"), 0)
        .await
        .unwrap();
    let (mut qr, mut qw) = connect(addr, &format!("q{id}")).await.unwrap();
    qw.subscribe(&mut qr, &format!("pp/{id}/pong"), 0)
        .await
        .unwrap();
    let pong = format!("pp/{id}/pong");
    let responder = tokio::spawn(async move {
        let mut out = BytesMut::new();
        while let Ok(p) = rr.next().await {
            if p.kind() == 3 {
                out.clear();
                publish(&mut out, &pong, &p.publish_parts().1, 0, 0);
                if rw.send(&out).await.is_err() {
                    break;
                }
            }
        }
    });
    let ping = format!("pp/{id}/ping");
    let mut out = BytesMut::new();
    let mut pkid = 0;
    let mut rtts = Vec::new();
    for i in 0..n + WARMUP / 3 {
        out.clear();
        let start = Instant::now();
        publish(
            &mut out,
            &ping,
            &(i as u64).to_be_bytes(),
            0,
            next_pkid(&mut pkid),
        );
        qw.send(&out).await.unwrap();
        while qr.next().await.unwrap().kind() != 3 {}
        if i >= WARMUP / 3 {
            rtts.push(start.elapsed());
        }
    }
    responder.abort();
    rtts
}

/// `state.get` from the bench's raw client: the kernel's share of an RPC, without the SDK.
async fn raw_rpc_round_trips(addr: SocketAddr, n: usize) -> Vec<Duration> {
    use mqtt_client::{connect, publish};
    let id = format!("raw{}", uuid::Uuid::new_v4().simple());
    let (mut r, mut w) = connect(addr, &id).await.unwrap();
    w.subscribe(&mut r, &format!("hc/reply/{id}"), 0)
        .await
        .unwrap();
    let topic = format!("hc/call/{id}/state/get");
    let mut out = BytesMut::new();
    let mut rtts = Vec::new();
    for i in 0..n + WARMUP / 3 {
        out.clear();
        let payload = format!(r#"{{"id":"{i}","params":{{"key":"bench/x"}}}}"#);
        let start = Instant::now();
        publish(&mut out, &topic, payload.as_bytes(), 0, 0);
        w.send(&out).await.unwrap();
        while r.next().await.unwrap().kind() != 3 {}
        if i >= WARMUP / 3 {
            rtts.push(start.elapsed());
        }
    }
    rtts
}

async fn rpc_round_trips(client: &Client, n: usize) -> Vec<Duration> {
    let mut rtts = Vec::new();
    for i in 0..n + WARMUP / 3 {
        let start = Instant::now();
        client
            .call("state.get", json!({"key": "bench/x"}))
            .await
            .unwrap();
        if i >= WARMUP / 3 {
            rtts.push(start.elapsed());
        }
    }
    rtts
}

async fn state_to_subscriber(url: &str, setter: &Client) -> Vec<Duration> {
    let watcher = Client::connect(url, ClientOptions::new("watcher").quiet())
        .await
        .unwrap();
    let mut sub = watcher.subscribe("hc/state/bench/seen").await.unwrap();
    let mut out = Vec::new();
    for i in 1..=1000u64 {
        let start = Instant::now();
        setter.state().set("bench/seen", json!(i)).await.unwrap();
        loop {
            let m = sub.next().await.unwrap();
            if m.json().is_some_and(|v| v["value"] == json!(i)) {
                break;
            }
        }
        if i > 100 {
            out.push(start.elapsed());
        }
    }
    out
}

async fn storage_writes(url: &str, callers: usize, for_how_long: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + for_how_long;
    let mut tasks = Vec::new();
    for c in 0..callers {
        let client = Client::connect(url, ClientOptions::new(format!("writer{c}")).quiet())
            .await
            .unwrap();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < stop {
                client
                    .storage()
                    .set(&format!("k{}", i % 1000), json!({"i": i}))
                    .await
                    .unwrap();
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Two in-process broker clients bouncing a message through queue-mode receivers and an
/// echo task: what an in-process round trip costs without the kernel and the SDK.
async fn local_ping_pong(broker: &hcore_broker::BrokerHandle) -> Stats {
    use hcore_broker::{LocalOptions, Message, QoS};
    let (a, mut arx) = broker
        .local_client("pp-a", LocalOptions::default())
        .await
        .unwrap();
    let (b, mut brx) = broker
        .local_client("pp-b", LocalOptions::default())
        .await
        .unwrap();
    a.subscribe("pp/pong", QoS::AtMostOnce).await.unwrap();
    b.subscribe("pp/ping", QoS::AtMostOnce).await.unwrap();
    let echo = tokio::spawn(async move {
        while let Some(m) = brx.recv().await {
            let _ = b.publish(Message::new("pp/pong", m.payload)).await;
        }
    });
    let mut rtts = Vec::new();
    for i in 0..ROUNDS + WARMUP {
        let start = Instant::now();
        a.publish(Message::new("pp/ping", (i as u64).to_be_bytes().to_vec()))
            .await
            .unwrap();
        arx.recv().await.unwrap();
        if i >= WARMUP {
            rtts.push(start.elapsed());
        }
    }
    echo.abort();
    Stats(rtts)
}

/// In-process RPC round trips (SDK -> kernel `state.get`), and `local_ping_pong` on the
/// same broker.
async fn in_process_rpc() -> (Vec<Duration>, Stats) {
    let data = temp_dir();
    let settings = Settings {
        broker: BrokerConfig::with_listener("127.0.0.1:0".parse().unwrap()),
        kernel: KernelConfig {
            data_dir: data.clone(),
            ..KernelConfig::default()
        },
        ..Settings::default()
    };
    let hub = Hub::start(&settings, Vec::new()).await.unwrap();
    let broker = hub.broker().unwrap();
    let client = Client::connect_in_process(&broker, ClientOptions::new("inproc").quiet())
        .await
        .unwrap();
    client.state().set("bench/x", json!(0)).await.unwrap();
    let out = rpc_round_trips(&client, ROUNDS).await;
    let ping_pong = local_ping_pong(&broker).await;
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(&data);
    (out, ping_pong)
}
