//! A remote Rust plugin: its own program, on any machine that reaches the broker (a
//! Raspberry Pi next to the sensor). `cargo run -p hcore-examples --bin remote
//! mqtt://kernel-host:1883`. It provides `<id>.now` (`weather.now`) and publishes a
//! reading event every few seconds; Ctrl-C or SIGTERM stops it cleanly (offline status
//! published). Run by a plugin host, it takes its id and URL (with its credential) from
//! `HCORE_ID` and `HCORE_URL`.

use hcore_client::{async_trait, Client, Plugin, PluginError};
use serde_json::json;

struct Weather {
    id: String,
}

#[async_trait]
impl Plugin for Weather {
    fn id(&self) -> &str {
        &self.id
    }

    async fn on_start(&mut self, client: &Client) -> Result<(), PluginError> {
        client
            .provide(&format!("{}.now", self.id), |_call| async {
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
        .or_else(|| std::env::var("HCORE_URL").ok())
        .unwrap_or_else(|| "mqtt://127.0.0.1:1883".into());
    let id = std::env::var("HCORE_ID").unwrap_or_else(|_| "weather".into());
    if let Err(e) = hcore_client::run_remote(Weather { id }, &url).await {
        eprintln!("remote: {e}");
        std::process::exit(1);
    }
}
