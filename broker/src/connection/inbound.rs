//! Packets from the client: framing, decoding, validation, authorization, and routing,
//! all on the connection's own task, one socket read at a time. The outboxes a read's
//! publishes were delivered to are written once at its end.
//!
//! Anything malformed or against the protocol closes this connection only (with a v5
//! DISCONNECT reason where there is one) and is logged. A PUBLISH refused by the
//! authorization hook is dropped and the connection stays: QoS 1 gets PUBACK 0x87 and QoS
//! 2 PUBREC 0x87 (MQTT 5); MQTT 3.1.1 has no way to say no, so it gets a normal ack.

use bytes::{Bytes, BytesMut};
use rumqttd::protocol::{Packet, Publish, PublishProperties};

use super::conn::{Close, Conn};
use crate::endpoint::Touched;
use crate::hooks::PublishInfo;
use crate::metrics::Metrics;
use crate::router::publication::Publication;
use crate::topic::validate_topic;
use crate::types::{Message, Properties, Protocol, QoS};
use crate::wire::decode::{self, publish_qos_pkid};
use crate::wire::encode::{self, reason, AckKind};
use crate::wire::frame::{self, packet_type, FixedHeader, FrameError};

impl Conn {
    /// Handles every complete packet in `buf`; the outboxes delivered to are in `touched`.
    pub(super) fn on_readable(
        &mut self,
        buf: &mut BytesMut,
        touched: &mut Touched,
    ) -> Result<(), Close> {
        loop {
            let header = match frame::parse_header(buf, self.st.config.max_packet_size) {
                Ok(Some(h)) if buf.len() >= h.frame_len() => h,
                Ok(_) => return Ok(()),
                Err(e @ FrameError::TooLarge { .. }) => {
                    return Err(Close::violation(reason::PACKET_TOO_LARGE, e.to_string()))
                }
                Err(e) => return Err(Close::violation(reason::MALFORMED_PACKET, e.to_string())),
            };
            self.on_frame(buf, &header, touched)?;
        }
    }

    fn on_frame(
        &mut self,
        buf: &mut BytesMut,
        header: &FixedHeader,
        touched: &mut Touched,
    ) -> Result<(), Close> {
        if let Err(e) = frame::check_client_packet(header) {
            let code = if header.packet_type() == packet_type::CONNECT {
                reason::PROTOCOL_ERROR
            } else {
                reason::MALFORMED_PACKET
            };
            return Err(Close::violation(code, e));
        }
        match header.packet_type() {
            packet_type::CONNECT => {
                return Err(Close::violation(reason::PROTOCOL_ERROR, "second CONNECT"))
            }
            // Read by the edge: the codec refuses an MQTT 5 DISCONNECT that has a reason
            // code but no properties (`e0 01 04`, as mosquitto_rr sends), which is valid.
            packet_type::DISCONNECT => {
                let frame = buf.split_to(header.frame_len());
                let code = frame.get(header.header_len).copied().unwrap_or(0);
                return Err(match code {
                    reason::DISCONNECT_WITH_WILL => Close::WithWill,
                    _ => Close::Clean,
                });
            }
            _ => {}
        }
        let (qos, pkid) = if header.packet_type() == packet_type::PUBLISH {
            publish_qos_pkid(buf, header)
        } else {
            (QoS::AtMostOnce, 0)
        };
        let frame = buf.split_to(header.frame_len());
        let packet = decode::decode(self.proto, frame)
            .map_err(|e| Close::violation(reason::MALFORMED_PACKET, e.0))?;
        self.on_packet(packet, qos, pkid, touched)
    }

