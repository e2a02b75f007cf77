//! Everything a network connection sends, queued as encoded bytes and written straight
//! from whichever task has something to send.
//!
//! A publisher's task delivers into a subscriber's outbox and, at the end of its batch,
//! writes it with one non-blocking syscall (`flush`): no hop to the subscriber's task
//! while its socket takes the data. What the socket does not take waits in the outbox and
//! the connection's own task is woken to write it when the socket is writable.
//!
//! Bounded: once `max_bytes` wait, QoS 0 messages are dropped and counted
//! (`dropped_slow_subscriber`). QoS 1/2 messages get the outbox's own packet ids, at most
//! `window` unacknowledged (the client's Receive Maximum), up to `max_messages` and
//! `max_bytes` more queued, and are dropped (counted) beyond that. Retained messages for a
//! new subscription and a resumed session's queue are *paced* (`queue`): written as the
//! client takes them, never dropped. Expired messages
//! (MQTT 5 message expiry) are dropped when their turn comes. MQTT 5 topic aliases are
//! used towards clients that accept them, and forgotten with the connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::router::publication::Delivery;
use crate::transport::Writer;
use crate::types::{Protocol, QoS};
use crate::wire::encode::{self, AckKind, OutPublish};

use super::queue::Queue;

/// Limits of one outbox.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Bytes waiting (encoded, and queued QoS 1/2 messages) before messages are dropped.
    pub max_bytes: usize,
    /// QoS 1/2 messages in flight (the client's Receive Maximum, capped by the config).
    pub window: usize,
    /// QoS 1/2 messages queued beyond the window.
    pub max_messages: usize,
    /// The client's Maximum Packet Size (MQTT 5), or usize::MAX.
    pub max_packet: usize,
    /// Topic aliases the client accepts from the broker (MQTT 5), 0 for none.
    pub topic_aliases: u16,
}

struct Inflight {
    waiting_for: AckKind,
    delivery: Delivery,
}

struct Inner {
    buf: BytesMut,
    dropped: u64,
    next_pkid: u16,
    inflight: HashMap<u16, Inflight>,
    waiting: Queue,
    /// Outbound topic aliases: topic -> alias.
    aliases: HashMap<String, u16>,
    closed: bool,
    /// When the client last took something (an acknowledgement, bytes written).
    progress: Instant,
}

pub(crate) struct Outbox {
    proto: Protocol,
    limits: Limits,
    metrics: Arc<Metrics>,
    socket: Writer,
    inner: Mutex<Inner>,
    /// Wakes the connection's task when data is left for it to write.
    pub wake: Notify,
    /// Wakes publishers waiting for this subscriber to catch up.
    drained: Notify,
}

/// A write buffer larger than this is given back once everything in it is written.
const KEEP_BUFFER: usize = 16 * 1024;

