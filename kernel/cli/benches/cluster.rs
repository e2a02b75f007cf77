//! Cluster benchmark, in one run: a plugin method called through the kernel, with the
//! caller and the provider on different connections, on
//!
//! * the embedded broker (`hcore run`: shared subscriptions, the broker routes calls);
//! * mosquitto (`set_tcp_nodelay true`) with `hcore run --broker` (the reference);
//! * a 3-node NATS cluster with `hcore run --broker` on node 0, the provider on node 1
//!   and the caller on node 2 (MQTT 3.1.1; the kernel hands each call out).
//!
//! Prints p50/p99 call latency, calls/s with 16 callers, the ratios to the embedded
//! broker, the kernel process's RSS, and the failover time: node 1 killed, how long until
//! the provider (given nodes 1 and 2) answers again from node 2.
//!
//! Run: `cargo bench -p hcore --bench cluster` (needs `mosquitto` and `nats-server`).

#[path = "../../../broker/benches/support.rs"]
mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hcore_client::{CallOptions, Client, ClientOptions};
use hcore_tests::nats::NatsCluster;
use serde_json::json;
use support::{free_port, rss_mb, wait_port};

const ROUNDS: usize = 2000;
const CONCURRENT: usize = 16;

fn main() {
    support::runtime().block_on(bench());
}

/// One broker setup: where the kernel, the provider and the caller connect.
struct Setup {
    name: &'static str,
    kernel: Child,
    provider_url: String,
    caller_url: String,
    /// Brokers the setup started (killed when dropped).
    _daemons: Vec<tokio::process::Child>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.kernel.kill();
        let _ = self.kernel.wait();
    }
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("hcore-bench-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn hcore_run(args: &[&str], data: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_hcore"))
        .arg("run")
        .args(args)
        .args(["--log", "warn", "--data-dir"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn embedded() -> Setup {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let kernel = hcore_run(&["--listen", &addr.to_string()], &temp_dir("embedded"));
    wait_port(addr).await;
    let url = format!("mqtt://{addr}");
    Setup {
        name: "embedded broker",
        kernel,
        provider_url: url.clone(),
        caller_url: url,
        _daemons: Vec::new(),
    }
}

async fn mosquitto() -> Setup {
    let dir = temp_dir("mosquitto");
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"),
    )
    .unwrap();
    let daemons = vec![hcore_tests::daemon("mosquitto", &conf)];
    wait_port(SocketAddr::from(([127, 0, 0, 1], port))).await;
    let url = format!("mqtt://127.0.0.1:{port}");
    let kernel = hcore_run(&["--broker", &url], &dir.join("data"));
    Setup {
        name: "mosquitto",
        kernel,
        provider_url: url.clone(),
        caller_url: url,
        _daemons: daemons,
    }
}

/// Three nats-server nodes (the test harness's cluster): the kernel on node 0.
async fn nats() -> (Setup, NatsCluster) {
    let dir = temp_dir("nats");
    let cluster = NatsCluster::start(3, &dir).await;
    let kernel = hcore_run(&["--broker", &cluster.nodes[0].url], &dir.join("data"));
    let setup = Setup {
        name: "NATS cluster",
        kernel,
        provider_url: cluster.urls(&[1, 2]),
        caller_url: cluster.nodes[2].url.clone(),
        _daemons: Vec::new(),
    };
    (setup, cluster)
}

/// The provider of `bench.echo`, and a caller that has seen it registered.
async fn pair(s: &Setup) -> (Client, Client) {
    let provider = Client::connect(&s.provider_url, ClientOptions::new("bench"))
        .await
        .unwrap();
    provider
        .provide("bench.echo", |call| async move { Ok(call.params) })
        .await
        .unwrap();
    let caller = Client::connect(&s.caller_url, ClientOptions::new("caller").quiet())
        .await
        .unwrap();
    for _ in 0..300 {
        if caller.call("bench.echo", json!(0)).await.is_ok() {
            return (provider, caller);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{}: bench.echo never answered", s.name);
}

/// Sequential call latencies, microseconds.
async fn latencies(caller: &Client) -> Vec<f64> {
    let mut out = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        let t = Instant::now();
        caller.call("bench.echo", json!(i)).await.unwrap();
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(f64::total_cmp);
    out
}

/// Calls/s with `CONCURRENT` callers in flight.
async fn throughput(caller: &Client) -> f64 {
    let t = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT)
        .map(|_| {
            let c = caller.clone();
            tokio::spawn(async move {
                for i in 0..ROUNDS / CONCURRENT {
                    c.call("bench.echo", json!(i)).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (ROUNDS / CONCURRENT * CONCURRENT) as f64 / t.elapsed().as_secs_f64()
}

struct Row {
    name: &'static str,
    p50: f64,
    p99: f64,
    rate: f64,
    rss: f64,
}

async fn measure(s: &Setup) -> Row {
    let (provider, caller) = pair(s).await;
    let _ = latencies(&caller).await; // warm up
    let l = latencies(&caller).await;
    let rate = throughput(&caller).await;
    let _ = caller.shutdown().await;
    let _ = provider.shutdown().await;
    Row {
        name: s.name,
        p50: l[l.len() / 2],
        p99: l[l.len() * 99 / 100],
        rate,
        rss: rss_mb(s.kernel.id()),
    }
}

/// Kills node 1 under the provider: the time until a call is answered again, the calls
/// refused meanwhile and the longest any of them waited.
async fn failover(s: &Setup, cluster: &mut NatsCluster) -> (Duration, usize, Duration) {
    let (provider, caller) = pair(s).await;
    let patient = CallOptions {
        timeout: Some(Duration::from_secs(30)),
        ..CallOptions::default()
    };
    let killed = Instant::now();
    cluster.nodes[1].kill().await;
    let (mut refused, mut longest) = (0, Duration::ZERO);
    loop {
        let t = Instant::now();
        let outcome = caller
            .call_with("bench.echo", json!(0), patient.clone())
            .await;
        if outcome.is_ok() {
            break;
        }
        refused += 1;
        longest = longest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = killed.elapsed();
    let _ = provider.shutdown().await;
    (took, refused, longest)
}

async fn bench() {
    let mut rows = Vec::new();
    rows.push(measure(&embedded().await).await);
    rows.push(measure(&mosquitto().await).await);
    let (nats, mut cluster) = nats().await;
    rows.push(measure(&nats).await);
    let base = (rows[0].p50, rows[0].rate);
    println!(
        "call through the kernel, caller and provider on different connections ({ROUNDS} calls)"
    );
    println!(
        "{:<16} {:>9} {:>9} {:>11} {:>9} {:>10}",
        "broker", "p50 µs", "p99 µs", "calls/s", "p50 ×", "kernel MB"
    );
    for r in &rows {
        println!(
            "{:<16} {:>9.0} {:>9.0} {:>11.0} {:>9.2} {:>10.1}",
            r.name,
            r.p50,
            r.p99,
            r.rate,
            r.p50 / base.0,
            r.rss
        );
    }
    println!(
        "throughput ({CONCURRENT} callers) vs embedded: mosquitto {:.2}x, NATS {:.2}x",
        rows[1].rate / base.1,
        rows[2].rate / base.1
    );
    let (took, refused, longest) = failover(&nats, &mut cluster).await;
    println!(
        "NATS failover: node 1 killed, the provider answered from node 2 after {took:.2?} \
         ({refused} calls refused meanwhile, the longest after {longest:.2?}; deadline 30 s)"
    );
}
