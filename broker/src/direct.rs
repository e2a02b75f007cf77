//! Direct delivery to in-process clients: their (non-shared) subscriptions are matched at
//! the edge, and a matching publish is handed to them on the publisher's own task, with
//! no trip through rumqttd's router. A round trip between two in-process clients, or from
//! a network client to the kernel and back, then costs no thread hop on the way in.
//!
//! Rules kept from the routed path: a subscriber gets the retained messages matching a new
//! filter before any live message on it (a gate holds live messages while a subscription
//! opens), messages from one publisher arrive in the order they were sent, the delivery
//! hooks see every message, and a queue-mode receiver that falls `local_queue_limit`
//! messages behind loses the newest ones (counted). A sink that publishes in line can
//! recurse; past a small depth the delivery is deferred to the client's drain task so the
//! stack stays bounded. A sink that panics loses that one message and is logged; the
//! publisher's connection is unaffected.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;

use crate::hooks::{ClientInfo, Hooks};
use crate::metrics::Metrics;
use crate::topic::matches;
use crate::types::Message;

/// Receives an in-process client's messages instead of the `LocalReceiver` queue. It is
/// called in line on the publisher's task (so possibly from several tasks at once, in
/// order per publisher) and may publish with `try_publish`; it must not block.
pub type LocalSink = Arc<dyn Fn(Message) + Send + Sync>;

/// What every delivery consults: the hooks, the counters, the queue limit.
pub(crate) struct DeliveryRules {
    pub hooks: Arc<dyn Hooks>,
    pub metrics: Arc<Metrics>,
    /// Messages a queue-mode receiver may fall behind before the newest are dropped.
    pub queue_limit: usize,
}

/// In-line deliveries nested deeper than this on one thread go through the drain task.
const MAX_DEPTH: u32 = 8;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// One in-process client's receiving side, shared by every publisher that delivers to it.
pub(crate) struct Delivery {
    rules: Arc<DeliveryRules>,
    info: ClientInfo,
    sink: Option<LocalSink>,
    queued: Arc<AtomicUsize>,
    /// Deliveries too deeply nested to make in line; the drain task makes them.
    deferred: mpsc::UnboundedSender<Message>,
    gate: Mutex<Gate>,
}

struct Gate {
    /// A subscription is opening, or its held messages are being handed over: live
    /// messages wait behind its retained ones.
    holding: bool,
    held: Vec<Message>,
    /// The receiver queue; `None` once the client is closed.
    queue: Option<mpsc::UnboundedSender<Message>>,
}

impl Delivery {
    pub(crate) fn new(
        rules: Arc<DeliveryRules>,
        info: ClientInfo,
        sink: Option<LocalSink>,
        queue: mpsc::UnboundedSender<Message>,
        queued: Arc<AtomicUsize>,
        deferred: mpsc::UnboundedSender<Message>,
    ) -> Delivery {
        Delivery {
            rules,
            info,
            sink,
            queued,
            deferred,
            gate: Mutex::new(Gate {
                holding: false,
                held: Vec::new(),
                queue: Some(queue),
            }),
        }
    }

    fn gate(&self) -> std::sync::MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers one message, or holds it while a subscription opens.
    pub(crate) fn offer(&self, message: Message) {
        {
            let mut gate = self.gate();
            if gate.queue.is_none() {
                return;
            }
            if gate.holding {
                gate.held.push(message);
                return;
            }
        }
        self.deliver(message);
    }

    /// Starts opening a subscription: live messages wait until `release`. One
    /// subscription opens at a time (the client serializes its subscribes).
    pub(crate) fn hold(&self) {
        self.gate().holding = true;
    }

    /// Ends opening a subscription: delivers `first` (its retained messages), then what
    /// was held meanwhile and what arrives while handing those over, in order.
    pub(crate) fn release(&self, first: Vec<Message>) {
        let mut batch = first;
        batch.append(&mut self.gate().held);
        loop {
            for m in batch.drain(..) {
                self.deliver(m);
            }
            let mut gate = self.gate();
            if gate.held.is_empty() {
                gate.holding = false;
                return;
            }
            std::mem::swap(&mut batch, &mut gate.held);
        }
    }

    /// Closes the receiving side: nothing more is delivered and the receiver ends.
    pub(crate) fn close(&self) {
        let mut gate = self.gate();
        gate.queue = None;
        gate.held.clear();
    }

    pub(crate) fn info(&self) -> &ClientInfo {
        &self.info
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.gate().queue.is_none()
    }

