//! The writer task: batch, apply, flush, then commit and publish in queue order.

use std::collections::HashMap;
use std::sync::Arc;

use hcore_client::protocol::commands::{Deleted, SetResult};
use hcore_client::protocol::{ReplyTo, RpcError, StateRecord};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::{effects, Flush, Job, Msg, StateWrite, Stores};
use crate::out::{reply_message, Publisher};
use crate::ratelog::RateLog;
use crate::state::{plan_delete, plan_set, Growth, Origin, Plan, StateRead};
use crate::storage::{StorageRead, Undo};

/// Most jobs per commit.
const MAX_BATCH: usize = 1024;

/// What one job leaves to do once the batch's flush is known to have succeeded (or not).
enum Step {
    /// A write's answer (and, for a state change, what to publish before it).
    Written {
        change: Option<Box<Change>>,
        reply: Option<ReplyTo>,
        outcome: Result<Value, RpcError>,
    },
    ReadState(StateRead, ReplyTo),
    ReadStorage(String, StorageRead, ReplyTo),
    Republish(oneshot::Sender<()>),
}

struct Change {
    key: String,
    old: Option<StateRecord>,
    new: Option<StateRecord>,
    origin: Origin,
}

/// One batch being applied.
#[derive(Default)]
struct Batch {
    steps: Vec<Step>,
    /// State as this batch has left it, over what is on disk.
    overlay: HashMap<String, Option<StateRecord>>,
    /// State keys and storage keys marked dirty by this batch's jobs.
    state_keys: Vec<String>,
    storage_keys: Vec<Vec<u8>>,
    storage_undo: Vec<Undo>,
    /// State changes in order: (key, record after the change).
    changes: Vec<(String, Option<StateRecord>)>,
    /// What `changes` add to the state's size (checked against its limits).
    growth: Growth,
    wrote: bool,
}

pub(super) async fn run(
    stores: Stores,
    out: Arc<dyn Publisher>,
    flush: Flush,
    mut rx: mpsc::Receiver<Msg>,
) {
    let mut stopped = None;
    // `/set` commands have nobody to answer: their refusals are logged.
    let ratelog = RateLog::default();
    while stopped.is_none() {
        let Some(first) = rx.recv().await else { break };
        let mut jobs = Vec::with_capacity(64);
        match first {
            Msg::Job(j) => jobs.push(*j),
            Msg::Stop(ack) => stopped = Some(ack),
        }
        while jobs.len() < MAX_BATCH && stopped.is_none() {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => jobs.push(*job),
                Ok(Msg::Stop(ack)) => stopped = Some(ack),
                Err(_) => break,
            }
        }
        let mut batch = Batch::default();
        for job in jobs {
            batch.apply(&stores, job, &ratelog);
        }
        let durable = if batch.wrote {
            let db = stores.db.clone();
            let flush = flush.clone();
            match tokio::task::spawn_blocking(move || flush(&db)).await {
                Ok(r) => r,
                Err(e) => Err(format!("flush task failed: {e}")),
            }
        } else {
            Ok(())
        };
        if let Err(e) = &durable {
            tracing::error!(error = %e, "database flush failed; the batch's writes are undone and answered as failed");
        }
        batch.settle(&stores, durable.is_ok());
        batch.publish(&stores, out.as_ref(), durable.err()).await;
    }
    drop(stores);
    if let Some(ack) = stopped {
        let _ = ack.send(());
    }
}

impl Batch {
    fn current(&self, stores: &Stores, key: &str) -> Option<StateRecord> {
        match self.overlay.get(key) {
            Some(r) => r.clone(),
            None => stores.state.lock().records.get(key).cloned(),
        }
    }

    fn apply(&mut self, stores: &Stores, job: Job, ratelog: &RateLog) {
        let step = match job {
            Job::State {
                key,
                write,
                origin,
                reply,
            } => {
                self.state_keys.push(key.clone());
                let command = reply.is_none().then(|| key.clone());
                let step = self.apply_state(stores, key, write, origin, reply);
                if let (
                    Some(key),
                    Step::Written {
                        outcome: Err(e), ..
                    },
                ) = (command, &step)
                {
                    ratelog.warn(&format!("state command on {key} not applied: {e}"));
                }
                step
            }
            Job::ReadState { read, reply } => Step::ReadState(read, reply),
            Job::Storage { ns, write, reply } => {
                self.storage_keys
                    .push(crate::storage::full_key(&ns, write.key()));
                let outcome = write.apply(&stores.storage, &ns).map(|(v, undo)| {
                    self.storage_undo.extend(undo);
                    v
                });
                self.wrote |= outcome.is_ok();
                Step::Written {
                    change: None,
                    reply: Some(reply),
                    outcome,
                }
            }
            Job::ReadStorage { ns, read, reply } => Step::ReadStorage(ns, read, reply),
            Job::Republish(done) => Step::Republish(done),
        };
        self.steps.push(step);
    }

