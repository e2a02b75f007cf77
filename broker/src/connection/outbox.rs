//! Everything a network connection sends, queued as encoded bytes.
//!
//! The connection's task drains the router as fast as it can and encodes into the outbox,
//! then writes whatever has accumulated with one non-blocking syscall; what the socket does
//! not take waits for it to become writable. So a slow reader never stalls the router: once more than `max_queued_bytes` wait, QoS 0
//! messages are dropped and counted (`dropped_slow_subscriber`). QoS 1/2 messages are the
//! edge's own: it allocates packet ids, keeps at most `max_inflight` unacknowledged, queues
//! up to `max_queued_messages` more, and drops (counted) beyond that.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use rumqttd::protocol::{v4::V4, v5::V5, Packet, Protocol as Codec, Publish, PublishProperties};
use tokio::net::tcp::OwnedWriteHalf;

use crate::metrics::Metrics;
use crate::types::{Properties, Protocol, QoS};
use crate::wire::encode::{self, AckKind, OutPublish};

/// A QoS 1/2 subscriber that acknowledged something this recently counts as keeping up.
const ACTIVE_ACK_WINDOW: Duration = Duration::from_secs(1);

/// A message the edge delivers with its own packet id (or at QoS 0 with its own encoder).
#[derive(Debug, Clone)]
pub(crate) struct EdgeMsg {
    pub topic: Bytes,
    pub payload: Bytes,
    pub properties: Option<Properties>,
    pub qos: QoS,
    pub retain: bool,
    /// Remaining message expiry (seconds) for a stored message.
    pub expiry: Option<u32>,
    pub subscription_ids: Vec<usize>,
}

impl EdgeMsg {
    /// A message forwarded by the router, delivered at `qos`.
    pub fn from_forward(
        publish: Publish,
        properties: Option<PublishProperties>,
        qos: QoS,
    ) -> EdgeMsg {
        let (properties, subscription_ids) = match properties {
            Some(mut p) => {
                let ids = std::mem::take(&mut p.subscription_identifiers);
                let props = Properties::from_publish(p);
                ((!props.is_empty()).then_some(props), ids)
            }
            None => (None, Vec::new()),
        };
        EdgeMsg {
            topic: publish.topic,
            payload: publish.payload,
            properties,
            qos,
            retain: false,
            expiry: None,
            subscription_ids,
        }
    }
}

struct InflightMsg {
    waiting_for: AckKind,
    msg: EdgeMsg,
}

struct Inner {
    buf: BytesMut,
    dropped: u64,
    next_pkid: u16,
    inflight: HashMap<u16, InflightMsg>,
    waiting: VecDeque<EdgeMsg>,
    last_ack: Option<Instant>,
}

/// Limits of one outbox.
pub(crate) struct Limits {
    pub max_bytes: usize,
    pub window: usize,
    pub max_messages: usize,
    /// The client's Maximum Packet Size (MQTT 5), or usize::MAX.
    pub max_packet: usize,
}

pub(crate) struct Outbox {
    proto: Protocol,
    limits: Limits,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
}

impl Outbox {
    pub fn new(proto: Protocol, limits: Limits, metrics: Arc<Metrics>) -> Outbox {
        Outbox {
            proto,
            limits: Limits {
                window: limits.window.max(1),
                ..limits
            },
            metrics,
            inner: Mutex::new(Inner {
                buf: BytesMut::with_capacity(4096),
                dropped: 0,
                next_pkid: 1,
                inflight: HashMap::new(),
                waiting: VecDeque::new(),
                last_ack: None,
            }),
        }
    }

    pub fn lock(&self) -> OutboxGuard<'_> {
        OutboxGuard {
            outbox: self,
            inner: self.inner.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Writes as much of the queue as the socket takes without blocking. Returns true
    /// when everything queued has been written.
    pub fn flush(&self, socket: &OwnedWriteHalf) -> std::io::Result<bool> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while !inner.buf.is_empty() {
            match socket.try_write(&inner.buf) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => inner.buf.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Messages dropped for this connection so far.
    pub fn dropped(&self) -> u64 {
        self.lock().inner.dropped
    }

    /// QoS 1/2 messages not yet acknowledged (in flight first), for a persistent session.
    pub fn take_unacknowledged(&self) -> Vec<EdgeMsg> {
        let mut g = self.lock();
        let mut inflight: Vec<(u16, InflightMsg)> = g.inner.inflight.drain().collect();
        inflight.sort_by_key(|(pkid, _)| *pkid);
        let mut out: Vec<EdgeMsg> = inflight.into_iter().map(|(_, m)| m.msg).collect();
        out.extend(g.inner.waiting.drain(..));
        out
    }
}

/// Exclusive access to the outbox. Only the connection's own task writes to it, and it
/// flushes after each piece of work.
pub(crate) struct OutboxGuard<'a> {
    outbox: &'a Outbox,
    inner: MutexGuard<'a, Inner>,
}

impl OutboxGuard<'_> {
    /// Appends a control packet (ack, SUBACK, ...); never dropped.
    pub fn control(&mut self, encode: impl FnOnce(&mut BytesMut)) {
        encode(&mut self.inner.buf);
    }

