//! Durable writes with group commit, and the one place that orders state.
//!
//! Every write (state and storage) is a job for one writer task, queued in the order the
//! kernel saw the requests. The writer takes every job waiting, applies them (assigning
//! state versions as it goes), flushes once, and only then makes the batch visible
//! (memory, `state`) and publishes what it produced, in queue order: retained records,
//! `state_changed` events, replies. So versions, retained records, events and the stored
//! values all advance in the same order, a reply means "on disk", and many concurrent
//! writers share one flush.
//!
//! Reads of keys with a write on its way are jobs too, answered after that write's flush.
//! If a flush fails, the batch's writes are undone in the database, memory keeps what was
//! last acknowledged, and every write of the batch is answered `internal` (not durable).
//!
//! The queue is bounded: when it is full, a request is answered `unavailable` at once
//! rather than queued without limit.

mod effects;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hcore_client::protocol::{ReplyTo, Topics};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::out::Publisher;
use crate::state::{Origin, StateRead, StateStore};
use crate::storage::{Storage, StorageRead, StorageWrite};

/// A write to the state engine.
/// When to publish the state records again after a broker node died (a NATS cluster
/// stores retained messages again once it has elected new leaders: 2 to 9 s measured).
pub(crate) const AFTER_NODE_LOSS: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) enum StateWrite {
    Set { value: Value, expected: Option<u64> },
    Delete { expected: Option<u64> },
}

/// Work for the writer.
pub(crate) enum Job {
    State {
        key: String,
        write: StateWrite,
        origin: Origin,
        /// `None` for `.../set` commands, which have nobody to answer.
        reply: Option<ReplyTo>,
    },
    ReadState {
        read: StateRead,
        reply: ReplyTo,
    },
    Storage {
        ns: String,
        write: StorageWrite,
        reply: ReplyTo,
    },
    ReadStorage {
        ns: String,
        read: StorageRead,
        reply: ReplyTo,
    },
    /// Publish every state record again (after a reconnect), in order with the writes.
    Republish(oneshot::Sender<()>),
}

enum Msg {
    Job(Box<Job>),
    /// Finish what is queued, then stop (releasing the database).
    Stop(oneshot::Sender<()>),
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The queue is full.
    Busy,
    /// The writer has stopped.
    Stopped,
}

/// What the writer works on.
pub(crate) struct Stores {
    pub db: sled::Db,
    pub state: Arc<StateStore>,
    pub storage: Arc<Storage>,
    pub topics: Topics,
}

/// Makes a batch durable; `sled::Db::flush` outside tests.
pub(crate) type Flush = Arc<dyn Fn(&sled::Db) -> Result<(), String> + Send + Sync>;

/// The handle that queues jobs.
#[derive(Clone)]
pub(crate) struct Persist {
    tx: mpsc::Sender<Msg>,
    state: Arc<StateStore>,
    storage: Arc<Storage>,
    /// A `republish_later` is waiting.
    later: Arc<AtomicBool>,
}

impl Persist {
    /// Starts the writer with a queue of `capacity` jobs.
    pub fn start(stores: Stores, out: Arc<dyn Publisher>, capacity: usize) -> Persist {
        let flush: Flush =
            Arc::new(|db: &sled::Db| db.flush().map(|_| ()).map_err(|e| e.to_string()));
        Persist::start_with(stores, out, capacity, flush)
    }

    pub(crate) fn start_with(
        stores: Stores,
        out: Arc<dyn Publisher>,
        capacity: usize,
        flush: Flush,
    ) -> Persist {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let handle = Persist {
            tx,
            state: stores.state.clone(),
            storage: stores.storage.clone(),
            later: Arc::default(),
        };
        tokio::spawn(writer::run(stores, out, flush, rx));
        handle
    }

    /// Queues a job without waiting. Writes mark their key dirty first, so reads of it
    /// wait behind them.
    pub fn submit(&self, job: Job) -> Result<(), Refusal> {
        let permit = self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => Refusal::Busy,
            mpsc::error::TrySendError::Closed(()) => Refusal::Stopped,
        })?;
        self.mark_dirty(&job);
        permit.send(Msg::Job(Box::new(job)));
        Ok(())
    }

    fn mark_dirty(&self, job: &Job) {
        match job {
            Job::State { key, .. } => self.state.mark_dirty(key),
            Job::Storage { ns, write, .. } => self.storage.mark_dirty(ns, write.key()),
            _ => {}
        }
    }

    /// Queues a job, waiting for room (for the kernel's own work, not for requests).
    pub async fn submit_wait(&self, job: Job) -> Result<(), Refusal> {
        let permit = self.tx.reserve().await.map_err(|_| Refusal::Stopped)?;
        self.mark_dirty(&job);
        permit.send(Msg::Job(Box::new(job)));
        Ok(())
    }

    /// Republishes every state record, in order with the writes queued before.
    pub async fn republish(&self) {
        let (tx, rx) = oneshot::channel();
        if self.submit_wait(Job::Republish(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Republishes every state record `after` from now; asking again while one waits
    /// adds nothing. For a clustered broker that lost a node: NATS keeps retained
    /// messages in JetStream and drops, with only a log line of its own, those it cannot
    /// store while the cluster elects new leaders.
    pub fn republish_later(&self, after: Duration) {
        if self.later.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            me.later.store(false, Ordering::Release);
            me.republish().await;
        });
    }

    /// Completes every queued job and stops the writer; returns when it has let go of
    /// the database.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

#[cfg(test)]
mod tests;
