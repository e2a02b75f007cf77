//! The two MQTT versions the TCP transport speaks, behind one face: rumqttc's MQTT 5
//! client, and its MQTT 3.1.1 client for brokers that refuse 5 (NATS, mosquitto 1.x).
//! `Mqtt` sends; `Poller` drives the connection and turns what arrives into `Polled`.
//!
//! MQTT 3.1.1 has no properties: correlation data and response topics are not sent, and
//! none arrive. The protocol does not need them (the payload carries `id` and
//! `reply_to`); identity stamps are an embedded-broker feature anyway.

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5 as p5;

use super::{Message, Outgoing, TcpOptions};
use crate::error::ClientError;

/// An MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    V311,
    V5,
}

impl std::fmt::Display for MqttVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MqttVersion::V311 => "MQTT 3.1.1",
            MqttVersion::V5 => "MQTT 5",
        })
    }
}

/// What a poll of the connection produced.
pub(super) enum Polled {
    ConnAck,
    Message(Message),
    /// A SUBACK; the refusal, if a filter was refused.
    SubAck(Option<String>),
    Other,
}

/// The sending half.
pub(super) enum Mqtt {
    V5(rumqttc::v5::AsyncClient),
    V311(rumqttc::AsyncClient),
}

/// The receiving half: the event loop, polled by the transport's task.
pub(super) enum Poller {
    V5(Box<rumqttc::v5::EventLoop>),
    V311(Box<rumqttc::EventLoop>),
}

fn transport_error(e: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(e.to_string())
}

/// The QoS of subscriptions over MQTT 3.1.1. Sessions are clean, so a QoS 1
/// subscription would buy redelivery only within a session that ends with the
/// connection anyway; and NATS, the 3.1.1 broker hcore is run on, backs each QoS 1
/// subscription with a JetStream consumer, which takes seconds to create on a cluster and
/// is refused while the cluster elects leaders after losing a node. QoS 0 subscriptions
/// are plain NATS subscriptions. Publishes keep their QoS.
const V311_SUBSCRIBE_QOS: u8 = 0;

/// Most QoS 1 publishes in flight on one connection (the broker's receive maximum, if
/// smaller, wins).
const MAX_INFLIGHT: u16 = 256;

/// The client and its event loop for `version`, not yet connected.
pub(super) fn open(
    id: &str,
    o: &TcpOptions,
    version: MqttVersion,
) -> Result<(Mqtt, Poller), ClientError> {
    Ok(match version {
        MqttVersion::V5 => {
            let (c, l) = rumqttc::v5::AsyncClient::new(options5(id, o)?, 1024);
            (Mqtt::V5(c), Poller::V5(Box::new(l)))
        }
        MqttVersion::V311 => {
            let (c, mut l) = rumqttc::AsyncClient::new(options4(id, o)?, 1024);
            let mut net = l.network_options();
            net.set_tcp_nodelay(true);
            net.set_connection_timeout(5);
            l.set_network_options(net);
            (Mqtt::V311(c), Poller::V311(Box::new(l)))
        }
    })
}

fn transport(o: &TcpOptions) -> Result<Option<rumqttc::Transport>, ClientError> {
    Ok(match &o.tls {
        Some(t) => Some(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(t.client_config()?),
        )),
        None => None,
    })
}

fn keep_alive(o: &TcpOptions) -> std::time::Duration {
    o.keep_alive.max(std::time::Duration::from_secs(5))
}

fn options5(id: &str, o: &TcpOptions) -> Result<rumqttc::v5::MqttOptions, ClientError> {
    let mut m = rumqttc::v5::MqttOptions::new(id, o.host.clone(), o.port);
    m.set_keep_alive(keep_alive(o));
    m.set_clean_start(true);
    m.set_max_packet_size(Some(16 * 1024 * 1024));
    // rumqttc preallocates a slot per possible in-flight publish: 65,536 of them
    // (13 MB per client) unless capped. Brokers allow far fewer (hcore 100,
    // mosquitto 20 by default), and the smaller limit is used.
    m.set_outgoing_inflight_upper_limit(MAX_INFLIGHT);
    if let Some(u) = &o.username {
        m.set_credentials(u.clone(), o.password.clone().unwrap_or_default());
    }
    if let Some(t) = transport(o)? {
        m.set_transport(t);
    }
    let mut net = m.network_options();
    net.set_tcp_nodelay(true);
    net.set_connection_timeout(5);
    m.set_network_options(net);
    Ok(m)
}

fn options4(id: &str, o: &TcpOptions) -> Result<rumqttc::MqttOptions, ClientError> {
    let mut m = rumqttc::MqttOptions::new(id, o.host.clone(), o.port);
    m.set_keep_alive(keep_alive(o));
    m.set_clean_session(true);
    m.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    if let Some(u) = &o.username {
        m.set_credentials(u.clone(), o.password.clone().unwrap_or_default());
    }
    if let Some(t) = transport(o)? {
        m.set_transport(t);
    }
    Ok(m)
}

