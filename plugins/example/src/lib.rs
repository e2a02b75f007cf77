//! The example plugin (the seed's `example_plugin`), written against the SDK only, so it
//! runs in-process (loaded by `hcore run --plugin example`) or on another machine
//! (`example-plugin mqtt://kernel-host:1883`) unchanged.
//!
//! * `example.hello {"name"}` greets with the greeting from its settings, counts the
//!   greeting in state (`example/greetings`) and emits an `example/greeted` event.
//! * `example.count {}` returns the counter.
//! * `example.set_greeting {"greeting"}` changes the setting, kept in storage.
//! * `example.crash {}` makes the plugin's main loop panic (to show supervision).

use hcore_client::protocol::Manifest;
use hcore_client::{async_trait, Client, Plugin, PluginError, RpcError};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// The plugin id.
pub const ID: &str = "example";
const COUNTER: &str = "example/greetings";
const DEFAULT_GREETING: &str = "Hello";

#[derive(Default)]
pub struct ExamplePlugin {
    crash: Option<mpsc::UnboundedReceiver<()>>,
}

impl ExamplePlugin {
    pub fn new() -> ExamplePlugin {
        ExamplePlugin::default()
    }
}

#[async_trait]
impl Plugin for ExamplePlugin {
    fn id(&self) -> &str {
        ID
    }

    fn manifest(&self) -> Manifest {
        Manifest {
            version: env!("CARGO_PKG_VERSION").to_string(),
            description: "Greets, counts greetings in state, keeps its greeting in storage".into(),
            services: Vec::new(),
            events: vec!["example/greeted".into()],
            ..Manifest::default()
        }
    }

    async fn on_start(&mut self, client: &Client) -> Result<(), PluginError> {
        if client.storage().get("greeting").await?.is_none() {
            client
                .storage()
                .set("greeting", json!(DEFAULT_GREETING))
                .await?;
        }
        let c = client.clone();
        client
            .provide("example.hello", move |call| {
                let c = c.clone();
                async move {
                    let name = match call.params.get("name") {
                        None | Some(Value::Null) => "world".to_string(),
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => return Err(RpcError::bad_request(format!("name must be a string, not {other}"))),
                    };
                    let greeting = c
                        .storage()
                        .get("greeting")
                        .await
                        .map_err(internal)?
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_else(|| DEFAULT_GREETING.to_string());
                    let count = increment(&c).await.map_err(internal)?;
                    let event = c
                        .publish_event_with("example/greeted", json!({ "name": name, "count": count }), call.context_id())
                        .await
                        .map_err(internal)?;
                    Ok(json!({ "greeting": format!("{greeting}, {name}!"), "count": count, "event": event.id }))
                }
            })
            .await?;
        let c = client.clone();
        client
            .provide("example.count", move |_call| {
                let c = c.clone();
                async move {
                    let rec = c.state().get(COUNTER).await.map_err(internal)?;
                    Ok(json!({ "count": rec.map_or(json!(0), |r| r.value) }))
                }
            })
            .await?;
        let c = client.clone();
        client
            .provide("example.set_greeting", move |call| {
                let c = c.clone();
                async move {
                    let Some(g) = call.params.get("greeting").and_then(Value::as_str) else {
                        return Err(RpcError::bad_request("greeting must be a string"));
                    };
                    c.storage()
                        .set("greeting", json!(g))
                        .await
                        .map_err(internal)?;
                    Ok(json!({ "greeting": g }))
                }
            })
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        self.crash = Some(rx);
        client
            .provide("example.crash", move |_call| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(());
                    Ok(json!({ "crashing": true }))
                }
            })
            .await?;
        tracing::info!("example plugin started");
        Ok(())
    }

    async fn run(&mut self, _client: &Client) -> Result<(), PluginError> {
        if let Some(rx) = self.crash.as_mut() {
            if rx.recv().await.is_some() {
                panic!("example.crash was called");
            }
        }
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// Adds one to the greeting counter with optimistic concurrency (retries on conflict).
async fn increment(c: &Client) -> Result<u64, hcore_client::ClientError> {
    loop {
        let current = c.state().get(COUNTER).await?;
        let (n, version) = current.map_or((0, 0), |r| (r.value.as_u64().unwrap_or(0), r.version));
        match c.state().set_if(COUNTER, json!(n + 1), version).await {
            Ok(_) => return Ok(n + 1),
            Err(e) if e.code() == Some(hcore_client::ErrorCode::Conflict) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn internal(e: hcore_client::ClientError) -> RpcError {
    match e {
        hcore_client::ClientError::Rpc(r) => r,
        other => RpcError::internal(other.to_string()),
    }
}
