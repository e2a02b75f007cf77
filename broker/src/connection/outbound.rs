//! Notifications from the router to a network client: forwarded publishes, the router's
//! acknowledgements, and its flow control.
//!
//! The connection drains everything the router has buffered in one go and encodes it into
//! the outbox under one lock. When the router signals `Unschedule` (its 200-slot buffer for
//! this link filled), the connection wakes it again right after draining: the outbox, not
//! the router's log, absorbs a slow reader.

use rumqttd::local::LinkRx;
use rumqttd::protocol::Packet;
use rumqttd::Notification;

use super::session::{Close, Conn};
use crate::metrics::Metrics;
use crate::router::{notification_packet, try_next};
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
        let mut wake = false;
        let mut result = Ok(());
        {
            let outbox = self.outbox.clone();
            let mut out = outbox.lock();
            for n in batch {
                match n {
                    Notification::Forward(f) => {
                        if let Some((_, offset)) = f.cursor {
                            let lost = self.gaps.observe(&f.publish.topic, offset);
                            if lost > 0 {
                                Metrics::add(&self.st.metrics.dropped_router_lag, lost);
                                tracing::warn!(
                                    lost,
                                    "subscriber fell behind the router's log; messages lost"
                                );
                            }
                        }
                        out.forward(f.publish, f.properties);
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
        }
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

    fn on_router_packet(
        &mut self,
        out: &mut super::outbox::OutboxGuard<'_>,
        packet: Packet,
    ) -> Result<(), Close> {
        let proto = self.proto;
        match packet {
            Packet::PubAck(a, _) => {
                out.control(|b| encode::ack(proto, AckKind::PubAck, a.pkid, reason::SUCCESS, b))
            }
            Packet::PubRec(a, _) => {
                out.control(|b| encode::ack(proto, AckKind::PubRec, a.pkid, reason::SUCCESS, b))
            }
            Packet::PubRel(a, _) => {
                out.control(|b| encode::ack(proto, AckKind::PubRel, a.pkid, reason::SUCCESS, b))
            }
            Packet::PubComp(a, _) => {
                out.control(|b| encode::ack(proto, AckKind::PubComp, a.pkid, reason::SUCCESS, b))
            }
            Packet::SubAck(ack, _) => self.on_router_suback(out, ack.pkid, &ack.return_codes),
            Packet::UnsubAck(..) => {
                self.swallow_unsubacks = self.swallow_unsubacks.saturating_sub(1);
            }
            Packet::Disconnect(d, _) => {
                self.router_alive = false;
                return Err(Close::violation(
                    reason::UNSPECIFIED_ERROR,
                    format!("router disconnected the client: {:?}", d.reason_code),
                ));
            }
            Packet::PingResp(_) | Packet::ConnAck(..) => {}
            other => tracing::debug!(packet = ?other, "unexpected packet from the router ignored"),
        }
        Ok(())
    }
}
