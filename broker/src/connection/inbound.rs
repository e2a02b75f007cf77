//! Packets from the client: framing, decoding, validation, authorization, and the hand-off
//! to the router as one batch per socket read.
//!
//! Anything malformed or against the protocol closes this connection only (with a v5
//! DISCONNECT reason where there is one) and is logged. A PUBLISH refused by the
//! authorization hook is dropped and the connection stays: QoS 1 gets PUBACK 0x87 and QoS
//! 2 PUBREC 0x87 (MQTT 5); MQTT 3.1.1 has no way to say no, so it gets a normal ack.

use bytes::{Bytes, BytesMut};
use rumqttd::protocol::{Packet, PubRel, Publish, PublishProperties};

use super::conn::{Close, Conn};
use crate::metrics::Metrics;
use crate::state::{Effect, Item};
use crate::topic::validate_topic;
use crate::types::{Message, Properties, Protocol, QoS};
use crate::wire::decode::{self, publish_qos_pkid};
use crate::wire::encode::{self, reason, AckKind};
use crate::wire::frame::{self, packet_type, FrameError};

impl Conn {
    /// Handles every complete packet in `buf`.
    pub(super) async fn on_readable(&mut self, buf: &mut BytesMut) -> Result<(), Close> {
        let mut items = Vec::new();
        let mut targets = Vec::new();
        let mut result = Ok(());
        loop {
            let header = match frame::parse_header(buf, self.st.config.max_packet_size) {
                Ok(Some(h)) if buf.len() >= h.frame_len() => h,
                Ok(_) => break,
                Err(e @ FrameError::TooLarge { .. }) => {
                    result = Err(Close::violation(reason::PACKET_TOO_LARGE, e.to_string()));
                    break;
                }
                Err(e) => {
                    result = Err(Close::violation(reason::MALFORMED_PACKET, e.to_string()));
                    break;
                }
            };
            if let Err(e) = frame::check_client_packet(&header) {
                let code = if header.packet_type() == packet_type::CONNECT {
                    reason::PROTOCOL_ERROR
                } else {
                    reason::MALFORMED_PACKET
                };
                result = Err(Close::violation(code, e));
                break;
            }
            if header.packet_type() == packet_type::CONNECT {
                result = Err(Close::violation(reason::PROTOCOL_ERROR, "second CONNECT"));
                break;
            }
            let (qos, pkid) = if header.packet_type() == packet_type::PUBLISH {
                publish_qos_pkid(buf, &header)
            } else {
                (QoS::AtMostOnce, 0)
            };
            let frame = buf.split_to(header.frame_len());
            let packet = match decode::decode(self.proto, frame) {
                Ok(p) => p,
                Err(e) => {
                    result = Err(Close::violation(reason::MALFORMED_PACKET, e.0));
                    break;
                }
            };
            if let Err(close) = self.on_packet(packet, qos, pkid, &mut items, &mut targets) {
                result = Err(close);
                break;
            }
        }
        // Packets before a bad one still count: hand them over first.
        if !items.is_empty() && self.router_alive {
            match self
                .st
                .submit(&mut self.tx, items, self.pressure.is_on())
                .await
            {
                Ok(snapshots) => self.attach_snapshots(targets, snapshots),
                Err(e) => {
                    tracing::warn!(error = %e, "router link failed");
                    self.router_alive = false;
                    return Err(Close::RouterGone);
                }
            }
        }
        result
    }

    fn on_packet(
        &mut self,
        packet: Packet,
        qos: QoS,
        pkid: u16,
        items: &mut Vec<Item>,
        targets: &mut Vec<super::suback::SnapshotTarget>,
    ) -> Result<(), Close> {
        match packet {
            Packet::Publish(publish, props) => self.on_publish(publish, props, qos, pkid, items),
            Packet::PubAck(ack, _) => {
                self.client_ack(AckKind::PubAck, ack.pkid);
                Ok(())
            }
            Packet::PubRec(ack, _) => {
                self.client_ack(AckKind::PubRec, ack.pkid);
                Ok(())
            }
            Packet::PubComp(ack, _) => {
                self.client_ack(AckKind::PubComp, ack.pkid);
                Ok(())
            }
            Packet::PubRel(rel, _) => {
                if self.refused_qos2.remove(&rel.pkid) {
                    let proto = self.proto;
                    self.outbox
                        .lock()
                        .control(|b| encode::ack(proto, AckKind::PubComp, rel.pkid, 0, b));
                } else {
                    // rumqttd ignores a PUBREL that carries properties: strip them.
                    let rel = PubRel {
                        pkid: rel.pkid,
                        reason: rel.reason,
                    };
                    items.push(Item::plain(Packet::PubRel(rel, None)));
                }
                Ok(())
            }
            Packet::Subscribe(sub, props) => self.on_subscribe(sub, props, items, targets),
            Packet::Unsubscribe(unsub, _) => {
                self.on_unsubscribe(unsub, items);
                Ok(())
            }
            Packet::PingReq(_) => {
                self.outbox.lock().control(encode::pingresp);
                Ok(())
            }
            Packet::Disconnect(d, _) => {
                use rumqttd::protocol::DisconnectReasonCode as D;
                Err(match d.reason_code {
                    D::DisconnectWithWillMessage => Close::WithWill,
                    _ => Close::Clean,
                })
            }
            other => Err(Close::violation(
                reason::PROTOCOL_ERROR,
                format!("unexpected packet from a client: {other:?}"),
            )),
        }
    }