    /// Appends a QoS 0 PUBLISH forwarded by the router, encoded by rumqttd's codec without
    /// copying it into a message first. Returns false if it was dropped.
    pub fn forward_qos0(
        &mut self,
        publish: Publish,
        properties: Option<PublishProperties>,
    ) -> bool {
        let start = self.inner.buf.len();
        if start >= self.outbox.limits.max_bytes {
            self.count_drop();
            return false;
        }
        let encoded = match self.outbox.proto {
            Protocol::V5 => V5.write(Packet::Publish(publish, properties), &mut self.inner.buf),
            _ => V4.write(Packet::Publish(publish, None), &mut self.inner.buf),
        };
        if let Err(e) = encoded {
            self.inner.buf.truncate(start);
            tracing::warn!(error = %e, "cannot encode forwarded publish; skipped");
            return false;
        }
        self.accept_publish(start)
    }

    /// Delivers a message with the edge's encoder, queueing QoS 1/2 beyond the window.
    pub fn deliver(&mut self, msg: EdgeMsg) -> bool {
        if msg.qos == QoS::AtMostOnce {
            if self.inner.buf.len() >= self.outbox.limits.max_bytes {
                self.count_drop();
                return false;
            }
            return self.write(&msg, 0, false);
        }
        if self.inner.inflight.len() >= self.outbox.limits.window || !self.inner.waiting.is_empty()
        {
            if self.inner.waiting.len() >= self.outbox.limits.max_messages {
                self.count_drop();
                return false;
            }
            self.inner.waiting.push_back(msg);
            return true;
        }
        self.send_with_pkid(msg, false)
    }

    /// Re-sends messages of a resumed persistent session (PUBLISH with DUP set).
    pub fn resend(&mut self, msgs: Vec<EdgeMsg>) {
        for msg in msgs {
            if self.inner.inflight.len() < self.outbox.limits.window {
                self.send_with_pkid(msg, true);
            } else {
                self.inner.waiting.push_back(msg);
            }
        }
    }

    /// Handles the client's PUBACK / PUBREC / PUBCOMP; returns false for an unknown id.
    pub fn on_ack(&mut self, kind: AckKind, pkid: u16) -> bool {
        let Some(waiting_for) = self.inner.inflight.get(&pkid).map(|m| m.waiting_for) else {
            return false;
        };
        if waiting_for != kind {
            return false;
        }
        self.inner.last_ack = Some(Instant::now());
        match kind {
            AckKind::PubRec => {
                if let Some(m) = self.inner.inflight.get_mut(&pkid) {
                    m.waiting_for = AckKind::PubComp;
                }
                let proto = self.outbox.proto;
                self.control(|b| encode::ack(proto, AckKind::PubRel, pkid, 0, b));
            }
            _ => {
                self.inner.inflight.remove(&pkid);
                self.pump();
            }
        }
        true
    }

    /// Is this subscriber acknowledging steadily but falling behind (flow control)?
    pub fn lagging(&self) -> bool {
        self.inner.waiting.len() > self.outbox.limits.max_messages / 2
            && self
                .inner
                .last_ack
                .is_some_and(|t| t.elapsed() < ACTIVE_ACK_WINDOW)
    }

    fn pump(&mut self) {
        while self.inner.inflight.len() < self.outbox.limits.window {
            let Some(msg) = self.inner.waiting.pop_front() else {
                break;
            };
            self.send_with_pkid(msg, false);
        }
    }

    fn send_with_pkid(&mut self, msg: EdgeMsg, dup: bool) -> bool {
        let pkid = self.alloc_pkid();
        if !self.write(&msg, pkid, dup) {
            return false;
        }
        let waiting_for = if msg.qos == QoS::AtLeastOnce {
            AckKind::PubAck
        } else {
            AckKind::PubRec
        };
        self.inner
            .inflight
            .insert(pkid, InflightMsg { waiting_for, msg });
        true
    }

    fn write(&mut self, msg: &EdgeMsg, pkid: u16, dup: bool) -> bool {
        let start = self.inner.buf.len();
        let out = OutPublish {
            topic: &msg.topic,
            payload: &msg.payload,
            qos: msg.qos,
            retain: msg.retain,
            dup,
            pkid,
            properties: msg.properties.as_ref(),
            expiry_override: msg.expiry,
            subscription_ids: &msg.subscription_ids,
        };
        encode::publish(self.outbox.proto, &out, &mut self.inner.buf);
        self.accept_publish(start)
    }

    /// Keeps the PUBLISH just encoded from `start`, unless it is larger than the client's
    /// Maximum Packet Size (MQTT 5 says drop it; counted).
    fn accept_publish(&mut self, start: usize) -> bool {
        if self.inner.buf.len() - start > self.outbox.limits.max_packet {
            self.inner.buf.truncate(start);
            self.count_drop();
            return false;
        }
        Metrics::inc(&self.outbox.metrics.publishes_sent);
        true
    }

    fn alloc_pkid(&mut self) -> u16 {
        loop {
            let pkid = self.inner.next_pkid;
            self.inner.next_pkid = pkid.checked_add(1).unwrap_or(1);
            if !self.inner.inflight.contains_key(&pkid) {
                return pkid;
            }
        }
    }

    fn count_drop(&mut self) {
        self.inner.dropped += 1;
        Metrics::inc(&self.outbox.metrics.dropped_slow_subscriber);
        let n = self.inner.dropped;
        if n == 1 || n % 10_000 == 0 {
            tracing::warn!(
                dropped = n,
                queued_bytes = self.inner.buf.len(),
                queued_messages = self.inner.waiting.len(),
                "subscriber is not keeping up; dropping messages"
            );
        }
    }
}
