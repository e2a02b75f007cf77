//! `hcore demo`: the seed's demo.py, better. Everything runs in this process on a free
//! port (so a `mosquitto_sub` can watch), the example plugin is loaded, and each step says
//! what it does and what came back: events, RPC (with an error and a no_responders),
//! state with versions, storage, and a plugin crash with its restart.

use std::time::Duration;

use hcore_broker::BrokerConfig;
use hcore_client::{Client, ClientOptions};
use hcore_kernel::settings::Settings;
use hcore_kernel::{Hub, KernelConfig};
use serde_json::{json, Value};

use crate::cli::DemoArgs;

struct Narrator {
    pace: Duration,
    step: u32,
}

impl Narrator {
    async fn step(&mut self, title: &str) {
        tokio::time::sleep(self.pace).await;
        self.step += 1;
        println!("\n{}. {title}", self.step);
    }

    fn say(&self, what: impl AsRef<str>) {
        println!("   {}", what.as_ref());
    }
}

fn outcome(r: &Result<Value, hcore_client::ClientError>) -> String {
    match r {
        Ok(v) => format!("result {v}"),
        Err(e) => format!("error {e}"),
    }
}

pub async fn demo(args: DemoArgs) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("hcore-demo-{}", std::process::id()));
    let result = run_demo(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_demo(args: &DemoArgs, dir: &std::path::Path) -> Result<(), String> {
    let mut n = Narrator {
        pace: Duration::from_millis(args.pace_ms),
        step: 0,
    };
    let settings = Settings {
        broker: BrokerConfig::with_listener("127.0.0.1:0".parse().unwrap()),
        kernel: KernelConfig {
            data_dir: dir.to_path_buf(),
            plugin_restart_max_ms: 2_000,
            ..KernelConfig::default()
        },
        ..Settings::default()
    };
    let example = crate::run::bundled("example", None)?;
    let hub = Hub::start(&settings, vec![("example".into(), example)])
        .await
        .map_err(|e| e.to_string())?;
    let addr = hub.local_addrs()[0];
    println!("hcore demo: an MQTT broker, the kernel and the example plugin, all in this process.");
    println!("Watch every message live from another terminal:");
    println!("   mosquitto_sub -p {} -t 'hc/#' -v", addr.port());

    let url = format!("mqtt://{addr}");
    let me = Client::connect(&url, ClientOptions::new("demo").quiet())
        .await
        .map_err(|e| e.to_string())?;
    wait_for(&me, "example", |p| p["state"] == "running").await;

    n.step("Events: a plugin publishes, subscribers get an envelope with a context")
        .await;
    let mut events = me
        .subscribe("hc/event/+/button/#")
        .await
        .map_err(|e| e.to_string())?;
    let sent = me
        .publish_event("button/pressed", json!({"button": "hall"}))
        .await
        .map_err(|e| e.to_string())?;
    n.say(format!(
        "published hc/event/demo/button/pressed with id {}",
        sent.id
    ));
    if let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), events.next()).await {
        let env = e.envelope.unwrap_or_else(|| sent.clone());
        n.say(format!("received from {}: {}", env.source, env.data));
    }

    n.step("RPC: call example.hello, which the example plugin provides")
        .await;
    let r = me.call("example.hello", json!({"name": "demo"})).await;
    n.say(format!(
        "example.hello {{\"name\":\"demo\"}} -> {}",
        outcome(&r)
    ));
    let r = me.call("example.hello", json!({"name": 42})).await;
    n.say(format!(
        "example.hello {{\"name\":42}}     -> {}",
        outcome(&r)
    ));
    let r = me.call("lights.on", json!({})).await;
    n.say(format!(
        "lights.on (nobody provides it) -> {} (at once, no timeout)",
        outcome(&r)
    ));

    n.step("State: versioned values, retained on hc/state/<key>")
        .await;
    let st = me.state();
    for (value, label) in [
        (json!({"on": true}), "set"),
        (json!({"on": true}), "same value again"),
        (json!({"on": false}), "set"),
    ] {
        let r = st
            .set("demo/lamp", value.clone())
            .await
            .map_err(|e| e.to_string())?;
        n.say(format!(
            "{label:<16} demo/lamp = {value:<14} -> version {}, changed {}",
            r.version, r.changed
        ));
    }
    let r = st.set_if("demo/lamp", json!({"on": true}), 1).await;
    n.say(format!(
        "set if version is 1 (it is 2) -> {}",
        r.map(|_| "ok".to_string())
            .unwrap_or_else(|e| e.to_string())
    ));
    let count = me.call("example.count", json!({})).await;
    n.say(format!(
        "example.count (a counter the plugin keeps in state) -> {}",
        outcome(&count)
    ));

    n.step("Storage: JSON values in the caller's own namespace, durable on reply")
        .await;
    let s = me.storage();
    s.set("settings/theme", json!("dark"))
        .await
        .map_err(|e| e.to_string())?;
    let theme = s.get("settings/theme").await.map_err(|e| e.to_string())?;
    n.say(format!(
        "storage.set settings/theme \"dark\", then storage.get -> {}",
        theme.map_or_else(|| "absent".to_string(), |v| v.to_string())
    ));
    let page = s
        .list("settings/", 10, None)
        .await
        .map_err(|e| e.to_string())?;
    n.say(format!(
        "storage.list settings/ -> {} item(s)",
        page.items.len()
    ));

    n.step("Supervision: the example plugin crashes and is restarted")
        .await;
    let r = me.call("example.crash", json!({})).await;
    n.say(format!("example.crash -> {}", outcome(&r)));
    let failed = wait_for(&me, "example", |p| {
        p["state"] == "failed" || p["restarts"].as_u64() >= Some(1)
    })
    .await;
    n.say(format!(
        "plugins.list: state {}, error {}",
        failed["state"], failed["error"]
    ));
    let back = wait_for(&me, "example", |p| {
        p["state"] == "running" && p["restarts"].as_u64() >= Some(1)
    })
    .await;
    n.say(format!(
        "plugins.list: state {}, restarts {}",
        back["state"], back["restarts"]
    ));
    let r = me.call("example.hello", json!({"name": "again"})).await;
    n.say(format!("example.hello -> {}", outcome(&r)));

    n.step("Done: shutting down (plugins, durable writes, offline status, then the broker)")
        .await;
    let _ = me.shutdown().await;
    hub.shutdown().await;
    Ok(())
}

/// Polls `plugins.list` until the plugin matches (at most 15 s).
async fn wait_for(me: &Client, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        if let Ok(list) = me.call("plugins.list", json!({})).await {
            if let Some(p) = list["plugins"]
                .as_array()
                .and_then(|a| a.iter().find(|p| p["id"] == id))
            {
                last = p.clone();
                if pred(p) {
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}