impl Mqtt {
    pub async fn publish(&self, out: Outgoing) -> Result<(), ClientError> {
        match self {
            Mqtt::V5(c) => {
                let (qos, t, r, p) = (qos5(out.qos), out.topic, out.retain, out.payload);
                match out.correlation {
                    Some(c2) => {
                        let props = p5::PublishProperties {
                            correlation_data: Some(c2),
                            ..Default::default()
                        };
                        c.publish_with_properties(t, qos, r, p, props).await
                    }
                    None => c.publish(t, qos, r, p).await,
                }
                .map_err(transport_error)
            }
            Mqtt::V311(c) => c
                .publish(out.topic, qos4(out.qos), out.retain, out.payload)
                .await
                .map_err(transport_error),
        }
    }

    pub fn try_publish(&self, out: Outgoing) -> Result<(), Outgoing> {
        let (topic, payload) = (out.topic.clone(), out.payload.clone());
        let sent = match self {
            Mqtt::V5(c) => {
                let props = p5::PublishProperties {
                    correlation_data: out.correlation.clone(),
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, qos5(out.qos), out.retain, payload, props)
                    .is_ok()
            }
            Mqtt::V311(c) => c
                .try_publish(topic, qos4(out.qos), out.retain, payload)
                .is_ok(),
        };
        if sent {
            Ok(())
        } else {
            Err(out)
        }
    }

    pub async fn subscribe(&self, filter: &str, q: u8) -> Result<(), ClientError> {
        match self {
            Mqtt::V5(c) => c.subscribe(filter, qos5(q)).await.map_err(transport_error),
            Mqtt::V311(c) => c
                .subscribe(filter, qos4(V311_SUBSCRIBE_QOS))
                .await
                .map_err(transport_error),
        }
    }

    pub async fn unsubscribe(&self, filter: &str) -> Result<(), ClientError> {
        match self {
            Mqtt::V5(c) => c.unsubscribe(filter).await.map_err(transport_error),
            Mqtt::V311(c) => c.unsubscribe(filter).await.map_err(transport_error),
        }
    }

    pub async fn disconnect(&self) -> Result<(), ClientError> {
        match self {
            Mqtt::V5(c) => c.disconnect().await.map_err(transport_error),
            Mqtt::V311(c) => c.disconnect().await.map_err(transport_error),
        }
    }
}

impl Poller {
    /// The next thing that happened; an error ends the current connection (the next
    /// poll reconnects).
    pub async fn poll(&mut self) -> Result<Polled, String> {
        match self {
            Poller::V5(l) => match l.poll().await.map_err(|e| e.to_string())? {
                rumqttc::v5::Event::Incoming(p5::Packet::Publish(p)) => {
                    Ok(Polled::Message(message5(p)))
                }
                rumqttc::v5::Event::Incoming(p5::Packet::ConnAck(_)) => Ok(Polled::ConnAck),
                rumqttc::v5::Event::Incoming(p5::Packet::SubAck(ack)) => Ok(Polled::SubAck(
                    ack.return_codes
                        .iter()
                        .find(|c| !matches!(c, p5::SubscribeReasonCode::Success(_)))
                        .map(|c| format!("{c:?}")),
                )),
                _ => Ok(Polled::Other),
            },
            Poller::V311(l) => match l.poll().await.map_err(|e| e.to_string())? {
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                    Ok(Polled::Message(Message {
                        topic: p.topic,
                        payload: p.payload,
                        retain: p.retain,
                        response_topic: None,
                        correlation: None,
                        user_properties: Vec::new(),
                    }))
                }
                rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) => Ok(Polled::ConnAck),
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(ack)) => Ok(Polled::SubAck(
                    ack.return_codes
                        .iter()
                        .find(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                        .map(|c| format!("{c:?}")),
                )),
                _ => Ok(Polled::Other),
            },
        }
    }

    /// The will for the next connection: retained `payload` on `topic`, QoS 1.
    /// Points the event loop at another broker (a cluster's next node) for its next
    /// connect; the will is set again by the caller.
    pub fn retarget(&mut self, id: &str, o: &TcpOptions) -> Result<(), ClientError> {
        match self {
            Poller::V5(l) => l.options = options5(id, o)?,
            Poller::V311(l) => l.mqtt_options = options4(id, o)?,
        }
        Ok(())
    }

    pub fn set_will(&mut self, topic: &str, payload: Bytes) {
        match self {
            Poller::V5(l) => {
                let will = p5::LastWill::new(topic, payload, qos5(1), true, None);
                l.options.set_last_will(will);
            }
            Poller::V311(l) => {
                let will = rumqttc::LastWill::new(topic, payload.to_vec(), qos4(1), true);
                l.mqtt_options.set_last_will(will);
            }
        }
    }
}

fn qos5(q: u8) -> rumqttc::v5::mqttbytes::QoS {
    use rumqttc::v5::mqttbytes::QoS;
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

fn qos4(q: u8) -> rumqttc::QoS {
    match q {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        _ => rumqttc::QoS::ExactlyOnce,
    }
}

fn message5(p: p5::Publish) -> Message {
    let (response_topic, correlation, user_properties) = match p.properties {
        Some(props) => (
            props.response_topic,
            props.correlation_data,
            props.user_properties,
        ),
        None => (None, None, Vec::new()),
    };
    Message {
        topic: String::from_utf8_lossy(&p.topic).into_owned(),
        payload: p.payload,
        retain: p.retain,
        response_topic,
        correlation,
        user_properties,
    }
}
