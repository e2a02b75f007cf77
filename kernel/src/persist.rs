//! Durable writes with group commit.
//!
//! Every write (state and storage) is a job run on one writer task: the task takes every
//! job waiting, applies them to the database, flushes once, and only then publishes what
//! the jobs produced (replies, retained state, events), in order. A reply therefore means
//! the write is on disk, and many concurrent writers share one flush.

use std::sync::Arc;

use hcore_client::protocol::{Reply, RpcError};
use hcore_client::transport::{Link, Outgoing};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::pending::ReplyTo;

/// What a job produced: messages to publish after the flush and the reply.
#[derive(Default)]
pub(crate) struct Done {
    pub effects: Vec<Outgoing>,
    pub reply: Option<(ReplyTo, Result<Value, RpcError>)>,
}

pub(crate) type Job = Box<dyn FnOnce() -> Done + Send>;

enum Msg {
    Job(Job),
    /// Finish what is queued, then stop (releasing the database).
    Stop(tokio::sync::oneshot::Sender<()>),
}

/// Most jobs per commit.
const MAX_BATCH: usize = 1024;

#[derive(Clone)]
pub(crate) struct Persist {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Persist {
    pub fn start(db: sled::Db, link: Arc<Link>) -> Persist {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(db, link, rx));
        Persist { tx }
    }

    /// Queues a job; false if the writer has stopped.
    pub fn submit(&self, job: Job) -> bool {
        self.tx.send(Msg::Job(job)).is_ok()
    }

    /// Completes every queued job and stops the writer; returns when it has let go of
    /// the database.
    pub async fn stop(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send(Msg::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Builds the reply message for a call.
pub(crate) fn reply_message(to: &ReplyTo, outcome: Result<Value, RpcError>) -> Outgoing {
    Outgoing {
        topic: to.topic.clone(),
        payload: Reply::new(to.id.clone(), outcome).to_bytes().into(),
        qos: 1,
        retain: false,
        correlation: to.correlation.clone(),
    }
}

async fn writer(db: sled::Db, link: Arc<Link>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut batch: Vec<Job> = Vec::with_capacity(64);
    let mut stopped = None;
    while let Some(first) = rx.recv().await {
        match first {
            Msg::Job(j) => batch.push(j),
            Msg::Stop(ack) => stopped = Some(ack),
        }
        while batch.len() < MAX_BATCH && stopped.is_none() {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => batch.push(job),
                Ok(Msg::Stop(ack)) => stopped = Some(ack),
                Err(_) => break,
            }
        }
        let done: Vec<Done> = batch.drain(..).map(|job| job()).collect();
        // One flush for the whole batch, on tokio's blocking pool (sled's flush_async
        // may start a thread per call).
        let flush_db = db.clone();
        let flushed = match tokio::task::spawn_blocking(move || flush_db.flush()).await {
            Ok(r) => r.map(|_| ()),
            Err(e) => Err(sled::Error::ReportableBug(format!(
                "flush task failed: {e}"
            ))),
        };
        if let Err(e) = &flushed {
            tracing::error!(error = %e, "database flush failed; writes are reported as failed");
        }
        for d in done {
            match &flushed {
                Ok(()) => {
                    for m in d.effects {
                        publish(&link, m).await;
                    }
                    if let Some((to, outcome)) = d.reply {
                        publish(&link, reply_message(&to, outcome)).await;
                    }
                }
                Err(e) => {
                    if let Some((to, _)) = d.reply {
                        let err = RpcError::internal(format!("write not durable: {e}"));
                        publish(&link, reply_message(&to, Err(err))).await;
                    }
                }
            }
        }
        if let Some(ack) = stopped {
            drop(db);
            let _ = ack.send(());
            return;
        }
    }
}

/// Publishes without waiting when the link takes it at once.
async fn publish(link: &Link, m: Outgoing) {
    if let Err(m) = link.try_publish(m) {
        let _ = link.publish(m).await;
    }
}
