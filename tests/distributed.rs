//! One hcore spread over several broker nodes, on a 3-node NATS cluster (MQTT 3.1.1, no
//! shared subscriptions: the kernel hands calls out) and, as the control, on mosquitto
//! (every "node" is the one broker). The kernel runs on node 0; the example remote plugin
//! (`remote`, a Rust program) on node 1, free to move to node 2; the Python paho plugin
//! (MQTT 3.1.1) on node 2; the CLI on node 2 calls both, sets and reads state and
//! storage, and sees events from both; two replicas of one service on nodes 1 and 2
//! share the calls. On NATS node 1 then dies: the plugin moves to node 2 and answers
//! again, and calls in between fail quickly instead of waiting for their deadline.

use std::process::Stdio;
use std::time::{Duration, Instant};

use hcore_client::{CallOptions, Client, ClientOptions, ErrorCode};
use hcore_tests::binary::{cli_json, hcore, workspace_bin};
use hcore_tests::bus::{spawn_kernel, Bus};
use hcore_tests::hub::{until_online, wait_registered};
use hcore_tests::{TempDir, WAIT};
use serde_json::{json, Value};

async fn cli(url: &str, args: &[&str]) -> Value {
    cli_json(url, args).await.unwrap_or_else(|e| panic!("{e}"))
}

/// A replica of `lamp` (user `lamp`, its own client id) that answers with its name.
async fn lamp_replica(url: &str, name: &'static str) -> Client {
    let mut o = ClientOptions::new(name);
    o.username = Some("lamp".into());
    o.password = Some("pw".into());
    let c = Client::connect(url, o).await.unwrap();
    c.provide("lamp.which", move |_| async move { Ok(json!(name)) })
        .await
        .unwrap();
    c
}

async fn suite(mut bus: Bus) {
    hcore_tests::init_tracing();
    let dir = TempDir::new();
    let observer = Client::connect(&bus.url(2), ClientOptions::new("observer").quiet())
        .await
        .unwrap();
    let mut status = observer.subscribe("hc/kernel/status").await.unwrap();
    let _kernel = spawn_kernel(&bus.url(0), &dir.path().join("data"));
    until_online(&mut status).await;

    // The Rust plugin on node 1 (node 2 as its fallback), the Python one on node 2.
    let _weather = tokio::process::Command::new(workspace_bin("remote"))
        .arg(bus.urls(&[1, 2]))
        .stderr(hcore_tests::test_log())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python/thermostat.py"
    );
    let _python = tokio::process::Command::new("python3")
        .arg(script)
        .env("HCORE_URL", bus.url(2))
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 (with paho-mqtt: pip install paho-mqtt)");
    wait_registered(&observer, "weather.now", "weather").await;
    wait_registered(&observer, "thermostat.target", "thermostat").await;

    // The CLI on node 2: events from both plugins, calls to both, state and storage.
    let node2 = bus.url(2);
    let subs: Vec<_> = ["weather", "thermostat"]
        .iter()
        .map(|source| {
            hcore()
                .args(["sub", "-C", "1", &format!("hc/event/{source}/#")])
                .args(["--url", &node2])
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap()
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await; // (subscribed)
    let weather = cli(&node2, &["call", "weather.now"]).await;
    assert_eq!(weather["sky"], "clear");
    let target = cli(&node2, &["call", "thermostat.target", r#"{"celsius":21}"#]).await;
    assert_eq!(target, json!({"target": 21}));
    cli(&node2, &["state", "set", "hall/light", "true"]).await;
    assert_eq!(
        cli(&node2, &["state", "get", "hall/light"]).await["value"],
        true
    );
    cli(&node2, &["storage", "set", "scene", r#""evening""#]).await;
    assert_eq!(
        cli(&node2, &["storage", "get", "scene"]).await,
        json!({"value": "evening"})
    );
    // The weather plugin publishes a reading every 5 s; the thermostat one per target.
    for (sub, source) in subs.into_iter().zip(["weather", "thermostat"]) {
        let out = tokio::time::timeout(WAIT, sub.wait_with_output())
            .await
            .expect("an event from each plugin")
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("from {source}")), "{text}");
    }

    // Two replicas of one service on two nodes share its calls.
    let replicas = [
        lamp_replica(&bus.url(1), "lamp-1").await,
        lamp_replica(&bus.url(2), "lamp-2").await,
    ];
    let caller = Client::connect(&bus.url(0), ClientOptions::new("caller").quiet())
        .await
        .unwrap();
    let mut served = std::collections::BTreeMap::<String, u32>::new();
    for _ in 0..20 {
        let who = caller.call("lamp.which", json!({})).await.unwrap();
        *served.entry(who.as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(served.len(), 2, "both replicas serve: {served:?}");

    if let Some(cluster) = bus.cluster() {
        node_lost(cluster, &observer).await;
    }
    for r in replicas {
        let _ = r.shutdown().await;
    }
}

/// Node 1 dies: the weather plugin moves to node 2; every call made meanwhile is refused
/// (`unavailable`, `no_responders`) as soon as the kernel can tell, at the latest when
/// the plugin announces itself on node 2 (NATS publishes no will for a client of a dead
/// node): none waits for its deadline. Then calls succeed again.
async fn node_lost(cluster: &mut hcore_tests::nats::NatsCluster, caller: &Client) {
    const DEADLINE: Duration = Duration::from_secs(30);
    let patient = CallOptions {
        timeout: Some(DEADLINE),
        ..CallOptions::default()
    };
    let killed = Instant::now();
    cluster.nodes[1].kill().await;
    let mut outcomes = Vec::new();
    loop {
        let asked = Instant::now();
        let outcome = caller
            .call_with("weather.now", json!({}), patient.clone())
            .await;
        let took = asked.elapsed();
        match &outcome {
            Ok(_) => break,
            Err(e) => {
                // (None: the caller's own connection was reset by the cluster.)
                assert!(
                    matches!(
                        e.code(),
                        Some(ErrorCode::Unavailable | ErrorCode::NoResponders) | None
                    ),
                    "a call during the failover: {e} after {took:?} ({:?} after the kill; before: {outcomes:?})",
                    killed.elapsed()
                );
                assert!(
                    took < DEADLINE / 2,
                    "a call waited {took:?} for {e} ({:?} after the kill; before: {outcomes:?})",
                    killed.elapsed()
                );
            }
        }
        outcomes.push(format!(
            "{:?} at {:.1?}",
            outcome.err().and_then(|e| e.code()),
            killed.elapsed()
        ));
        assert!(killed.elapsed() < WAIT * 3, "never answered again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "node 1 killed: weather.now answered again after {:.2?} ({} calls refused meanwhile)",
        killed.elapsed(),
        outcomes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_nats_cluster() {
    let dir = TempDir::new();
    suite(Bus::nats(dir.path()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mosquitto_the_control() {
    let dir = TempDir::new();
    suite(Bus::mosquitto(dir.path()).await).await;
}
