//! hcore on a 3-node NATS cluster (JetStream, an MQTT listener per node, MQTT 3.1.1):
//! the kernel on node 0, a plugin given nodes 1 and 2, a client on node 2. The plugin's
//! state writes cross nodes; killing node 1 moves the plugin to node 2, where it
//! announces itself with a new session and writes again; retained state records are
//! readable on every node; the kernel killed and restarted keeps state and storage;
//! killing the kernel's node moves it to the next node it was given, where a CLI given a
//! dead node first finds it, and records and statuses are right on every live node.
//! The failover time is printed.

use std::time::{Duration, Instant};

use hcore_client::{Client, ClientOptions};
use hcore_tests::binary::cli_json;
use hcore_tests::bus::spawn_kernel;
use hcore_tests::hub::until_online;
use hcore_tests::nats::NatsCluster;
use hcore_tests::{TempDir, WAIT};
use serde_json::{json, Value};

/// The kernel's view of plugin `id`: (online, session).
async fn plugin_seen(client: &Client, id: &str) -> Option<(bool, u64)> {
    let list = client.call("plugins.list", json!({})).await.ok()?;
    let p = list["plugins"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == id)?
        .clone();
    Some((p["online"].as_bool()?, p["session"].as_u64()?))
}

/// The retained record on `topic` as one node serves it (`None`: the node refused the
/// subscription, as NATS does while JetStream elects new leaders after a node died).
async fn retained(url: &str, topic: &str) -> Option<Value> {
    // A fresh client id each time: NATS hands a session id from node to node slowly.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let id = format!(
        "reader-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let c = Client::connect(url, ClientOptions::new(id).quiet())
        .await
        .unwrap();
    let outcome = match c.subscribe(topic).await {
        Ok(mut sub) => {
            let m = tokio::time::timeout(WAIT, sub.next())
                .await
                .expect("a retained record")
                .unwrap();
            Some(serde_json::from_slice(&m.payload).unwrap())
        }
        Err(_) => None,
    };
    let _ = c.shutdown().await;
    outcome
}