    fn apply_state(
        &mut self,
        stores: &Stores,
        key: String,
        write: StateWrite,
        origin: Origin,
        reply: Option<ReplyTo>,
    ) -> Step {
        let current = self.current(stores, &key);
        let plan = match write {
            StateWrite::Set { value, expected } => {
                plan_set(&key, current.as_ref(), value, expected, &origin)
            }
            StateWrite::Delete { expected } => plan_delete(&key, current.as_ref(), expected),
        };
        let written = |outcome| Step::Written {
            change: None,
            reply: reply.clone(),
            outcome,
        };
        let (old, new) = match plan {
            Err(e) => return written(Err(e)),
            Ok(Plan::Unchanged { version }) => {
                return written(Ok(match version {
                    0 => json_of(&Deleted { deleted: false }),
                    v => json_of(&SetResult {
                        version: v,
                        changed: false,
                    }),
                }))
            }
            Ok(Plan::Change { old, new }) => (old, new),
        };
        let growth = Growth::of(&key, old.as_ref(), new.as_ref());
        if let Err(e) = stores.state.check_growth(self.growth, growth) {
            return written(Err(e));
        }
        let stored = match &new {
            Some(r) => stores
                .state
                .tree
                .insert(key.as_bytes(), serde_json::to_vec(r).unwrap_or_default())
                .map(|_| ()),
            None => stores.state.tree.remove(key.as_bytes()).map(|_| ()),
        };
        if let Err(e) = stored {
            return written(Err(RpcError::internal(format!("database: {e}"))));
        }
        self.wrote = true;
        self.growth = self.growth.add(growth);
        self.overlay.insert(key.clone(), new.clone());
        self.changes.push((key.clone(), new.clone()));
        let outcome = Ok(match &new {
            Some(r) => json_of(&SetResult {
                version: r.version,
                changed: true,
            }),
            None => json_of(&Deleted { deleted: true }),
        });
        Step::Written {
            change: Some(Box::new(Change {
                key,
                old,
                new,
                origin,
            })),
            reply,
            outcome,
        }
    }

    /// Makes the batch visible (durable) or takes it back (flush failed), and releases
    /// the dirty keys either way.
    fn settle(&mut self, stores: &Stores, durable: bool) {
        let changes = std::mem::take(&mut self.changes);
        if durable {
            stores.state.commit(changes, &self.state_keys);
        } else {
            stores.storage.undo(std::mem::take(&mut self.storage_undo));
            self.restore_state(stores, &changes);
            stores.state.commit(Vec::new(), &self.state_keys);
        }
        stores.storage.clear_dirty(&self.storage_keys);
    }

    /// Puts the acknowledged records back in the database for keys a failed batch wrote.
    fn restore_state(&self, stores: &Stores, changes: &[(String, Option<StateRecord>)]) {
        let inner = stores.state.lock();
        for (key, _) in changes {
            let restored = match inner.records.get(key) {
                Some(r) => stores
                    .state
                    .tree
                    .insert(key.as_bytes(), serde_json::to_vec(r).unwrap_or_default())
                    .map(|_| ()),
                None => stores.state.tree.remove(key.as_bytes()).map(|_| ()),
            };
            if let Err(e) = restored {
                tracing::error!(key, error = %e, "cannot undo a state write whose flush failed");
            }
        }
    }

    /// Publishes, in queue order, what each job produced.
    async fn publish(self, stores: &Stores, out: &dyn Publisher, failed: Option<String>) {
        for step in self.steps {
            match step {
                Step::Written {
                    change,
                    reply,
                    outcome,
                } => {
                    let outcome = match &failed {
                        Some(e) => Err(RpcError::internal(format!("write not durable: {e}"))),
                        None => outcome,
                    };
                    if let (Some(c), None) = (&change, &failed) {
                        let topics = &stores.topics;
                        out.publish(effects::record(topics, &c.key, c.new.as_ref()))
                            .await;
                        out.publish(effects::state_changed(
                            topics,
                            &c.key,
                            c.old.as_ref(),
                            c.new.as_ref(),
                            &c.origin,
                        ))
                        .await;
                    }
                    if let Some(to) = reply {
                        out.publish(reply_message(&to, outcome)).await;
                    }
                }
                Step::ReadState(read, to) => {
                    let outcome = read.answer(&stores.state.lock());
                    out.publish(reply_message(&to, outcome)).await;
                }
                Step::ReadStorage(ns, read, to) => {
                    let outcome = read.answer(&stores.storage, &ns);
                    out.publish(reply_message(&to, outcome)).await;
                }
                Step::Republish(done) => {
                    republish(stores, out).await;
                    let _ = done.send(());
                }
            }
        }
    }
}

async fn republish(stores: &Stores, out: &dyn Publisher) {
    let records: Vec<_> = {
        let inner = stores.state.lock();
        inner
            .records
            .iter()
            .map(|(k, r)| effects::record(&stores.topics, k, Some(r)))
            .collect()
    };
    tracing::info!(
        records = records.len(),
        "republishing state as retained messages"
    );
    for r in records {
        out.publish(r).await;
    }
}

fn json_of<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}
