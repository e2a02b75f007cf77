//! Plugins: liveness (status, wills, session numbers, stale offlines), manifests, the
//! kernel's own status, and in-process plugins under the plugin manager.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hcore_client::protocol::Manifest;
use hcore_client::{async_trait, Client, ErrorCode, Plugin, PluginError};
use hcore_kernel::PluginFactory;
use hcore_tests::hub::*;
use serde_json::{json, Value};

async fn plugin_entry(c: &Client, id: &str) -> Option<Value> {
    let list = c.call("plugins.list", json!({})).await.unwrap();
    list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
}

async fn wait_plugin(c: &Client, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(p) = plugin_entry(c, id).await {
            if pred(&p) {
                return p;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "plugin {id} never matched: {:?}",
            plugin_entry(c, id).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_status_manifest_and_stale_wills() {
    let h = start().await;
    let admin = h.local("admin").await;
    // The kernel announces itself, retained.
    let mut ks = admin.subscribe("hc/kernel/status").await.unwrap();
    let k = ks.next().await.unwrap();
    assert!(k.retain);
    assert_eq!(k.json().unwrap()["state"], "online");

    // An SDK plugin announces status and manifest; its provided methods are registered.
    let options = hcore_client::ClientOptions::new("lamp").manifest(Manifest {
        version: "2.1.0".into(),
        events: vec!["lamp/changed".into()],
        ..Default::default()
    });
    let lamp = Client::connect(&h.url(), options).await.unwrap();
    lamp.provide("lamp.toggle", |_| async { Ok(json!("ok")) })
        .await
        .unwrap();
    let p = wait_plugin(&admin, "lamp", |p| p["state"] == "online").await;
    assert_eq!(p["version"], "2.1.0");
    assert_eq!(p["services"], json!(["lamp.toggle"]));
    assert_eq!(p["kind"], "remote");
    let session = p["session"].as_u64().unwrap();
    assert_eq!(lamp.session(), session);

    // A late or duplicated will with an older session is ignored. (Only "lamp" may
    // publish its status, so the plugin itself replays the stale will.)
    let stale = json!({"state": "offline", "session": session - 1}).to_string();
    lamp.publish_raw("hc/plugin/lamp/status", stale, true)
        .await
        .unwrap();
    admin
        .call("lamp.toggle", json!({}))
        .await
        .expect("still registered");
    let p = plugin_entry(&admin, "lamp").await.unwrap();
    assert_eq!(p["state"], "online");

    // A crash: the will (offline, same session) unregisters the services.
    drop(lamp);
    wait_plugin(&admin, "lamp", |p| p["state"] == "offline").await;
    let e = admin.call("lamp.toggle", json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NoResponders));
    // A clean shutdown publishes offline itself.
    let again = h.tcp("lamp").await;
    wait_plugin(&admin, "lamp", |p| p["state"] == "online").await;
    again.shutdown().await.unwrap();
    wait_plugin(&admin, "lamp", |p| p["state"] == "offline").await;
    h.stop().await;
}

/// A plugin that counts its lifecycle calls and can be told to fail.
struct Probe {
    id: String,
    loads: Arc<AtomicUsize>,
    panic_in_run: bool,
}

#[async_trait]
impl Plugin for Probe {
    fn id(&self) -> &str {
        &self.id
    }

    async fn on_load(&mut self) -> Result<(), PluginError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn on_start(&mut self, client: &Client) -> Result<(), PluginError> {
        let id = self.id.clone();
        client
            .provide(&format!("{}.ping", self.id), move |_| {
                let id = id.clone();
                async move { Ok(json!(id)) }
            })
            .await?;
        Ok(())
    }

    async fn run(&mut self, _client: &Client) -> Result<(), PluginError> {
        if self.panic_in_run && self.loads.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            panic!("probe {} gives up", self.id);
        }
        std::future::pending::<()>().await;
        Ok(())
    }
}

fn probe(id: &str, panic_in_run: bool, loads: Arc<AtomicUsize>) -> (String, PluginFactory) {
    let id2 = id.to_string();
    let factory: PluginFactory = Arc::new(move || {
        Box::new(Probe {
            id: id2.clone(),
            loads: loads.clone(),
            panic_in_run,
        })
    });
    (id.to_string(), factory)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_plugin_is_marked_failed_and_restarted_while_others_run() {
    let crashes = Arc::new(AtomicUsize::new(0));
    let steady = Arc::new(AtomicUsize::new(0));
    let h = start_with(vec![
        probe("crashy", true, crashes.clone()),
        probe("steady", false, steady.clone()),
    ])
    .await;
    let admin = h.local("admin").await;
    // The crashing plugin is marked failed with the panic message...
    let p = wait_plugin(&admin, "crashy", |p| p["state"] == "failed").await;
    assert!(p["error"].as_str().unwrap().contains("gives up"), "{p}");
    // ...the kernel and the other plugin keep serving...
    assert_eq!(
        admin.call("steady.ping", json!({})).await.unwrap(),
        "steady"
    );
    admin.state().set("admin/alive", json!(true)).await.unwrap();
    // ...and it is restarted (with backoff) until it runs (it stops panicking on load 3).
    let p = wait_plugin(&admin, "crashy", |p| {
        p["state"] == "running" && p["restarts"].as_u64() >= Some(2)
    })
    .await;
    assert_eq!(p["kind"], "in-process");
    assert_eq!(
        admin.call("crashy.ping", json!({})).await.unwrap(),
        "crashy"
    );
    assert_eq!(
        steady.load(Ordering::SeqCst),
        1,
        "the steady plugin was never restarted"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_over_rpc() {
    let loads = Arc::new(AtomicUsize::new(0));
    let h = start_with(vec![probe("svc1", false, loads.clone())]).await;
    let admin = h.tcp("admin").await;
    wait_plugin(&admin, "svc1", |p| p["state"] == "running").await;
    let r = admin
        .call("plugins.stop", json!({"id": "svc1"}))
        .await
        .unwrap();
    assert_eq!(r["state"], "stopped");
    let e = admin.call("svc1.ping", json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NoResponders));
    let r = admin
        .call("plugins.start", json!({"id": "svc1"}))
        .await
        .unwrap();
    assert_eq!(r["state"], "running");
    assert_eq!(admin.call("svc1.ping", json!({})).await.unwrap(), "svc1");
    let r = admin
        .call("plugins.restart", json!({"id": "svc1"}))
        .await
        .unwrap();
    assert_eq!(r["state"], "running");
    assert_eq!(
        loads.load(Ordering::SeqCst),
        3,
        "a fresh instance per start"
    );
    let e = admin
        .call("plugins.stop", json!({"id": "nope"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    // A network client cannot take an in-process plugin's id.
    let err =
        hcore_client::Client::connect(&h.url(), hcore_client::ClientOptions::new("svc1")).await;
    assert!(err.is_err());
    h.stop().await;
}