    fn on_packet(
        &mut self,
        packet: Packet,
        qos: QoS,
        pkid: u16,
        touched: &mut Touched,
    ) -> Result<(), Close> {
        match packet {
            Packet::Publish(publish, props) => self.on_publish(publish, props, qos, pkid, touched),
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
                let known = self.qos2_in.remove(&rel.pkid);
                let code = if known || self.proto != Protocol::V5 {
                    reason::SUCCESS
                } else {
                    reason::PACKET_ID_NOT_FOUND
                };
                let proto = self.proto;
                self.outbox
                    .control(|b| encode::ack(proto, AckKind::PubComp, rel.pkid, code, b));
                Ok(())
            }
            Packet::Subscribe(sub, props) => self.on_subscribe(sub, props, touched),
            Packet::Unsubscribe(unsub, _) => {
                self.on_unsubscribe(unsub);
                Ok(())
            }
            Packet::PingReq(_) => {
                self.outbox.control(encode::pingresp);
                Ok(())
            }
            other => Err(Close::violation(
                reason::PROTOCOL_ERROR,
                format!("unexpected packet from a client: {other:?}"),
            )),
        }
    }

    /// The client acknowledged a QoS 1/2 message.
    fn client_ack(&mut self, kind: AckKind, pkid: u16) {
        if !self.outbox.on_ack(kind, pkid) {
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
        touched: &mut Touched,
    ) -> Result<(), Close> {
        Metrics::inc(&self.st.metrics.publishes_received);
        if let Some(alias) = props.as_mut().and_then(|p| p.topic_alias.take()) {
            self.resolve_alias(&mut publish, alias)?;
        }
        let topic = std::str::from_utf8(&publish.topic)
            .map_err(|_| {
                Close::violation(
                    reason::TOPIC_NAME_INVALID,
                    "PUBLISH topic is not valid UTF-8",
                )
            })?
            .to_string();
        if let Err(e) = validate_topic(&topic, &self.st.config) {
            return Err(Close::violation(
                reason::TOPIC_NAME_INVALID,
                format!("PUBLISH to {:.100}: {e}", topic),
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
        if qos == QoS::ExactlyOnce && self.qos2_in.contains(&pkid) {
            // A re-sent QoS 2 publish not yet released: acknowledged, not delivered again.
            return self.ack_publish(qos, pkid, reason::SUCCESS);
        }
        if qos == QoS::ExactlyOnce
            && self.qos2_in.len() >= usize::from(self.st.config.receive_maximum)
        {
            return Err(Close::violation(
                reason::RECEIVE_MAXIMUM_EXCEEDED,
                "more QoS 2 publishes in flight than the receive maximum",
            ));
        }
        let wanted = PublishInfo {
            topic: &topic,
            payload: &publish.payload,
            correlation: props.as_ref().and_then(|p| p.correlation_data.as_deref()),
            retain: publish.retain,
        };
        if !self.st.may_publish(&self.info, &wanted) {
            self.refuse_publish(&topic, qos, pkid);
            return Ok(());
        }
        self.st.stamp(&self.info, &topic, &mut props);
        let properties = props
            .map(Properties::from_publish)
            .filter(|p| !p.is_empty());
        let message = Message {
            topic,
            payload: publish.payload,
            qos,
            retain: publish.retain,
            properties,
        };
        let routed = self.st.publish(
            Publication::new(message, self.session.id),
            &self.info.client_id,
            touched,
        );
        let code = match routed {
            Err(_) if self.proto == Protocol::V5 => reason::QUOTA_EXCEEDED,
            Ok(0) if self.proto == Protocol::V5 => reason::NO_MATCHING_SUBSCRIBERS,
            _ => reason::SUCCESS,
        };
        if qos == QoS::ExactlyOnce {
            self.qos2_in.insert(pkid);
        }
        self.ack_publish(qos, pkid, code)
    }

    fn ack_publish(&self, qos: QoS, pkid: u16, code: u8) -> Result<(), Close> {
        let proto = self.proto;
        let kind = match qos {
            QoS::AtMostOnce => return Ok(()),
            QoS::AtLeastOnce => AckKind::PubAck,
            QoS::ExactlyOnce => AckKind::PubRec,
        };
        self.outbox
            .control(|b| encode::ack(proto, kind, pkid, code, b));
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
        let code = if self.proto == Protocol::V5 {
            reason::NOT_AUTHORIZED
        } else {
            reason::SUCCESS
        };
        if qos == QoS::ExactlyOnce {
            // Its PUBREL is answered like any other.
            self.qos2_in.insert(pkid);
        }
        let _ = self.ack_publish(qos, pkid, code);
    }
}
