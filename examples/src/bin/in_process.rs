//! An in-process Rust plugin: a `Plugin` loaded by the kernel in the same process as the
//! broker. Run `cargo run -p hcore-examples --bin in_process [listen-address]` (default
//! 127.0.0.1:1883), then try `mosquitto_rr -i cli -t hc/call/cli/counter/add -e
//! hc/reply/cli -m '{"params":{"by":2}}'`.

use std::sync::Arc;

use hcore_broker::BrokerConfig;
use hcore_client::{async_trait, Client, Plugin, PluginError};
use hcore_kernel::settings::Settings;
use hcore_kernel::{Hub, KernelConfig, PluginFactory};
use serde_json::{json, Value};

/// Adds to a counter kept in the kernel's state and announces every change as an event.
struct Counter;

#[async_trait]
impl Plugin for Counter {
    fn id(&self) -> &str {
        "counter"
    }

    async fn on_start(&mut self, client: &Client) -> Result<(), PluginError> {
        let c = client.clone();
        client
            .provide("counter.add", move |call| {
                let c = c.clone();
                async move {
                    let by = call.params.get("by").and_then(Value::as_i64).unwrap_or(1);
                    let now = c
                        .state()
                        .get("counter/value")
                        .await
                        .ok()
                        .flatten()
                        .and_then(|r| r.value.as_i64())
                        .unwrap_or(0);
                    c.state()
                        .set("counter/value", json!(now + by))
                        .await
                        .map_err(|e| hcore_client::RpcError::internal(e.to_string()))?;
                    let _ = c
                        .publish_event_with(
                            "counter/changed",
                            json!({ "value": now + by }),
                            call.context_id(),
                        )
                        .await;
                    Ok(json!({ "value": now + by }))
                }
            })
            .await?;
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:1883".into());
    let data = std::env::temp_dir().join(format!("hcore-example-{}", std::process::id()));
    let settings = Settings {
        broker: BrokerConfig::with_listener(listen.parse().expect("address")),
        kernel: KernelConfig {
            data_dir: data.clone(),
            ..KernelConfig::default()
        },
        ..Settings::default()
    };
    let counter: PluginFactory = Arc::new(|| Box::new(Counter));
    let hub = Hub::start(&settings, vec![("counter".into(), counter)])
        .await
        .expect("broker and kernel");
    println!("ready on {}", hub.local_addrs()[0]);
    let _ = tokio::signal::ctrl_c().await;
    hub.shutdown().await;
    let _ = std::fs::remove_dir_all(data);
}
