//! Test harness: the embedded broker on a free port with the kernel's policy, the kernel
//! on a temporary data directory, and SDK clients over TCP and in-process.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use hcore_broker::{Broker, BrokerConfig};
use hcore_client::{Client, ClientOptions};
use hcore_kernel::{Connection, Kernel, KernelConfig, KernelPolicy, PluginFactory};

pub const WAIT: Duration = Duration::from_secs(10);

pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("hcore-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

/// Waits until `f` is true.
pub async fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
