//! Helpers shared by the broker's integration tests: a broker on a free port, real
//! clients (rumqttc v3.1.1 and v5, mosquitto_pub/sub) and a raw TCP client for hostile
//! input.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Once};
use std::time::Duration;

use hcore_broker::{Broker, BrokerConfig, Hooks};
use tokio::sync::mpsc;

mod raw;
#[allow(unused_imports)]
pub use raw::*;

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

pub fn test_config() -> BrokerConfig {
    BrokerConfig::with_listener("127.0.0.1:0".parse().unwrap())
}

pub async fn start() -> Broker {
    start_with(test_config(), None).await
}

pub async fn start_with(config: BrokerConfig, hooks: Option<Arc<dyn Hooks>>) -> Broker {
    init_tracing();
    match hooks {
        Some(h) => Broker::start_with_hooks(config, h).await.unwrap(),
        None => Broker::start(config).await.unwrap(),
    }
}

pub fn addr(b: &Broker) -> SocketAddr {
    b.local_addrs()[0]
}

// ---------------------------------------------------------------- rumqttc v3.1.1

pub struct V4 {
    pub client: rumqttc::AsyncClient,
    pub events: mpsc::UnboundedReceiver<Result<rumqttc::Event, String>>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn v4_options(addr: SocketAddr, id: &str) -> rumqttc::MqttOptions {
    let mut o = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// Connects and waits for the CONNACK (or the connection error).
pub async fn v4_with(o: rumqttc::MqttOptions) -> Result<V4, String> {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 1000);
    let mut net = eventloop.network_options();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let (tx, mut events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(e) => {
                    if tx.send(Ok(e)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    break;
                }
            }
        }
    });
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Some(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))))) => break,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => return Err("event loop ended".into()),
            Err(_) => return Err("no CONNACK".into()),
        }
    }
    Ok(V4 {
        client,
        events,
        task,
    })
}

pub async fn v4(addr: SocketAddr, id: &str) -> V4 {
    v4_with(v4_options(addr, id)).await.unwrap()
}

impl V4 {
    /// The next incoming packet that matches, skipping others.
    pub async fn next_incoming<T>(
        &mut self,
        mut pick: impl FnMut(&rumqttc::Packet) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()??;
            if let Ok(rumqttc::Event::Incoming(p)) = e {
                if let Some(t) = pick(&p) {
                    return Some(t);
                }
            } else if e.is_err() {
                return None;
            }
        }
    }

    pub async fn next_publish(&mut self) -> Option<rumqttc::Publish> {
        self.next_incoming(|p| match p {
            rumqttc::Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::QoS,
    ) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap();
        self.next_incoming(|p| match p {
            rumqttc::Packet::SubAck(s) => Some(s.return_codes.clone()),
            _ => None,
        })
        .await
        .expect("SUBACK")
    }
}

// ---------------------------------------------------------------- rumqttc v5

pub struct V5 {
    pub client: rumqttc::v5::AsyncClient,
    pub events: mpsc::UnboundedReceiver<Result<rumqttc::v5::Event, String>>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn v5_options(addr: SocketAddr, id: &str) -> rumqttc::v5::MqttOptions {
    let mut o = rumqttc::v5::MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    let mut net = o.network_options();
    net.set_tcp_nodelay(true);
    o.set_network_options(net);
    o
}

pub async fn v5_with(o: rumqttc::v5::MqttOptions) -> Result<V5, String> {
    let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(o, 1000);
    let (tx, mut events) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(e) => {
                    if tx.send(Ok(e)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("{e:?}")));
                    break;
                }
            }
        }
    });
    loop {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Some(Ok(rumqttc::v5::Event::Incoming(
                rumqttc::v5::mqttbytes::v5::Packet::ConnAck(_),
            )))) => break,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => return Err("event loop ended".into()),
            Err(_) => return Err("no CONNACK".into()),
        }
    }
    Ok(V5 {
        client,
        events,
        task,
    })
}

pub async fn v5(addr: SocketAddr, id: &str) -> V5 {
    v5_with(v5_options(addr, id)).await.unwrap()
}

impl V5 {
    pub async fn next_incoming<T>(
        &mut self,
        mut pick: impl FnMut(&rumqttc::v5::mqttbytes::v5::Packet) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()??;
            match e {
                Ok(rumqttc::v5::Event::Incoming(p)) => {
                    if let Some(t) = pick(&p) {
                        return Some(t);
                    }
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    pub async fn next_publish(&mut self) -> Option<rumqttc::v5::mqttbytes::v5::Publish> {
        self.next_incoming(|p| match p {
            rumqttc::v5::mqttbytes::v5::Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    pub async fn subscribe(
        &mut self,
        filter: &str,
        qos: rumqttc::v5::mqttbytes::QoS,
    ) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
        self.client.subscribe(filter, qos).await.unwrap();
        self.next_incoming(|p| match p {
            rumqttc::v5::mqttbytes::v5::Packet::SubAck(s) => Some(s.return_codes.clone()),
            _ => None,
        })
        .await
        .expect("SUBACK")
    }
}

// ---------------------------------------------------------------- mosquitto clients

pub fn require_mosquitto_clients() {
    let ok = std::process::Command::new("mosquitto_pub")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "mosquitto_pub not found: install mosquitto-clients (see .ci/run)"
    );
}

/// Starts mosquitto_sub and waits until its subscription is registered (it prints
/// nothing until then, so the caller passes a probe: we poll the broker's metrics).
pub fn mosquitto_sub(addr: SocketAddr, args: &[&str]) -> tokio::process::Child {
    require_mosquitto_clients();
    tokio::process::Command::new("mosquitto_sub")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mosquitto_sub")
}

pub async fn mosquitto_pub(addr: SocketAddr, args: &[&str]) -> std::process::Output {
    require_mosquitto_clients();
    tokio::process::Command::new("mosquitto_pub")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(args)
        .output()
        .await
        .expect("run mosquitto_pub")
}

/// Waits until `n` clients are connected (CONNACK sent).
pub async fn wait_clients(b: &hcore_broker::BrokerHandle, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.metrics().clients_connected < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "clients did not connect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a metric reaches a value.
pub async fn wait_metric(
    b: &hcore_broker::BrokerHandle,
    what: impl Fn(&hcore_broker::MetricsSnapshot) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !what(&b.metrics()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "metric did not reach the expected value: {:?}",
            b.metrics()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

impl Drop for V4 {
    /// Dropping a test client drops its connection (abruptly, like a crash).
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drop for V5 {
    fn drop(&mut self) {
        self.task.abort();
    }
}
