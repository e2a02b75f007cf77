//! A successful storage or state reply means the write is on disk: the real `hcore`
//! binary is killed with SIGKILL right after acknowledged writes (and in the middle of a
//! load from 32 concurrent writers), restarted on the same data, and every acknowledged
//! write is there.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use hcore_client::{Client, ClientOptions};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `hcore run` on a free port; returns the process and its MQTT URL.
async fn spawn_hcore(data: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hcore"))
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("hcore binary");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("listener ready") {
                let addr = line
                    .split("addr=")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap();
                return format!("mqtt://{addr}");
            }
        }
        panic!("hcore exited before listening");
    })
    .await
    .expect("hcore listening in time");
    // Keep draining stderr so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    // The kernel announces itself once it serves; wait for it.
    let probe = Client::connect(&url, ClientOptions::new("probe").quiet())
        .await
        .unwrap();
    let mut status = probe.subscribe("hc/kernel/status").await.unwrap();
    loop {
        let s = tokio::time::timeout(WAIT, status.next())
            .await
            .unwrap()
            .unwrap();
        if s.json().is_some_and(|v| v["state"] == "online") {
            break;
        }
    }
    (child, url)
}

async fn kill9(child: &mut Child) {
    let pid = child.id().unwrap() as i32;
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = child.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    init_tracing();
    let dir = TempDir::new();
    let (mut hcore, url) = spawn_hcore(&dir.0).await;

    // Sequential acknowledged writes, then an immediate SIGKILL.
    let c = Client::connect(&url, ClientOptions::new("seq").quiet())
        .await
        .unwrap();
    for i in 0..200 {
        c.storage().set(&format!("k{i}"), json!(i)).await.unwrap();
    }
    c.state().set("durable/last", json!(199)).await.unwrap();
    kill9(&mut hcore).await;

    let (mut hcore, url) = spawn_hcore(&dir.0).await;
    let c = Client::connect(&url, ClientOptions::new("seq").quiet())
        .await
        .unwrap();
    for i in 0..200 {
        assert_eq!(
            c.storage().get(&format!("k{i}")).await.unwrap(),
            Some(json!(i)),
            "k{i}"
        );
    }
    assert_eq!(
        c.state().get("durable/last").await.unwrap().unwrap().value,
        json!(199)
    );

    // 32 concurrent writers; SIGKILL in the middle of the load.
    let acked: Arc<Mutex<Vec<(String, String, u64)>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..32 {
        let client = Client::connect(&url, ClientOptions::new(format!("w{w}")).quiet())
            .await
            .unwrap();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0u64.. {
                let key = format!("key{i}");
                match client.storage().set(&key, json!(i)).await {
                    Ok(()) => acked
                        .lock()
                        .unwrap()
                        .push((client.id().to_string(), key, i)),
                    Err(_) => break,
                }
            }
        }));
    }
    eventually(|| acked.lock().unwrap().len() >= 2000).await;
    kill9(&mut hcore).await;
    for w in writers {
        let _ = tokio::time::timeout(Duration::from_secs(15), w).await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 2000);

    let (mut hcore, url) = spawn_hcore(&dir.0).await;
    for w in 0..32 {
        let id = format!("w{w}");
        let client = Client::connect(&url, ClientOptions::new(id.clone()).quiet())
            .await
            .unwrap();
        for (_, key, value) in acked.iter().filter(|(who, _, _)| *who == id) {
            assert_eq!(
                client.storage().get(key).await.unwrap(),
                Some(json!(value)),
                "{id}/{key} was acknowledged before the kill"
            );
        }
    }
    let _ = hcore.kill().await;
}
