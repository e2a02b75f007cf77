//! Everything a network connection sends, queued as encoded bytes for its writer task.
//!
//! The connection's main task drains the router as fast as it can and encodes into the
//! outbox; a separate writer task writes whatever has accumulated with one syscall. So a
//! slow reader never stalls the router: once more than `max_queued_bytes` wait, QoS 0
//! messages are dropped and counted (`dropped_slow_subscriber`); QoS 1/2 messages are
//! bounded by the in-flight windows instead. Messages the edge itself delivers (retained
//! messages, shared subscriptions) use packet ids above the router's 1..=100 range, so an
//! acknowledgement from the client is routed by its packet id.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;
use rumqttd::protocol::{v4::V4, v5::V5, Packet, Protocol as Codec, Publish, PublishProperties};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::types::{Message, Protocol, QoS};
use crate::wire::encode::{self, AckKind, OutPublish};

/// Packet ids 1..=100 belong to rumqttd's router (its fixed in-flight window).
pub(crate) const EDGE_PKID_FIRST: u16 = 101;

/// A message the edge delivers itself.
#[derive(Debug, Clone)]
pub(crate) struct EdgeMsg {
    pub message: Message,
    pub qos: QoS,
    pub retain: bool,
    pub expiry: Option<u32>,
    pub subscription_ids: Vec<usize>,
}


struct Inner {
    buf: BytesMut,
    closed: bool,
    dropped: u64,
    next_pkid: u16,
    /// Edge packet id -> the acknowledgement it waits for.
    inflight: HashMap<u16, AckKind>,
    waiting: VecDeque<EdgeMsg>,
}

pub(crate) struct Outbox {
    proto: Protocol,
    limit: usize,
    window: usize,
    max_packet: usize,
    metrics: Arc<Metrics>,
    inner: Mutex<Inner>,
    wake: Notify,
}

impl Outbox {
    pub fn new(
        proto: Protocol,
        limit: usize,
        window: usize,
        max_packet: usize,
        metrics: Arc<Metrics>,
    ) -> Outbox {
        Outbox {
            proto,
            limit,
            window: window.max(1),
            max_packet,
            metrics,
            inner: Mutex::new(Inner {
                buf: BytesMut::with_capacity(4096),
                closed: false,
                dropped: 0,
                next_pkid: EDGE_PKID_FIRST,
                inflight: HashMap::new(),
                waiting: VecDeque::new(),
            }),
            wake: Notify::new(),
        }
    }

    pub fn lock(&self) -> OutboxGuard<'_> {
        OutboxGuard {
            outbox: self,
            inner: self.inner.lock().unwrap_or_else(|e| e.into_inner()),
            wrote: false,
        }
    }

    /// Stops accepting data; the writer flushes what is queued and finishes.
    pub fn close(&self) {
        self.lock().inner.closed = true;
        self.wake.notify_one();
    }

    /// Messages dropped for this connection so far.
    pub fn dropped(&self) -> u64 {
        self.lock().inner.dropped
    }

    /// The next bytes to write, or `None` once closed and drained.
    pub async fn next_chunk(&self) -> Option<BytesMut> {
        loop {
            {
                let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
                if !inner.buf.is_empty() {
                    return Some(inner.buf.split());
                }
                if inner.closed {
                    return None;
                }
            }
            self.wake.notified().await;
        }
    }
}

/// Exclusive access to the outbox; wakes the writer when dropped if anything was written.
pub(crate) struct OutboxGuard<'a> {
    outbox: &'a Outbox,
    inner: MutexGuard<'a, Inner>,
    wrote: bool,
}

