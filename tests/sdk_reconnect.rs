//! The SDK over TCP survives a kernel restart: it reconnects with backoff, subscribes
//! again, provides its methods again and re-announces itself with a new session.

use std::time::Duration;

use hcore_client::{Client, ClientOptions};
use hcore_tests::binary::*;
use hcore_tests::hub::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_resubscribes_reprovides_and_reannounces() {
    init_tracing();
    let dir = TempDir::new();
    let (mut first, url) = spawn_hcore(&dir.0).await;
    let addr = url.trim_start_matches("mqtt://").to_string();
    let plugin = Client::connect(&url, ClientOptions::new("survivor"))
        .await
        .unwrap();
    plugin
        .provide("survivor.ping", |_| async { Ok(json!("pong")) })
        .await
        .unwrap();
    let mut events = plugin.subscribe("hc/event/+/tick").await.unwrap();
    let session = plugin.session();

    // The whole hcore goes away and comes back on the same address.
    kill9(&mut first).await;
    let mut again = tokio::process::Command::new(hcore_bin());
    again
        .args(["run", "--listen", &addr, "--data-dir"])
        .arg(&dir.0);
    let (mut second, _) = spawn_with(again).await;

    let caller = Client::connect(&url, ClientOptions::new("caller").quiet())
        .await
        .unwrap();
    wait_registered(&caller, "survivor.ping", "survivor").await;
    assert_eq!(
        caller.call("survivor.ping", json!({})).await.unwrap(),
        "pong"
    );
    assert!(
        plugin.session() > session,
        "a new session number after reconnecting"
    );
    let list = caller.call("plugins.list", json!({})).await.unwrap();
    let me = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "survivor")
        .unwrap()
        .clone();
    assert_eq!(me["state"], "online");
    let emitter = Client::connect(&url, ClientOptions::new("emitter").quiet())
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, async {
        loop {
            emitter.publish_event("tick", json!(1)).await.unwrap();
            if let Ok(Some(e)) =
                tokio::time::timeout(Duration::from_millis(200), events.next()).await
            {
                break e;
            }
        }
    })
    .await
    .expect("the subscription was renewed");
    assert_eq!(got.topic, "hc/event/emitter/tick");
    let _ = second.kill().await;
}

/// Several broker URLs: an unreachable first one is skipped, and when the node in use
/// dies the client moves to the next, re-announcing itself there with a new session,
/// and once more 10 s later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_between_broker_urls() {
    init_tracing();
    let (dir_a, dir_b) = (TempDir::new(), TempDir::new());
    let (mut a, url_a) = spawn_hcore(&dir_a.0).await;
    let (_b, url_b) = spawn_hcore(&dir_b.0).await;
    let dead = format!("mqtt://127.0.0.1:{}", hcore_tests::free_port());
    let urls = format!("{dead},{url_a},{url_b}");
    let plugin = Client::connect(&urls, ClientOptions::new("nomad"))
        .await
        .unwrap();
    plugin
        .provide("nomad.where", |_| async { Ok(json!("here")) })
        .await
        .unwrap();
    let on_a = Client::connect(&url_a, ClientOptions::new("caller").quiet())
        .await
        .unwrap();
    wait_registered(&on_a, "nomad.where", "nomad").await;
    let first_session = plugin.session();

    kill9(&mut a).await;
    let on_b = Client::connect(&url_b, ClientOptions::new("caller").quiet())
        .await
        .unwrap();
    wait_registered(&on_b, "nomad.where", "nomad").await;
    assert_eq!(on_b.call("nomad.where", json!({})).await.unwrap(), "here");
    assert!(
        plugin.session() > first_session,
        "a new session on the new node"
    );
    let list = on_b.call("plugins.list", json!({})).await.unwrap();
    let me = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "nomad")
        .unwrap();
    assert_eq!(
        (me["online"].as_bool(), me["session"].as_u64()),
        (Some(true), Some(plugin.session()))
    );
    // And once more, live, a while later (a clustered broker may have dropped the first
    // retained write while electing leaders).
    let mut status = on_b.subscribe("hc/plugin/nomad/status").await.unwrap();
    let repeat = tokio::time::timeout(WAIT * 2, async {
        loop {
            let m = status.next().await.unwrap();
            if !m.retain {
                break m.json().unwrap();
            }
        }
    })
    .await
    .expect("the status announced again");
    assert_eq!(
        (repeat["state"].as_str(), repeat["session"].as_u64()),
        (Some("online"), Some(plugin.session()))
    );

    // Every URL must name the same user: the identity cannot change with the node.
    let mixed = "mqtt://alice:x@127.0.0.1:1,mqtt://bob:y@127.0.0.1:2";
    let e = Client::connect(mixed, ClientOptions::new("m").quiet())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("same user"), "{e}");
}
