//! Helpers shared by the broker's integration tests: a broker on a free port, real
//! clients (rumqttc v3.1.1 and v5, mosquitto_pub/sub) and a raw TCP client for hostile
//! input.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Once};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use hcore_broker::wire::frame::parse_header;
use hcore_broker::{Broker, BrokerConfig, Hooks};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

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

// ---------------------------------------------------------------- raw TCP

pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Next packet as (first byte, body), or None on EOF / timeout.
    pub async fn read_packet(&mut self) -> Option<(u8, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(Some(h)) = parse_header(&self.buf, usize::MAX) {
                if self.buf.len() >= h.frame_len() {
                    let frame = self.buf.split_to(h.frame_len());
                    return Some((h.byte1, frame[h.header_len..].to_vec()));
                }
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// True if the server closes the connection (EOF or reset) before the timeout,
    /// ignoring anything it sends first.
    pub async fn closed(&mut self) -> bool {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut scratch = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut scratch)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn put_str(b: &mut BytesMut, s: &[u8]) {
    b.put_u16(s.len() as u16);
    b.put_slice(s);
}

fn put_len(b: &mut BytesMut, mut v: usize) {
    loop {
        let mut byte = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            byte |= 0x80;
        }
        b.put_u8(byte);
        if v == 0 {
            break;
        }
    }
}

fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(byte1);
    put_len(&mut b, body.len());
    b.put_slice(body);
    b.to_vec()
}

/// CONNECT for MQTT 3.1.1 (level 4) or 5.
pub fn connect_packet(level: u8, client_id: &str, keep_alive: u16, clean: bool) -> Vec<u8> {
    let mut body = BytesMut::new();
    put_str(&mut body, b"MQTT");
    body.put_u8(level);
    body.put_u8(if clean { 0x02 } else { 0 });
    body.put_u16(keep_alive);
    if level == 5 {
        body.put_u8(0);
    }
    put_str(&mut body, client_id.as_bytes());
    packet(0x10, &body)
}

/// CONNECT (3.1.1) with a will.
pub fn connect_with_will(
    client_id: &str,
    keep_alive: u16,
    topic: &str,
    payload: &[u8],
    retain: bool,
) -> Vec<u8> {
    let mut body = BytesMut::new();
    put_str(&mut body, b"MQTT");
    body.put_u8(4);
    body.put_u8(0x02 | 0x04 | if retain { 0x20 } else { 0 });
    body.put_u16(keep_alive);
    put_str(&mut body, client_id.as_bytes());
    put_str(&mut body, topic.as_bytes());
    put_str(&mut body, payload);
    packet(0x10, &body)
}

pub fn publish_packet(topic: &[u8], payload: &[u8], qos: u8, pkid: u16, retain: bool) -> Vec<u8> {
    let mut body = BytesMut::new();
    put_str(&mut body, topic);
    if qos > 0 {
        body.put_u16(pkid);
    }
    body.put_slice(payload);
    packet(0x30 | (qos << 1) | retain as u8, &body)
}

pub fn subscribe_packet(pkid: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_u16(pkid);
    put_str(&mut body, filter.as_bytes());
    body.put_u8(qos);
    packet(0x82, &body)
}

pub const PINGREQ: [u8; 2] = [0xc0, 0x00];
pub const DISCONNECT: [u8; 2] = [0xe0, 0x00];

/// A raw v3.1.1 client that is connected (CONNACK 0 received).
pub async fn raw_connected(addr: SocketAddr, client_id: &str, keep_alive: u16) -> Raw {
    let mut raw = Raw::connect(addr).await;
    raw.send(&connect_packet(4, client_id, keep_alive, true))
        .await;
    let (b1, body) = raw.read_packet().await.expect("CONNACK");
    assert_eq!(b1, 0x20);
    assert_eq!(body, vec![0, 0]);
    raw
}

/// CONNECT with user name and password.
pub fn connect_login(level: u8, client_id: &str, user: &str, pass: &str) -> Vec<u8> {
    let mut body = BytesMut::new();
    put_str(&mut body, b"MQTT");
    body.put_u8(level);
    body.put_u8(0x02 | 0x80 | 0x40);
    body.put_u16(30);
    if level == 5 {
        body.put_u8(0);
    }
    put_str(&mut body, client_id.as_bytes());
    put_str(&mut body, user.as_bytes());
    put_str(&mut body, pass.as_bytes());
    packet(0x10, &body)
}

/// Any packet from raw parts (for hostile tests).
pub fn raw_packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    packet(byte1, body)
}

pub type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// The stdout lines of a spawned mosquitto_sub.
pub fn lines_of(child: &mut tokio::process::Child) -> Lines {
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.take().expect("piped stdout");
    tokio::io::BufReader::new(stdout).lines()
}

pub async fn next_line(lines: &mut Lines) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line from mosquitto_sub in time")
        .expect("read stdout")
        .expect("mosquitto_sub still running")
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
