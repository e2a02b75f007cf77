//! MQTT clients for tests: rumqttc's MQTT 3.1.1 (`V4`) and MQTT 5 (`V5`) clients, each
//! polled by its own task with every event on a channel, so a test can wait for exactly
//! the packet it expects. Dropping a client drops its connection abruptly, like a crash.

use std::net::SocketAddr;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{LastWill, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use tokio::sync::mpsc;

use crate::WAIT;

// ---------------------------------------------------------------- rumqttc v3.1.1

pub struct V4 {
    /// The CONNACK's session-present flag.
    pub session_present: bool,
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
    let session_present = loop {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Some(Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(c))))) => {
                break c.session_present
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => return Err("event loop ended".into()),
            Err(_) => return Err("no CONNACK".into()),
        }
    };
    Ok(V4 {
        session_present,
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
    /// The CONNACK's session-present flag.
    pub session_present: bool,
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
    let session_present = loop {
        match tokio::time::timeout(WAIT, events.recv()).await {
            Ok(Some(Ok(rumqttc::v5::Event::Incoming(
                rumqttc::v5::mqttbytes::v5::Packet::ConnAck(c),
            )))) => break c.session_present,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e),
            Ok(None) => return Err("event loop ended".into()),
            Err(_) => return Err("no CONNACK".into()),
        }
    };
    Ok(V5 {
        session_present,
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

// ---------------------------------------------------------------- MQTT 5 conveniences

/// An MQTT 5 client with an optional retained will (QoS 1), connected.
pub async fn raw(addr: SocketAddr, id: &str, will: Option<(String, Vec<u8>)>) -> V5 {
    let mut o = v5_options(addr, id);
    if let Some((topic, payload)) = will {
        o.set_last_will(LastWill::new(topic, payload, QoS::AtLeastOnce, true, None));
    }
    v5_with(o).await.unwrap()
}

impl V5 {
    /// The next publish; fails the test if none arrives in time.
    pub async fn next(&mut self) -> Publish {
        self.next_publish().await.expect("a publish in time")
    }

    /// Publishes at QoS 1.
    pub async fn publish(&self, topic: &str, payload: impl Into<bytes::Bytes>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload.into())
            .await
            .unwrap();
    }

    /// Publishes at QoS 1 with properties.
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

    /// Subscribes at QoS 1 and waits for the SUBACK; returns its reason codes.
    pub async fn sub(
        &mut self,
        filter: &str,
    ) -> Vec<rumqttc::v5::mqttbytes::v5::SubscribeReasonCode> {
        self.subscribe(filter, QoS::AtLeastOnce).await
    }
}
