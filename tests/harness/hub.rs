//! The embedded broker with the kernel's policy on a free port, the kernel on a temporary
//! data directory, and SDK clients over TCP and in-process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hcore_broker::{BrokerConfig, BrokerHandle};
use hcore_client::{Client, ClientOptions};
use hcore_kernel::settings::Settings;
use hcore_kernel::{Hub, Kernel, KernelConfig, PluginFactory};

pub use crate::clients::*;
pub use crate::{eventually, free_port, init_tracing, TempDir, WAIT};

pub struct Harness {
    pub hub: Option<Hub>,
    pub dir: TempDir,
    pub addr: SocketAddr,
}

pub async fn start() -> Harness {
    start_with(Vec::new()).await
}

pub async fn start_with(plugins: Vec<(String, PluginFactory)>) -> Harness {
    start_in(TempDir::new(), plugins).await
}

/// The settings every harness hub starts with: a free port, the data directory, quick
/// plugin restarts.
pub fn settings(dir: &TempDir) -> Settings {
    Settings {
        broker: BrokerConfig::with_listener("127.0.0.1:0".parse().unwrap()),
        kernel: KernelConfig {
            data_dir: dir.0.clone(),
            plugin_restart_max_ms: 2_000,
            ..KernelConfig::default()
        },
        ..Settings::default()
    }
}

/// A hub whose loopback listener gives anonymous clients `role` (`anonymous_role`)
/// instead of admin: anonymous test clients are then held to that role's rules, with
/// their client id as their identity.
pub async fn start_anonymous_as(role: &str) -> Harness {
    let dir = TempDir::new();
    let mut settings = settings(&dir);
    settings.broker.listeners[0].anonymous_role = Some(role.to_string());
    start_settings(dir, &settings, Vec::new()).await
}

/// hcore with a loopback listener and one on every address (the LAN one, where
/// anonymous clients are refused); returns the harness and the LAN listener's port
/// reached over loopback (`login` there is held to the user's role).
pub async fn start_with_lan() -> (Harness, SocketAddr) {
    let dir = TempDir::new();
    let mut s = settings(&dir);
    s.broker.listeners = vec![
        hcore_broker::ListenerConfig::new("local", "127.0.0.1:0".parse().unwrap()),
        hcore_broker::ListenerConfig::new("lan", "0.0.0.0:0".parse().unwrap()),
    ];
    let h = start_settings(dir, &s, vec![]).await;
    let lan = h.hub_addrs()[1];
    (h, SocketAddr::from(([127, 0, 0, 1], lan.port())))
}

/// An SDK client logged in as `user` (password `password`) with client id `client_id`.
pub async fn login_as(addr: SocketAddr, user: &str, password: &str, client_id: &str) -> Client {
    let url = format!("mqtt://{user}:{password}@{addr}");
    Client::connect(&url, ClientOptions::new(client_id).quiet())
        .await
        .unwrap()
}

/// A raw MQTT 5 client logged in as `user` (password `pw`) with client id `client_id`.
pub async fn raw_login(addr: SocketAddr, user: &str, client_id: &str) -> V5 {
    let mut o = v5_options(addr, client_id);
    o.set_credentials(user, "pw");
    v5_with(o).await.unwrap()
}

/// A hub on a data directory whose `policy.toml` is `policy`.
pub async fn start_with_policy(policy: &str) -> Harness {
    let dir = TempDir::new();
    std::fs::write(dir.path().join("policy.toml"), policy).unwrap();
    start_in(dir, Vec::new()).await
}

/// Starts broker and kernel on an existing data directory.
pub async fn start_in(dir: TempDir, plugins: Vec<(String, PluginFactory)>) -> Harness {
    let settings = settings(&dir);
    start_settings(dir, &settings, plugins).await
}

/// Starts broker and kernel with these settings.
pub async fn start_settings(
    dir: TempDir,
    settings: &Settings,
    plugins: Vec<(String, PluginFactory)>,
) -> Harness {
    init_tracing();
    let hub = Hub::start(settings, plugins).await.unwrap();
    let addr = hub.local_addrs()[0];
    Harness {
        hub: Some(hub),
        dir,
        addr,
    }
}

impl Harness {
    pub fn url(&self) -> String {
        format!("mqtt://{}", self.addr)
    }

    pub fn kernel(&self) -> &Kernel {
        self.hub.as_ref().unwrap().kernel()
    }

    /// Every listener's address, in the order configured.
    pub fn hub_addrs(&self) -> Vec<SocketAddr> {
        self.hub.as_ref().unwrap().local_addrs().to_vec()
    }

    pub fn broker(&self) -> BrokerHandle {
        self.hub.as_ref().unwrap().broker().unwrap()
    }

    pub async fn tcp(&self, id: &str) -> Client {
        Client::connect(&self.url(), ClientOptions::new(id))
            .await
            .unwrap()
    }

    pub async fn local(&self, id: &str) -> Client {
        Client::connect_in_process(&self.broker(), ClientOptions::new(id))
            .await
            .unwrap()
    }

    /// Stops kernel and broker; returns the data directory for a restart.
    pub async fn stop(mut self) -> TempDir {
        if let Some(h) = self.hub.take() {
            h.shutdown().await;
        }
        std::mem::replace(&mut self.dir, TempDir(PathBuf::new()))
    }
}

/// A provider written without the SDK: announces `methods` in its manifest and status
/// (with an `offline` will), subscribes to their shared subscriptions, never answers.
pub async fn raw_provider(h: &Harness, id: &str, methods: &[&str]) -> V5 {
    raw_provider_at(h.addr, id, methods).await
}

/// `raw_provider` on any broker address (a running `hcore` binary, for instance).
pub async fn raw_provider_at(addr: SocketAddr, id: &str, methods: &[&str]) -> V5 {
    raw_provider_with(v5_options(addr, id), methods).await
}

/// `raw_provider` with its own client options (its id is the options' client id).
pub async fn raw_provider_with(mut o: rumqttc::v5::MqttOptions, methods: &[&str]) -> V5 {
    let id = o.client_id();
    let status = format!("hc/plugin/{id}/status");
    let will = (
        status.clone(),
        br#"{"state":"offline","session":1}"#.to_vec(),
    );
    o.set_last_will(rumqttc::v5::mqttbytes::v5::LastWill::new(
        will.0,
        will.1,
        rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        true,
        None,
    ));
    let mut p = v5_with(o).await.unwrap();
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

/// Waits until a subscription to `hc/kernel/status` (retained) says `online`.
pub async fn until_online(status: &mut hcore_client::Subscription) {
    loop {
        let s = tokio::time::timeout(WAIT, status.next())
            .await
            .expect("the kernel online in time")
            .expect("the subscription open");
        if s.json().is_some_and(|v| v["state"] == "online") {
            return;
        }
    }
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
