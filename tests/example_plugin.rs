//! The example plugin (plugins/example) in-process under the plugin manager, across a
//! crash and restart, and as a remote plugin over TCP.

use std::sync::Arc;

use hcore_kernel::PluginFactory;
use hcore_tests::hub::*;
use serde_json::json;

fn example() -> (String, PluginFactory) {
    let f: PluginFactory = Arc::new(|| Box::new(hcore_example_plugin::ExamplePlugin::new()));
    ("example".into(), f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_plugin_in_process_survives_a_crash() {
    let h = start_with(vec![example()]).await;
    let user = h.tcp("user").await;
    wait_registered(&user, "example.hello", "example").await;
    let mut greeted = user
        .subscribe("hc/event/example/example/greeted")
        .await
        .unwrap();
    let r = user
        .call("example.hello", json!({"name": "Ann"}))
        .await
        .unwrap();
    assert_eq!(
        (r["greeting"].as_str(), r["count"].as_u64()),
        (Some("Hello, Ann!"), Some(1))
    );
    let ev = greeted.next().await.unwrap().envelope.unwrap();
    assert_eq!(ev.data, json!({"name": "Ann", "count": 1}));
    assert_eq!(ev.source, "example");
    user.call("example.set_greeting", json!({"greeting": "Hi"}))
        .await
        .unwrap();
    let r = user
        .call("example.hello", json!({"name": "Bo"}))
        .await
        .unwrap();
    assert_eq!(r["greeting"], "Hi, Bo!");
    // The plugin crashes; the manager restarts it; state and settings persist.
    user.call("example.crash", json!({})).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = user.call("plugins.list", json!({})).await.unwrap();
        let p = &list["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == "example")
            .unwrap()
            .clone();
        if p["restarts"].as_u64() >= Some(1) && p["state"] == "running" {
            assert!(p["error"].is_null() || p["error"].as_str().is_some());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never restarted: {p}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    wait_registered(&user, "example.hello", "example").await;
    let r = user
        .call("example.hello", json!({"name": "Cy"}))
        .await
        .unwrap();
    assert_eq!(
        (r["greeting"].as_str(), r["count"].as_u64()),
        (Some("Hi, Cy!"), Some(3))
    );
    assert_eq!(
        user.call("example.count", json!({})).await.unwrap()["count"],
        3
    );
    // Its settings live in its own namespace, not the caller's.
    assert_eq!(user.storage().get("greeting").await.unwrap(), None);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_plugin_runs_remotely_over_tcp() {
    let h = start().await;
    let url = h.url();
    let remote = tokio::spawn(async move {
        hcore_client::run_remote(hcore_example_plugin::ExamplePlugin::new(), &url).await
    });
    let user = h.local("user").await;
    wait_registered(&user, "example.hello", "example").await;
    let r = user.call("example.hello", json!({})).await.unwrap();
    assert_eq!(r["greeting"], "Hello, world!");
    remote.abort();
    h.stop().await;
}
