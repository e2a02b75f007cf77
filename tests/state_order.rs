//! State answers never run ahead of the disk: the real `hcore` binary, many pipelined
//! writers and readers on one key, and SIGKILLs at varying moments. After each restart the
//! key's version is at least every version any answer reported (`state.set` results,
//! `changed: false` answers, `state.get` reads), and the retained record agrees with
//! `state.get`. When the writers stop before the kill, the version after the restart is
//! exactly the highest one answered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hcore_client::{Client, ClientOptions};
use hcore_tests::binary::*;
use hcore_tests::hub::*;
use serde_json::json;

const KEY: &str = "order/k";

/// Writers (each with several calls in flight) and readers, until aborted; every version
/// an answer reports raises `answered`.
async fn load(url: &str, answered: Arc<AtomicU64>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for w in 0..4 {
        let client = Client::connect(url, ClientOptions::new(format!("w{w}")).quiet())
            .await
            .unwrap();
        for p in 0..4 {
            let (client, answered) = (client.clone(), answered.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0u64.. {
                    // Every other write repeats a value: some answers are `changed: false`.
                    let value = json!([w, p, i / 2]);
                    match client.state().set(KEY, value).await {
                        Ok(r) => {
                            answered.fetch_max(r.version, Ordering::SeqCst);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        let (client, answered) = (client.clone(), answered.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                match client.state().get(KEY).await {
                    Ok(Some(r)) => {
                        answered.fetch_max(r.version, Ordering::SeqCst);
                    }
                    Ok(None) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    tasks
}

/// The key's version after a restart, from `state.get` and from the retained record.
async fn version_after_restart(dir: &TempDir) -> (u64, tokio::process::Child, String) {
    let (hcore, url) = spawn_hcore(&dir.0).await;
    let c = Client::connect(&url, ClientOptions::new("check").quiet())
        .await
        .unwrap();
    let record = c.state().get(KEY).await.unwrap().expect("the key survives");
    let mut retained = c.subscribe(&format!("hc/state/{KEY}")).await.unwrap();
    let published = retained.next().await.unwrap().json().unwrap();
    assert_eq!(published["version"], json!(record.version));
    assert_eq!(published["value"], record.value);
    c.shutdown().await.unwrap();
    (record.version, hcore, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_reports_a_version_a_crash_takes_back() {
    init_tracing();
    let dir = TempDir::new();
    let (mut hcore, mut url) = spawn_hcore(&dir.0).await;
    for kill_after_ms in [40, 90, 150, 230, 320] {
        let answered = Arc::new(AtomicU64::new(0));
        let tasks = load(&url, answered.clone()).await;
        tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        kill9(&mut hcore).await;
        let reported = answered.load(Ordering::SeqCst);
        for t in tasks {
            t.abort();
        }
        let (version, next, next_url) = version_after_restart(&dir).await;
        assert!(
            version >= reported,
            "an answer reported v{reported} but v{version} survived the SIGKILL after {kill_after_ms} ms"
        );
        (hcore, url) = (next, next_url);
    }
    // Writers stop first: everything written was answered, and all of it survives.
    let answered = Arc::new(AtomicU64::new(0));
    let tasks = load(&url, answered.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let c = Client::connect(&url, ClientOptions::new("final").quiet())
        .await
        .unwrap();
    let last = c.state().get(KEY).await.unwrap().unwrap().version;
    answered.fetch_max(last, Ordering::SeqCst);
    kill9(&mut hcore).await;
    let (version, mut hcore, _) = version_after_restart(&dir).await;
    assert_eq!(version, answered.load(Ordering::SeqCst));
    kill9(&mut hcore).await;
}