impl Outbox {
    pub fn new(proto: Protocol, limits: Limits, metrics: Arc<Metrics>, socket: Writer) -> Outbox {
        Outbox {
            proto,
            limits: Limits {
                window: limits.window.max(1),
                ..limits
            },
            metrics,
            socket,
            inner: Mutex::new(Inner {
                buf: BytesMut::new(),
                dropped: 0,
                next_pkid: 1,
                inflight: HashMap::new(),
                waiting: Queue::default(),
                aliases: HashMap::new(),
                closed: false,
                progress: Instant::now(),
            }),
            wake: Notify::new(),
            drained: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn socket(&self) -> &Writer {
        &self.socket
    }

    /// Appends a control packet (ack, SUBACK, ...); never dropped.
    pub fn control(&self, encode: impl FnOnce(&mut BytesMut)) {
        encode(&mut self.lock().buf);
    }

    /// Queues a delivery; false if it was dropped (full, expired, too large, closed).
    pub fn deliver(&self, d: Delivery) -> bool {
        let mut inner = self.lock();
        if inner.closed {
            return false;
        }
        let must_wait = if d.qos == QoS::AtMostOnce {
            inner.waiting.has_paced()
        } else {
            inner.inflight.len() >= self.limits.window || !inner.waiting.is_empty()
        };
        if !must_wait {
            if d.qos == QoS::AtMostOnce {
                if inner.buf.len() >= self.limits.max_bytes {
                    self.count_drop(&mut inner);
                    return false;
                }
                return self.write(&mut inner, &d, 0, false);
            }
            return self.send_with_pkid(&mut inner, d, false);
        }
        let (live, live_bytes) = inner.waiting.live();
        if live >= self.limits.max_messages
            || inner.buf.len() + live_bytes + d.size() > self.limits.max_bytes
        {
            self.count_drop(&mut inner);
            return false;
        }
        inner.waiting.push_live(d);
        true
    }

    /// Queues deliveries that must all arrive (retained messages for a new subscription,
    /// a resumed session's queue): written as fast as the client takes them, in order,
    /// ahead of anything delivered after them.
    pub fn deliver_paced(&self, deliveries: Vec<Delivery>) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        for d in deliveries {
            inner.waiting.push_paced(d);
        }
        self.pump(&mut inner);
    }

    /// Is this subscriber unable to take more right now? (Shared groups skip it.)
    pub fn is_full(&self) -> bool {
        let inner = self.lock();
        inner.buf.len() >= self.limits.max_bytes
            || inner.waiting.live().0 >= self.limits.max_messages
    }

    /// Bytes waiting to be written.
    pub fn pending_bytes(&self) -> usize {
        self.lock().buf.len()
    }

    /// Is more than half of what this subscriber may queue waiting? Publishers that
    /// delivered to it then give it a moment (`wait_drained`) before reading more.
    pub fn congested(&self) -> bool {
        let inner = self.lock();
        congested(&inner, &self.limits)
    }

    /// Waits until this subscriber is no longer congested, or `until`.
    pub async fn wait_drained(&self, until: tokio::time::Instant) {
        loop {
            let notified = self.drained.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if !self.congested() || self.lock().closed {
                return;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return;
            }
        }
    }

    /// Re-sends the deliveries of a resumed persistent session (QoS 1/2 with DUP set for
    /// those that were in flight).
    pub fn resume(&self, in_flight: Vec<Delivery>, queued: Vec<Delivery>) {
        let mut inner = self.lock();
        let mut rest = Vec::new();
        for d in in_flight {
            if inner.inflight.len() < self.limits.window {
                self.send_with_pkid(&mut inner, d, true);
            } else {
                rest.push(d);
            }
        }
        drop(inner);
        rest.extend(queued);
        self.deliver_paced(rest);
    }

    /// Handles the client's PUBACK / PUBREC / PUBCOMP; returns false for an unknown id.
    pub fn on_ack(&self, kind: AckKind, pkid: u16) -> bool {
        let mut inner = self.lock();
        let Some(waiting_for) = inner.inflight.get(&pkid).map(|m| m.waiting_for) else {
            return false;
        };
        if waiting_for != kind {
            return false;
        }
        inner.progress = Instant::now();
        match kind {
            AckKind::PubRec => {
                if let Some(m) = inner.inflight.get_mut(&pkid) {
                    m.waiting_for = AckKind::PubComp;
                }
                let proto = self.proto;
                encode::ack(proto, AckKind::PubRel, pkid, 0, &mut inner.buf);
            }
            _ => {
                inner.inflight.remove(&pkid);
                self.pump(&mut inner);
                if !congested(&inner, &self.limits) {
                    self.drained.notify_waiters();
                }
            }
        }
        true
    }

    /// QoS 1/2 deliveries not yet acknowledged: (in flight, queued), for a persistent
    /// session that goes offline.
    pub fn take_unacknowledged(&self) -> (Vec<Delivery>, Vec<Delivery>) {
        let mut inner = self.lock();
        let mut inflight: Vec<(u16, Inflight)> = inner.inflight.drain().collect();
        inflight.sort_by_key(|(pkid, _)| *pkid);
        let sent = inflight.into_iter().map(|(_, m)| m.delivery).collect();
        let queued = inner.waiting.take_qos12();
        (sent, queued)
    }

    /// Messages dropped for this connection so far.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Nothing more is queued from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.drained.notify_waiters();
    }

    /// Writes as much as the socket takes without blocking. `Ok(true)`: everything queued
    /// is written.
    pub fn flush(&self) -> std::io::Result<bool> {
        let mut inner = self.lock();
        while !inner.buf.is_empty() {
            match self.socket.try_write(&inner.buf) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    inner.buf.advance(n);
                    inner.progress = Instant::now();
                    Metrics::add(&self.metrics.bytes_sent, n as u64);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
            if inner.buf.is_empty() && inner.waiting.has_paced() {
                self.pump(&mut inner);
            }
        }
        // With TLS, records of what was written may still wait to go out.
        if !self.socket.flush_pending()? {
            return Ok(false);
        }
        if inner.buf.capacity() > KEEP_BUFFER {
            inner.buf = BytesMut::new();
        }
        if !congested(&inner, &self.limits) {
            self.drained.notify_waiters();
        }
        Ok(true)
    }

