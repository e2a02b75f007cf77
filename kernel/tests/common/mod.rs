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

use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;

/// A raw MQTT 5 client (rumqttc, no SDK) with its incoming publishes on a channel.
pub struct Raw {
    pub client: AsyncClient,
    pub rx: mpsc::UnboundedReceiver<rumqttc::v5::mqttbytes::v5::Publish>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn raw(addr: SocketAddr, id: &str, will: Option<(String, Vec<u8>)>) -> Raw {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    if let Some((topic, payload)) = will {
        o.set_last_will(LastWill::new(topic, payload, QoS::AtLeastOnce, true, None));
    }
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send(p);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    tokio::time::timeout(WAIT, ready_rx).await.unwrap().unwrap();
    Raw { client, rx, task }
}

impl Raw {
    pub async fn next(&mut self) -> rumqttc::v5::mqttbytes::v5::Publish {
        tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .expect("a publish in time")
            .unwrap()
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<bytes::Bytes>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.into())
            .await
            .unwrap();
    }

    pub async fn publish_props(
        &self,
        topic: &str,
        payload: impl Into<bytes::Bytes>,
        props: PublishProperties,
    ) {
        self.client
            .publish_with_properties(topic, QoS::AtLeastOnce, false, payload.into(), props)
            .await
            .unwrap();
    }

    pub async fn subscribe(&self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .unwrap();
        // Give the SUBSCRIBE a moment to reach the broker before publishing.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A provider written without the SDK: announces `methods` in its manifest and status
/// (with an `offline` will), subscribes to their shared subscriptions, never answers.
pub async fn raw_provider(h: &Harness, id: &str, methods: &[&str]) -> Raw {
    let status = format!("hc/plugin/{id}/status");
    let will = (
        status.clone(),
        br#"{"state":"offline","session":1}"#.to_vec(),
    );
    let p = raw(h.addr, id, Some(will)).await;
    for m in methods {
        let (service, method) = m.split_once('.').unwrap();
        p.subscribe(&format!("$share/{m}/hc/call/+/{service}/{method}"))
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

// ------------------------------------------------------------- the real binary

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts `hcore run` on a free port; returns the process and its MQTT URL.
pub async fn spawn_hcore(data: &std::path::Path) -> (Child, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hcore"));
    c.args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data);
    spawn_with(c).await
}

/// Spawns a prepared `hcore run` command and waits until it serves.
pub async fn spawn_with(mut c: Command) -> (Child, String) {
    let mut child = c
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("hcore binary");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("listener ready") {
                let addr = line
                    .split("addr=")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap();
                return format!("mqtt://{addr}");
            }
        }
        panic!("hcore exited before listening");
    })
    .await
    .expect("hcore listening in time");
    // Keep draining stderr so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    // The kernel announces itself once it serves; wait for it.
    let probe = Client::connect(&url, ClientOptions::new("probe").quiet())
        .await
        .unwrap();
    let mut status = probe.subscribe("hc/kernel/status").await.unwrap();
    loop {
        let s = tokio::time::timeout(WAIT, status.next())
            .await
            .unwrap()
            .unwrap();
        if s.json().is_some_and(|v| v["state"] == "online") {
            break;
        }
    }
    (child, url)
}

/// SIGKILL: no cleanup of any kind.
pub async fn kill9(child: &mut Child) {
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// Sends SIGTERM (through the shell's built-in `kill`, present on any system).
pub fn sigterm(pid: u32) {
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(status.success());
}
