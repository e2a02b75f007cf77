//! Notifications from the router to a network client: forwarded publishes, the router's
//! acknowledgements of the client's own publishes, and its flow control.
//!
//! The connection drains everything the router has buffered in one go and encodes it into
//! the outbox under one lock. Every router subscription is QoS 0; the matching client
//! subscription decides the delivery QoS, and QoS 1/2 go through the edge's own in-flight
//! window. When the router signals `Unschedule` (its 200-slot buffer for this link filled)
//! the connection wakes it right after draining, and raises its pressure flag: the router
//! had a backlog for it, so publishers should give it time.

use rumqttd::local::LinkRx;
use rumqttd::protocol::Packet;
use rumqttd::Notification;

use super::conn::{Close, Conn};
use super::outbox::EdgeMsg;
use crate::metrics::Metrics;
use crate::router::{notification_packet, try_next};
use crate::types::QoS;
use crate::wire::encode::{self, reason, AckKind};

/// Most notifications handled per wake-up before the loop looks at the socket again.
const DRAIN_BATCH: usize = 2048;

impl Conn {
    pub(super) async fn on_router(
        &mut self,
        first: Notification,
        rx: &mut LinkRx,
    ) -> Result<(), Close> {
        let mut batch = Vec::with_capacity(64);
        batch.push(first);
        let mut gone = false;
        while batch.len() < DRAIN_BATCH {
            match try_next(rx) {
                Some(Ok(Some(n))) => batch.push(n),
                Some(Ok(None)) => continue,
                Some(Err(())) => {
                    gone = true;
                    break;
                }
                None => break,
            }
        }
        let full = batch.len() >= DRAIN_BATCH;
        let mut wake = false;
        let mut result = Ok(());
        let lagging;
        {
            let outbox = self.outbox.clone();
            let mut out = outbox.lock();
            for n in batch {
                match n {
                    Notification::Forward(f) => {
                        // Account for the message's place in the router's log first: one
                        // this client may not see is skipped, not lost.
                        let seen = self
                            .filters
                            .observe(&f.publish.topic, f.cursor.map(|c| c.1));
                        if seen.lost > 0 {
                            Metrics::add(&self.st.metrics.dropped_router_lag, seen.lost);
                            tracing::warn!(
                                lost = seen.lost,
                                "subscriber fell behind the router's log; messages lost"
                            );
                        }
                        if !self.may_deliver(&f.publish.topic) {
                            continue;
                        }
                        self.observe(&f.publish.topic, &f.publish.payload, f.properties.as_ref());
                        if seen.qos == QoS::AtMostOnce {
                            out.forward_qos0(f.publish, f.properties);
                        } else {
                            out.deliver(EdgeMsg::from_forward(f.publish, f.properties, seen.qos));
                        }
                    }
                    Notification::Unschedule => wake = true,
                    other => match notification_packet(other) {
                        Some(packet) => {
                            if let Err(close) = self.on_router_packet(&mut out, packet) {
                                result = Err(close);
                            }
                        }
                        None => wake = true,
                    },
                }
            }
            lagging = out.lagging();
        }
        self.pressure.set(wake || full || lagging);
        if gone {
            self.router_alive = false;
            return Err(Close::RouterGone);
        }
        if wake && rx.wake().await.is_err() {
            self.router_alive = false;
            return Err(Close::RouterGone);
        }
        result
    }

    /// The delivery hook's verdict for this client and topic.
    pub(super) fn may_deliver(&self, topic: &[u8]) -> bool {
        std::str::from_utf8(topic).is_ok_and(|t| self.st.hooks.authorize_delivery(&self.info, t))
    }

    /// Tells the hooks about a delivery.
    fn observe(
        &self,
        topic: &[u8],
        payload: &[u8],
        properties: Option<&rumqttd::protocol::PublishProperties>,
    ) {
        if let Ok(topic) = std::str::from_utf8(topic) {
            let correlation = properties.and_then(|p| p.correlation_data.as_deref());
            self.st
                .hooks
                .observe_delivery(&self.info, topic, payload, correlation);
        }
    }

    fn on_router_packet(
        &mut self,
        out: &mut super::outbox::OutboxGuard<'_>,
        packet: Packet,
    ) -> Result<(), Close> {
        let proto = self.proto;
        match packet {
            // The router's acknowledgements of the client's QoS 1/2 publishes.
            Packet::PubAck(a, _) => {
                out.control(|b| encode::ack(proto, AckKind::PubAck, a.pkid, reason::SUCCESS, b))
            }
            Packet::PubRec(a, _) => {
                out.control(|b| encode::ack(proto, AckKind::PubRec, a.pkid, reason::SUCCESS, b))
            }
            Packet::PubComp(a, _) => {
                out.control(|b| encode::ack(proto, AckKind::PubComp, a.pkid, reason::SUCCESS, b))
            }
            Packet::SubAck(ack, _) => self.on_router_suback(out, ack.pkid, &ack.return_codes),
            Packet::Disconnect(d, _) => {
                self.router_alive = false;
                return Err(Close::violation(
                    reason::UNSPECIFIED_ERROR,
                    format!("router disconnected the client: {:?}", d.reason_code),
                ));
            }
            // UNSUBACKs are answered by the edge itself; the rest never reach a client.
            Packet::UnsubAck(..) | Packet::PingResp(_) | Packet::ConnAck(..) => {}
            other => tracing::debug!(packet = ?other, "unexpected packet from the router ignored"),
        }
        Ok(())
    }
}