impl OutboxGuard<'_> {
    /// Appends a control packet (ack, SUBACK, ...); never dropped.
    pub fn control(&mut self, encode: impl FnOnce(&mut BytesMut)) {
        encode(&mut self.inner.buf);
        self.wrote = true;
    }

    /// Appends a PUBLISH forwarded by the router. Returns false if it was dropped.
    pub fn forward(&mut self, publish: Publish, properties: Option<PublishProperties>) -> bool {
        let start = self.inner.buf.len();
        let encoded = match self.outbox.proto {
            Protocol::V5 => V5.write(Packet::Publish(publish, properties), &mut self.inner.buf),
            _ => V4.write(Packet::Publish(publish, None), &mut self.inner.buf),
        };
        if let Err(e) = encoded {
            self.inner.buf.truncate(start);
            tracing::warn!(error = %e, "cannot encode forwarded publish; skipped");
            return false;
        }
        let qos = (self.inner.buf[start] >> 1) & 0b11;
        let size = self.inner.buf.len() - start;
        if qos == 0 && (start >= self.outbox.limit || size > self.outbox.max_packet) {
            self.inner.buf.truncate(start);
            self.count_drop();
            return false;
        }
        self.wrote = true;
        Metrics::inc(&self.outbox.metrics.publishes_sent);
        true
    }

    /// Delivers a message built by the edge, queueing QoS 1/2 beyond the in-flight window.
    pub fn deliver(&mut self, msg: EdgeMsg) -> bool {
        if msg.qos == QoS::AtMostOnce {
            if self.inner.buf.len() >= self.outbox.limit {
                self.count_drop();
                return false;
            }
            return self.write_edge(&msg, 0);
        }
        if self.inner.inflight.len() >= self.outbox.window || !self.inner.waiting.is_empty() {
            self.inner.waiting.push_back(msg);
            return true;
        }
        self.send_edge_qos(msg)
    }

    /// Handles an acknowledgement for an edge packet id; returns false if unknown.
    pub fn on_ack(&mut self, kind: AckKind, pkid: u16) -> bool {
        let state = self.inner.inflight.get(&pkid).copied();
        match (kind, state) {
            (AckKind::PubAck, Some(AckKind::PubAck))
            | (AckKind::PubComp, Some(AckKind::PubComp)) => {
                self.inner.inflight.remove(&pkid);
                self.pump();
                true
            }
            (AckKind::PubRec, Some(AckKind::PubRec)) => {
                self.inner.inflight.insert(pkid, AckKind::PubComp);
                let proto = self.outbox.proto;
                self.control(|b| encode::ack(proto, AckKind::PubRel, pkid, 0, b));
                true
            }
            _ => false,
        }
    }

    fn pump(&mut self) {
        while self.inner.inflight.len() < self.outbox.window {
            let Some(msg) = self.inner.waiting.pop_front() else {
                break;
            };
            self.send_edge_qos(msg);
        }
    }

    fn send_edge_qos(&mut self, msg: EdgeMsg) -> bool {
        let pkid = self.alloc_pkid();
        let state = if msg.qos == QoS::AtLeastOnce {
            AckKind::PubAck
        } else {
            AckKind::PubRec
        };
        if self.write_edge(&msg, pkid) {
            self.inner.inflight.insert(pkid, state);
            true
        } else {
            false
        }
    }

    fn write_edge(&mut self, msg: &EdgeMsg, pkid: u16) -> bool {
        let start = self.inner.buf.len();
        let out = OutPublish {
            topic: &msg.message.topic,
            payload: &msg.message.payload,
            qos: msg.qos,
            retain: msg.retain,
            pkid,
            properties: msg.message.properties.as_ref(),
            expiry_override: msg.expiry,
            subscription_ids: &msg.subscription_ids,
        };
        encode::publish(self.outbox.proto, &out, &mut self.inner.buf);
        if self.inner.buf.len() - start > self.outbox.max_packet {
            // Larger than the client's Maximum Packet Size: MQTT 5 says drop it.
            self.inner.buf.truncate(start);
            self.count_drop();
            return false;
        }
        self.wrote = true;
        Metrics::inc(&self.outbox.metrics.publishes_sent);
        true
    }

    fn alloc_pkid(&mut self) -> u16 {
        loop {
            let pkid = self.inner.next_pkid;
            self.inner.next_pkid = if pkid == u16::MAX {
                EDGE_PKID_FIRST
            } else {
                pkid + 1
            };
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
                "subscriber is not keeping up; dropping QoS 0 messages"
            );
        }
    }
}

impl Drop for OutboxGuard<'_> {
    fn drop(&mut self) {
        if self.wrote {
            self.outbox.wake.notify_one();
        }
    }
}
