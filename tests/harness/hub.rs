//! The embedded broker with the kernel's policy on a free port, the kernel on a temporary
//! data directory, and SDK clients over TCP and in-process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hcore_broker::{Broker, BrokerConfig};
use hcore_client::{Client, ClientOptions};
use hcore_kernel::{Connection, Kernel, KernelConfig, KernelPolicy, PluginFactory};

pub use crate::clients::*;
pub use crate::{eventually, free_port, init_tracing, TempDir, WAIT};

pub struct Harness {
    pub broker: Option<Broker>,
    pub kernel: Option<Kernel>,
    pub policy: Arc<KernelPolicy>,
    pub dir: TempDir,
    pub addr: SocketAddr,
}

pub async fn start() -> Harness {
    start_with(Vec::new()).await
}

pub async fn start_with(plugins: Vec<(String, PluginFactory)>) -> Harness {
    start_in(TempDir::new(), plugins).await
}

/// Starts broker and kernel on an existing data directory.
pub async fn start_in(dir: TempDir, plugins: Vec<(String, PluginFactory)>) -> Harness {
    init_tracing();
    let policy = Arc::new(KernelPolicy::new("hc"));
    let broker = Broker::start_with_hooks(
        BrokerConfig::with_listener("127.0.0.1:0".parse().unwrap()),
        policy.clone(),
    )
    .await
    .unwrap();
    let addr = broker.local_addrs()[0];
    let config = KernelConfig {
        data_dir: dir.0.clone(),
        plugin_restart_max_ms: 2_000,
        ..KernelConfig::default()
    };
    let kernel = Kernel::start(
        config,
        Connection::Embedded(broker.handle()),
        policy.clone(),
        plugins,
    )
    .await
    .unwrap();
    Harness {
        broker: Some(broker),
        kernel: Some(kernel),
        policy,
        dir,
        addr,
    }
}

impl Harness {
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    pub async fn tcp(&self, id: &str) -> Client {
        Client::connect(&self.url(), ClientOptions::new(id))
            .await
            .unwrap()
    }

    pub async fn local(&self, id: &str) -> Client {
        let broker = self.broker.as_ref().unwrap().handle();
        Client::connect_in_process(&broker, ClientOptions::new(id))
            .await
            .unwrap()
    }

    /// Stops kernel and broker; returns the data directory for a restart.
    pub async fn stop(mut self) -> TempDir {
        if let Some(k) = self.kernel.take() {
            k.shutdown().await;
        }
        if let Some(b) = self.broker.take() {
            b.shutdown().await;
        }
        std::mem::replace(&mut self.dir, TempDir(PathBuf::new()))
    }
}

/// A provider written without the SDK: announces `methods` in its manifest and status
/// (with an `offline` will), subscribes to their shared subscriptions, never answers.
pub async fn raw_provider(h: &Harness, id: &str, methods: &[&str]) -> V5 {
    let status = format!("hc/plugin/{id}/status");
    let will = (
        status.clone(),
        br#"{"state":"offline","session":1}"#.to_vec(),
    );
    let mut p = raw(h.addr, id, Some(will)).await;
    for m in methods {
        let (service, method) = m.split_once('.').unwrap();
        p.sub(&format!("$share/{m}/hc/call/+/{service}/{method}"))
            .await;
    }
    let manifest = serde_json::json!({ "version": "1.0.0", "services": methods });
    p.publish(
        &format!("hc/plugin/{id}/manifest"),
        manifest.to_string(),
        true,
    )
    .await;
    p.publish(&status, r#"{"state":"online","session":1}"#, true)
        .await;
    p
}

/// Waits until the kernel's registry lists `provider` for `method`.
pub async fn wait_registered(client: &Client, method: &str, provider: &str) {
    let (service, name) = method.split_once('.').unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = client
            .call("registry.list", serde_json::json!({}))
            .await
            .unwrap();
        let providers = &list["services"][service][name];
        if providers
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p == provider))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{method} never registered: {list}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
