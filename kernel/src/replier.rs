//! Replies sent from in-line handlers: published at once when the connection takes them,
//! else through one bounded queue drained by one task. When that queue is full the reply is
//! dropped and counted (the caller's own timeout answers it): memory stays bounded however
//! fast callers ask, and no task is spawned per reply.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hcore_client::protocol::{ReplyTo, RpcError};
use hcore_client::Outgoing;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::out::{reply_message, KernelLink, Publisher};

enum Item {
    Message(Outgoing),
    /// Everything queued before has been published.
    Flushed(oneshot::Sender<()>),
}

#[derive(Clone)]
pub(crate) struct Replier {
    link: KernelLink,
    queue: mpsc::Sender<Item>,
    dropped: Arc<AtomicU64>,
}

impl Replier {
    /// Starts the task that drains a queue of `capacity` replies.
    pub fn start(link: KernelLink, capacity: usize) -> Replier {
        let (queue, mut rx) = mpsc::channel::<Item>(capacity.max(1));
        let out = link.clone();
        tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                match item {
                    Item::Message(m) => out.publish(m).await,
                    Item::Flushed(done) => {
                        let _ = done.send(());
                    }
                }
            }
        });
        Replier {
            link,
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Answers a call without waiting.
    pub fn reply(&self, to: &ReplyTo, outcome: Result<Value, RpcError>) {
        self.send(reply_message(to, outcome));
    }

    /// Publishes without waiting.
    pub fn send(&self, m: Outgoing) {
        let m = match self.link.get() {
            Some(client) => match client.try_publish_message(m) {
                Ok(()) => return,
                Err(m) => m,
            },
            None => m,
        };
        if self.queue.try_send(Item::Message(m)).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(10_000) {
                tracing::warn!(
                    dropped = n,
                    "reply queue full; replies dropped (callers time out)"
                );
            }
        }
    }

    /// Waits until every reply queued so far is published.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.queue.send(Item::Flushed(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}
