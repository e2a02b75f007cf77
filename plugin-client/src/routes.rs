//! The receiving side of subscriptions: which of this client's subscriptions a message
//! belongs to, and handing it over (to a `Subscription`'s bounded queue, or to an in-line
//! handler called on the transport's own task).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::protocol::{filter_matches, validate_filter, Envelope};
use crate::transport::Message;

/// A message received on a subscription.
#[derive(Debug, Clone)]
pub struct IncomingEvent {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// The decoded envelope, for topics under `<root>/event/`.
    pub envelope: Option<Envelope>,
}

impl IncomingEvent {
    /// The payload parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.payload).ok()
    }

    /// The envelope's data, or the whole payload as JSON for other topics.
    pub fn data(&self) -> Option<Value> {
        match &self.envelope {
            Some(e) => Some(e.data.clone()),
            None => self.json(),
        }
    }
}

/// Messages matching one subscription, in arrival order. At most `queue` messages wait;
/// when the consumer falls further behind, new ones are dropped and counted.
pub struct Subscription {
    filter: String,
    rx: mpsc::Receiver<IncomingEvent>,
    dropped: Arc<AtomicU64>,
}

impl Subscription {
    /// The next message; `None` once the client is closed or unsubscribed.
    pub async fn next(&mut self) -> Option<IncomingEvent> {
        self.rx.recv().await
    }

    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// Messages dropped because this subscription's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// A handler called in line for every matching message: it must not block.
pub type InlineHandler = Arc<dyn Fn(&Message) + Send + Sync>;

#[derive(Clone)]
enum Target {
    Queue {
        tx: mpsc::Sender<IncomingEvent>,
        dropped: Arc<AtomicU64>,
    },
    Inline(InlineHandler),
}

#[derive(Clone)]
struct Route {
    filter: String,
    /// The filter without a `$share/<group>/` prefix.
    matcher: String,
    target: Target,
}

/// Every subscription of one client. Readers take a snapshot (an `Arc`), so a message is
/// routed without holding a lock while handlers run (they may subscribe or publish).
pub(crate) struct Routes {
    event_prefix: String,
    list: Mutex<Arc<Vec<Route>>>,
}

impl Routes {
    pub fn new(root: &str) -> Routes {
        Routes {
            event_prefix: format!("{root}/event/"),
            list: Mutex::new(Arc::new(Vec::new())),
        }
    }

    fn snapshot(&self) -> Arc<Vec<Route>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the routes (copy on write: snapshots in use are not touched).
    fn update(&self, change: impl FnOnce(&mut Vec<Route>)) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        change(Arc::make_mut(&mut list));
    }

    /// A queue for `filter`, holding at most `capacity` messages.
    pub fn queue(
        &self,
        filter: &str,
        capacity: usize,
    ) -> Result<Subscription, crate::protocol::NameError> {
        let matcher = validate_filter(filter)?.to_string();
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        self.update(|l| {
            l.push(Route {
                filter: filter.to_string(),
                matcher,
                target: Target::Queue {
                    tx,
                    dropped: dropped.clone(),
                },
            })
        });
        Ok(Subscription {
            filter: filter.to_string(),
            rx,
            dropped,
        })
    }

    /// An in-line handler for `filter`.
    pub fn inline(
        &self,
        filter: &str,
        handler: InlineHandler,
    ) -> Result<(), crate::protocol::NameError> {
        let matcher = validate_filter(filter)?.to_string();
        self.update(|l| {
            l.push(Route {
                filter: filter.to_string(),
                matcher,
                target: Target::Inline(handler),
            })
        });
        Ok(())
    }

    /// Removes every route of `filter`; their subscriptions end.
    pub fn remove(&self, filter: &str) {
        self.update(|l| l.retain(|r| r.filter != filter));
    }

    /// Each distinct filter (to subscribe again after a reconnect).
    pub fn filters(&self) -> Vec<String> {
        let mut out: Vec<String> = self.snapshot().iter().map(|r| r.filter.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// Hands `m` to every route whose filter matches it.
    pub fn offer(&self, m: &Message) {
        let routes = self.snapshot();
        for r in routes
            .iter()
            .filter(|r| filter_matches(&r.matcher, &m.topic))
        {
            match &r.target {
                Target::Inline(h) => h(m),
                Target::Queue { tx, dropped } => {
                    if tx.try_send(self.event(m)).is_err() && !tx.is_closed() {
                        let n = dropped.fetch_add(1, Ordering::Relaxed) + 1;
                        if n == 1 || n % 10_000 == 0 {
                            tracing::warn!(filter = %r.filter, dropped = n, "subscription queue full; messages dropped");
                        }
                    }
                }
            }
        }
    }

    fn event(&self, m: &Message) -> IncomingEvent {
        let envelope = if m.topic.starts_with(&self.event_prefix) {
            serde_json::from_slice(&m.payload).ok()
        } else {
            None
        };
        IncomingEvent {
            topic: m.topic.clone(),
            payload: m.payload.clone(),
            retain: m.retain,
            envelope,
        }
    }
}