    fn deliver(&self, message: Message) {
        if !self
            .rules
            .hooks
            .authorize_delivery(&self.info, &message.topic)
        {
            return;
        }
        let Some(sink) = &self.sink else {
            return self.enqueue(message);
        };
        let depth = DEPTH.with(Cell::get);
        if depth >= MAX_DEPTH {
            // The drain task makes this delivery (and the hooks see it then).
            let _ = self.deferred.send(message);
            return;
        }
        self.observe(&message);
        Metrics::inc(&self.rules.metrics.publishes_sent);
        DEPTH.with(|d| d.set(depth + 1));
        let result = catch_unwind(AssertUnwindSafe(|| sink(message)));
        DEPTH.with(|d| d.set(depth));
        if result.is_err() {
            tracing::error!(client_id = %self.info.client_id, "in-process sink panicked; message lost");
        }
    }

    fn observe(&self, message: &Message) {
        let correlation = message
            .properties
            .as_ref()
            .and_then(|p| p.correlation_data.as_deref());
        self.rules.hooks.observe_delivery(
            &self.info,
            &message.topic,
            &message.payload,
            correlation,
        );
    }

    fn enqueue(&self, message: Message) {
        let gate = self.gate();
        let Some(queue) = &gate.queue else { return };
        if self.queued.load(Ordering::Relaxed) >= self.rules.queue_limit {
            Metrics::inc(&self.rules.metrics.dropped_slow_subscriber);
            return;
        }
        self.observe(&message);
        if queue.send(message).is_ok() {
            self.queued.fetch_add(1, Ordering::Relaxed);
            Metrics::inc(&self.rules.metrics.publishes_sent);
        }
    }
}

struct DirectSub {
    filter: String,
    delivery: Arc<Delivery>,
}

/// Every direct subscription of every in-process client.
#[derive(Default)]
pub(crate) struct DirectTable {
    count: AtomicUsize,
    subs: RwLock<Vec<DirectSub>>,
}

impl DirectTable {
    /// Is any direct subscription registered? (A cheap check before matching.)
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Acquire) == 0
    }

    /// The clients with a subscription matching `topic`, each once.
    pub fn targets(&self, topic: &str) -> Vec<Arc<Delivery>> {
        let mut out: Vec<Arc<Delivery>> = Vec::new();
        if self.is_empty() {
            return out;
        }
        let subs = self.subs.read().unwrap_or_else(|e| e.into_inner());
        for s in subs.iter() {
            if matches(&s.filter, topic) && !out.iter().any(|d| Arc::ptr_eq(d, &s.delivery)) {
                out.push(s.delivery.clone());
            }
        }
        out
    }

    /// Adds (or keeps) `filter` for `delivery`.
    pub(crate) fn add(&self, filter: &str, delivery: &Arc<Delivery>) {
        let mut subs = self.subs.write().unwrap_or_else(|e| e.into_inner());
        if !subs
            .iter()
            .any(|s| s.filter == filter && Arc::ptr_eq(&s.delivery, delivery))
        {
            subs.push(DirectSub {
                filter: filter.to_string(),
                delivery: delivery.clone(),
            });
            self.count.store(subs.len(), Ordering::Release);
        }
    }

    /// Removes `filter` of `delivery`.
    pub(crate) fn remove(&self, filter: &str, delivery: &Arc<Delivery>) {
        self.retain(|s| !(s.filter == filter && Arc::ptr_eq(&s.delivery, delivery)));
    }

    /// Removes every subscription of `delivery`.
    pub(crate) fn remove_all(&self, delivery: &Arc<Delivery>) {
        self.retain(|s| !Arc::ptr_eq(&s.delivery, delivery));
    }

    fn retain(&self, keep: impl Fn(&DirectSub) -> bool) {
        let mut subs = self.subs.write().unwrap_or_else(|e| e.into_inner());
        subs.retain(keep);
        self.count.store(subs.len(), Ordering::Release);
    }
}

/// Messages to hand to in-process clients once the publisher's locks are released.
#[derive(Default)]
#[must_use = "deliveries must be delivered"]
pub(crate) struct Deliveries(Vec<(Message, Vec<Arc<Delivery>>)>);

impl Deliveries {
    pub fn push(&mut self, message: Message, targets: Vec<Arc<Delivery>>) {
        if !targets.is_empty() {
            self.0.push((message, targets));
        }
    }

    /// Delivers every message to its targets, in order.
    pub fn deliver(self) {
        for (message, targets) in self.0 {
            if let Some((last, others)) = targets.split_last() {
                for d in others {
                    d.offer(message.clone());
                }
                last.offer(message);
            }
        }
    }
}
