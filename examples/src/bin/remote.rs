//! A remote Rust plugin: its own program, on any machine that reaches the broker (a
//! Raspberry Pi next to the sensor). `cargo run -p hcore-examples --bin remote
//! mqtt://kernel-host:1883`. It provides `weather.now` and publishes a reading event
//! every few seconds; Ctrl-C stops it cleanly (offline status published).

use hcore_client::{async_trait, Client, Plugin, PluginError};
use serde_json::json;

struct Weather;

#[async_trait]
impl Plugin for Weather {
    fn id(&self) -> &str {
        "weather"
    }

    async fn on_start(&mut self, client: &Client) -> Result<(), PluginError> {
        client
            .provide("weather.now", |_call| async {
                Ok(json!({ "celsius": 21.5, "sky": "clear" }))
            })
            .await?;
        Ok(())
    }

    async fn run(&mut self, client: &Client) -> Result<(), PluginError> {
        loop {
            client
                .publish_event("reading", json!({ "celsius": 21.5 }))
                .await?;
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        }
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883".into());
    if let Err(e) = hcore_client::run_remote(Weather, &url).await {
        eprintln!("remote: {e}");
        std::process::exit(1);
    }
}