    /// The client acknowledged a QoS 1/2 message (all of them are the edge's).
    fn client_ack(&mut self, kind: AckKind, pkid: u16) {
        if !self.outbox.lock().on_ack(kind, pkid) {
            tracing::debug!(
                pkid,
                ?kind,
                "acknowledgement for an unknown packet id ignored"
            );
        }
    }

    fn on_publish(
        &mut self,
        mut publish: Publish,
        mut props: Option<PublishProperties>,
        qos: QoS,
        pkid: u16,
        items: &mut Vec<Item>,
    ) -> Result<(), Close> {
        Metrics::inc(&self.st.metrics.publishes_received);
        if let Some(alias) = props.as_mut().and_then(|p| p.topic_alias.take()) {
            self.resolve_alias(&mut publish, alias)?;
        }
        let topic = match std::str::from_utf8(&publish.topic) {
            Ok(t) => t.to_string(),
            Err(_) => {
                return Err(Close::violation(
                    reason::TOPIC_NAME_INVALID,
                    "PUBLISH topic is not valid UTF-8",
                ))
            }
        };
        if let Err(e) = validate_topic(&topic) {
            return Err(Close::violation(
                reason::TOPIC_NAME_INVALID,
                format!("PUBLISH to {topic:?}: {e}"),
            ));
        }
        if props
            .as_ref()
            .is_some_and(|p| !p.subscription_identifiers.is_empty())
        {
            return Err(Close::violation(
                reason::PROTOCOL_ERROR,
                "PUBLISH from a client carries a subscription identifier",
            ));
        }
        if topic.starts_with('$') || !self.st.hooks.authorize_publish(&self.info, &topic) {
            self.refuse_publish(&topic, qos, pkid);
            return Ok(());
        }
        self.st.stamp(&self.info, &topic, &mut props);
        let props = props.filter(|p| *p != PublishProperties::default());
        let effect = if publish.retain {
            publish.retain = false;
            Effect::Retain(Message {
                topic,
                payload: publish.payload.clone(),
                qos,
                retain: true,
                properties: props.clone().map(Properties::from_publish),
            })
        } else {
            Effect::None
        };
        items.push(Item {
            packet: Packet::Publish(publish, props),
            effect,
        });
        Ok(())
    }

    fn resolve_alias(&mut self, publish: &mut Publish, alias: u16) -> Result<(), Close> {
        if alias == 0 || alias > self.st.config.topic_alias_maximum {
            return Err(Close::violation(
                reason::TOPIC_ALIAS_INVALID,
                format!(
                    "topic alias {alias} outside 1..={}",
                    self.st.config.topic_alias_maximum
                ),
            ));
        }
        if publish.topic.is_empty() {
            let Some(topic) = self.aliases.get(&alias) else {
                return Err(Close::violation(
                    reason::PROTOCOL_ERROR,
                    format!("unknown topic alias {alias}"),
                ));
            };
            publish.topic = Bytes::from(topic.clone());
        } else {
            let topic = String::from_utf8_lossy(&publish.topic).into_owned();
            self.aliases.insert(alias, topic);
        }
        Ok(())
    }

    fn refuse_publish(&mut self, topic: &str, qos: QoS, pkid: u16) {
        Metrics::inc(&self.st.metrics.not_authorized);
        if !self.refused_logged {
            tracing::info!(
                topic,
                "publish not authorized; dropped (further refusals logged at debug)"
            );
            self.refused_logged = true;
        } else {
            tracing::debug!(topic, "publish not authorized; dropped");
        }
        let proto = self.proto;
        let code = if proto == Protocol::V5 {
            reason::NOT_AUTHORIZED
        } else {
            reason::SUCCESS
        };
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self
                .outbox
                .lock()
                .control(|b| encode::ack(proto, AckKind::PubAck, pkid, code, b)),
            QoS::ExactlyOnce => {
                if proto != Protocol::V5 {
                    self.refused_qos2.insert(pkid);
                }
                self.outbox
                    .lock()
                    .control(|b| encode::ack(proto, AckKind::PubRec, pkid, code, b));
            }
        }
    }
}