    /// `flush` from another task: what the socket does not take now is left to the
    /// connection's task, which is woken (errors are its to see on its next read).
    pub fn flush_or_wake(&self) {
        if !matches!(self.flush(), Ok(true)) {
            self.wake.notify_one();
        }
    }

    /// Moves waiting deliveries into the write buffer while the client can take them:
    /// QoS 1/2 while the window has room, paced ones while the buffer is under half full.
    fn pump(&self, inner: &mut Inner) {
        while let Some((qos, paced)) = inner.waiting.front() {
            if paced && inner.buf.len() >= self.limits.max_bytes / 2 {
                break;
            }
            if qos != QoS::AtMostOnce && inner.inflight.len() >= self.limits.window {
                break;
            }
            let Some(d) = inner.waiting.pop() else { break };
            if qos == QoS::AtMostOnce {
                self.write(inner, &d, 0, false);
            } else {
                self.send_with_pkid(inner, d, false);
            }
        }
    }

    fn send_with_pkid(&self, inner: &mut Inner, d: Delivery, dup: bool) -> bool {
        let pkid = alloc_pkid(inner);
        if !self.write(inner, &d, pkid, dup) {
            return false;
        }
        let waiting_for = if d.qos == QoS::AtLeastOnce {
            AckKind::PubAck
        } else {
            AckKind::PubRec
        };
        inner.inflight.insert(
            pkid,
            Inflight {
                waiting_for,
                delivery: d,
            },
        );
        true
    }

    /// Encodes a PUBLISH; false if it was dropped (expired, or larger than the client
    /// accepts).
    fn write(&self, inner: &mut Inner, d: &Delivery, pkid: u16, dup: bool) -> bool {
        let Ok(remaining) = d.publication.remaining() else {
            Metrics::inc(&self.metrics.dropped_expired);
            return false;
        };
        let m = &d.publication.message;
        let (topic, alias) = self.alias(inner, &m.topic);
        let start = inner.buf.len();
        let out = OutPublish {
            topic: topic.as_bytes(),
            payload: &m.payload,
            qos: d.qos,
            retain: d.retain,
            dup,
            pkid,
            properties: m.properties.as_ref(),
            expiry_override: remaining,
            subscription_ids: &d.subscription_ids,
            topic_alias: alias,
        };
        encode::publish(self.proto, &out, &mut inner.buf);
        if inner.buf.len() - start > self.limits.max_packet {
            inner.buf.truncate(start);
            self.count_drop(inner);
            return false;
        }
        Metrics::inc(&self.metrics.publishes_sent);
        true
    }

    /// The topic to write and its alias: the first time a topic is sent it gets an alias
    /// (while the client accepts more), and is sent as alias only afterwards.
    fn alias<'a>(&self, inner: &mut Inner, topic: &'a str) -> (&'a str, Option<u16>) {
        if self.proto != Protocol::V5 || self.limits.topic_aliases == 0 {
            return (topic, None);
        }
        if let Some(&a) = inner.aliases.get(topic) {
            return ("", Some(a));
        }
        let next = inner.aliases.len() as u16 + 1;
        if next > self.limits.topic_aliases {
            return (topic, None);
        }
        inner.aliases.insert(topic.to_string(), next);
        (topic, Some(next))
    }

    fn count_drop(&self, inner: &mut Inner) {
        inner.dropped += 1;
        Metrics::inc(&self.metrics.dropped_slow_subscriber);
        let n = inner.dropped;
        if n == 1 || n.is_multiple_of(10_000) {
            tracing::warn!(
                dropped = n,
                queued_bytes = inner.buf.len() + inner.waiting.live().1,
                queued_messages = inner.waiting.live().0,
                "subscriber is not keeping up; dropping messages"
            );
        }
    }
}

/// More than half full, and still taking messages (a client that took nothing for a second
/// is stuck, not slow: publishers do not wait for it, it loses messages instead).
fn congested(inner: &Inner, limits: &Limits) -> bool {
    let (live, live_bytes) = inner.waiting.live();
    (live > limits.max_messages / 2 || inner.buf.len() + live_bytes > limits.max_bytes / 2)
        && inner.progress.elapsed() < STUCK
}

/// A subscriber that took nothing for this long is not waited for.
const STUCK: Duration = Duration::from_secs(1);

fn alloc_pkid(inner: &mut Inner) -> u16 {
    loop {
        let pkid = inner.next_pkid;
        inner.next_pkid = pkid.checked_add(1).unwrap_or(1);
        if !inner.inflight.contains_key(&pkid) {
            return pkid;
        }
    }
}
