//! Logs carry their context: an in-process plugin's lines its plugin id, a network
//! client's lines its connection, a call's lines (at debug) its caller and method.

use std::io::Write;
use std::sync::{Arc, Mutex};

use hcore_client::{async_trait, Client, Plugin, PluginError};
use hcore_kernel::PluginFactory;
use hcore_tests::hub::*;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits for a line containing every one of `parts`.
    async fn line_with(&self, parts: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(l) = self
                .text()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return l.to_string();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line with {parts:?} in:\n{}",
                self.text()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

struct Chatty;

#[async_trait]
impl Plugin for Chatty {
    fn id(&self) -> &str {
        "chatty"
    }
    async fn on_start(&mut self, _client: &Client) -> Result<(), PluginError> {
        tracing::info!("hello from on_start");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_name_their_plugin_connection_and_call() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("info,hcore_kernel=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let factory: PluginFactory = Arc::new(|| Box::new(Chatty));
    let h = start_with(vec![("chatty".into(), factory)]).await;
    captured
        .line_with(&["plugin{id=chatty}", "hello from on_start"])
        .await;

    // A network client's refused publish is logged in its connection's span.
    let intruder = raw(h.addr, "intruder", None).await;
    intruder.publish("hc/state/x", "{}", false).await;
    captured
        .line_with(&["conn{client_id=intruder", "not authorized"])
        .await;

    // A failed call, at debug: inside the caller's connection and the call.
    let caller = h.tcp("asker").await;
    let e = caller
        .call("state.get", json!({"key": "no/such/key"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not_found"), "{e}");
    captured
        .line_with(&[
            "conn{client_id=asker",
            "call{caller=\"asker\" method=state.get}",
            "not_found",
        ])
        .await;
    h.stop().await;
}