/// Waits until `topic`'s retained record on the node at `url` satisfies `ok`.
async fn eventually_retained(url: &str, topic: &str, ok: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + WAIT * 3;
    loop {
        let rec = retained(url, topic).await;
        if rec.as_ref().is_some_and(&ok) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} keeps {rec:?} on {topic}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_nats_cluster_a_plugin_fails_over_and_state_survives() {
    hcore_tests::init_tracing();
    let dir = TempDir::new();
    let data = dir.path().join("data");
    let mut cluster = NatsCluster::start(3, dir.path()).await;
    let observer = Client::connect(
        &cluster.nodes[2].url,
        ClientOptions::new("observer").quiet(),
    )
    .await
    .unwrap();
    let mut status = observer.subscribe("hc/kernel/status").await.unwrap();
    let mut k = spawn_kernel(&cluster.nodes[0].url, &data);
    until_online(&mut status).await;

    // A plugin on node 1 that may move to node 2; its writes go through the kernel on 0.
    let plugin = Client::connect(&cluster.urls(&[1, 2]), ClientOptions::new("nomad"))
        .await
        .unwrap();
    plugin
        .state()
        .set("nomad/where", json!("node 1"))
        .await
        .unwrap();
    plugin
        .storage()
        .set("home", json!({"rooms": 3}))
        .await
        .unwrap();
    let rec = observer.state().get("nomad/where").await.unwrap().unwrap();
    assert_eq!((rec.value, rec.source.as_str()), (json!("node 1"), "nomad"));
    let before = loop {
        if let Some((true, s)) = plugin_seen(&observer, "nomad").await {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Node 1 dies: the plugin moves to node 2 and announces itself again.
    let killed = Instant::now();
    cluster.nodes[1].kill().await;
    loop {
        if plugin_seen(&observer, "nomad")
            .await
            .is_some_and(|(on, s)| on && s > before)
        {
            break;
        }
        assert!(
            killed.elapsed() < WAIT * 3,
            "never announced itself on another node"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let announced = killed.elapsed();
    let written = loop {
        if plugin
            .state()
            .set("nomad/where", json!("node 2"))
            .await
            .is_ok()
        {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < WAIT * 3, "never wrote again");
    };
    // The retained record becomes the same on every live node (NATS replicates retained
    // messages through JetStream: eventually, not at once).
    let mut converged = Duration::ZERO;
    for node in [0, 2] {
        loop {
            let rec = retained(&cluster.nodes[node].url, "hc/state/nomad/where").await;
            if rec.as_ref().is_some_and(|r| r["value"] == "node 2") {
                break;
            }
            // (A write while the cluster elects leaders may not be stored: the kernel
            // publishes its records again 10 s after it sees a node was lost.)
            assert!(killed.elapsed() < WAIT * 3, "node {node} keeps {rec:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        converged = converged.max(killed.elapsed() - written);
    }

    // The kernel dies and comes back: state and storage are intact.
    let _ = k.start_kill();
    let _ = k.wait().await;
    // This time it is given two nodes, 0 and then 2.
    let mut k = spawn_kernel(&cluster.urls(&[0, 2]), &data);
    until_online(&mut status).await;
    // (NATS may reset other nodes' client connections when a node dies; a call made
    // while a client reconnects fails at once and is made again.)
    let start = Instant::now();
    let (rec, home) = loop {
        let rec = observer.state().get("nomad/where").await;
        let home = plugin.storage().get("home").await;
        if let (Ok(Some(rec)), Ok(home)) = (rec, home) {
            break (rec, home);
        }
        assert!(
            start.elapsed() < WAIT,
            "the restarted kernel does not answer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rec.value, json!("node 2"));
    assert_eq!(home, Some(json!({"rooms": 3})));

    // Node 1 comes back; node 0 dies: the kernel moves to node 2 and announces a new
    // session, and a CLI given nodes 0 and 1 finds the bus on node 1.
    cluster.nodes[1].restart().await;
    // One loss at a time: node 1 has caught up (serves a record written after it came
    // back) before node 0 dies.
    observer
        .state()
        .set("probe/node1", json!("back"))
        .await
        .unwrap();
    let node1 = &cluster.nodes[1].url;
    eventually_retained(node1, "hc/state/probe/node1", |v| v["value"] == "back").await;
    let session = |v: &Value| v["session"].as_u64().unwrap_or(0);
    let before = session(
        &retained(&cluster.nodes[2].url, "hc/kernel/status")
            .await
            .unwrap(),
    );
    let killed = Instant::now();
    cluster.nodes[0].kill().await;
    loop {
        let s = tokio::time::timeout(WAIT * 3, status.next())
            .await
            .expect("the kernel online on another node in time")
            .unwrap();
        if s.json()
            .is_some_and(|v| v["state"] == "online" && session(&v) > before)
        {
            break;
        }
    }
    let kernel_moved = killed.elapsed();
    let rec = loop {
        match cli_json(&cluster.urls(&[0, 1]), &["state", "get", "nomad/where"]).await {
            Ok(v) => break v,
            Err(e) => assert!(killed.elapsed() < WAIT * 3, "the CLI never answered: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rec["value"], "node 2", "{rec}");
    // Records and statuses are right on both live nodes.
    for node in [1, 2] {
        let url = &cluster.nodes[node].url;
        eventually_retained(url, "hc/state/nomad/where", |v| v["value"] == "node 2").await;
        eventually_retained(url, "hc/plugin/nomad/status", |v| v["state"] == "online").await;
        eventually_retained(url, "hc/kernel/status", |v| {
            v["state"] == "online" && session(v) > before
        })
        .await;
    }
    let _ = k.start_kill();
    eprintln!(
        "NATS cluster: node killed -> plugin online on another node with a new session {announced:.2?}, \
         first write through the kernel {written:.2?}; the retained record on every node {converged:.2?} after that; \
         the kernel's node killed -> kernel online on another node {kernel_moved:.2?}"
    );
}
