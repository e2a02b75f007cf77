//! Where an in-process client's messages go: a sink called in line on the publisher's task
//! (the kernel, in-process plugins), or a bounded queue read by `LocalReceiver`.
//!
//! A sink that publishes in line can recurse; past a small depth the delivery is handed to
//! the client's own task (`deferred`) so the stack stays bounded. A sink that panics loses
//! that one message and is logged; the publisher is unaffected. A queue receiver that falls
//! `limit` messages behind loses the newest ones (counted).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::router::publication::Delivery;
use crate::types::Message;

/// Receives an in-process client's messages instead of the `LocalReceiver` queue. It is
/// called in line on the publisher's task (so possibly from several tasks at once, in
/// order per publisher) and may publish with `try_publish`; it must not block.
pub type LocalSink = Arc<dyn Fn(Message) + Send + Sync>;

/// In-line deliveries nested deeper than this on one thread go through the client's task.
const MAX_DEPTH: u32 = 8;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

pub(crate) struct LocalOutlet {
    client_id: String,
    sink: Option<LocalSink>,
    /// The receiver queue; `None` once the client is closed.
    queue: Mutex<Option<mpsc::UnboundedSender<Message>>>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    /// Deliveries nested too deeply to make in line, for the client's task.
    deferred: mpsc::Sender<Delivery>,
    metrics: Arc<Metrics>,
}

impl LocalOutlet {
    pub fn new(
        client_id: &str,
        sink: Option<LocalSink>,
        queue: mpsc::UnboundedSender<Message>,
        queued: Arc<AtomicUsize>,
        limit: usize,
        deferred: mpsc::Sender<Delivery>,
        metrics: Arc<Metrics>,
    ) -> LocalOutlet {
        LocalOutlet {
            client_id: client_id.to_string(),
            sink,
            queue: Mutex::new(Some(queue)),
            queued,
            limit,
            deferred,
            metrics,
        }
    }

    /// Hands a delivery over; false if it was dropped.
    pub fn deliver(&self, d: Delivery) -> bool {
        let Ok(remaining) = d.publication.remaining() else {
            Metrics::inc(&self.metrics.dropped_expired);
            return false;
        };
        let Some(sink) = &self.sink else {
            return self.enqueue(d.to_message(remaining));
        };
        let depth = DEPTH.with(Cell::get);
        if depth >= MAX_DEPTH {
            if self.deferred.try_send(d).is_err() {
                Metrics::inc(&self.metrics.dropped_slow_subscriber);
                return false;
            }
            return true;
        }
        Metrics::inc(&self.metrics.publishes_sent);
        DEPTH.with(|c| c.set(depth + 1));
        let result = catch_unwind(AssertUnwindSafe(|| sink(d.to_message(remaining))));
        DEPTH.with(|c| c.set(depth));
        if result.is_err() {
            tracing::error!(client_id = %self.client_id, "in-process sink panicked; message lost");
        }
        true
    }

    fn enqueue(&self, message: Message) -> bool {
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let Some(queue) = queue.as_ref() else {
            return false;
        };
        if self.queued.load(Ordering::Relaxed) >= self.limit {
            Metrics::inc(&self.metrics.dropped_slow_subscriber);
            return false;
        }
        if queue.send(message).is_err() {
            return false;
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        Metrics::inc(&self.metrics.publishes_sent);
        true
    }

    /// Is a queue receiver this far behind?
    pub fn is_full(&self) -> bool {
        self.sink.is_none() && self.queued.load(Ordering::Relaxed) >= self.limit
    }

    /// Nothing is delivered any more; the receiver ends.
    pub fn close(&self) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}
