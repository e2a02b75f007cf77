//! The plugin's running part: source messages are read in line (parsed, merged into the
//! registry; nothing waits on the network), and three tasks act on what changed: the
//! state writer (each changed device's `devices/<id>` record, coalesced, so a burst
//! never queues more than one write per device), the effects task (events and storage,
//! through a bounded queue), and `devices.set` waiters, woken by the report that
//! confirms them.

use std::sync::{Arc, Mutex, MutexGuard};

use hcore_client::{with_parent, Client, InlineHandler, Message};
use serde_json::{json, Map, Value};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::registry::{Changes, Known, Registry};
use crate::sources::Sources;

/// Events and storage writes waiting; beyond this they are dropped (and logged).
const EFFECTS_QUEUE: usize = 10_000;
/// `devices.set` calls waiting for confirmation at once.
pub const MAX_WAITERS: usize = 1000;

pub enum Effect {
    Event(&'static str, Value),
    Store(String, Option<Box<Known>>),
    /// A topic discovery named (a Home Assistant entity's state topic).
    Subscribe(String),
    /// A topic no discovered entity reads any more.
    Unsubscribe(String),
}

pub struct Waiter {
    pub id: String,
    pub wanted: Map<String, Value>,
    pub done: oneshot::Sender<()>,
}

pub struct Core {
    pub registry: Mutex<Registry>,
    sources: Mutex<Sources>,
    pub waiters: Mutex<Vec<Waiter>>,
    dirty: Arc<Notify>,
    effects: mpsc::Sender<Effect>,
    pub confirm_timeout_ms: u64,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Core {
    /// The core and its tasks on `client`.
    pub fn start(
        client: &Client,
        registry: Registry,
        sources: Sources,
        confirm_timeout_ms: u64,
    ) -> Arc<Core> {
        let (effects, rx) = mpsc::channel(EFFECTS_QUEUE);
        let core = Arc::new(Core {
            registry: Mutex::new(registry),
            sources: Mutex::new(sources),
            waiters: Mutex::new(Vec::new()),
            dirty: Arc::new(Notify::new()),
            effects,
            confirm_timeout_ms,
        });
        tokio::spawn(write_state(
            client.clone(),
            Arc::downgrade(&core),
            core.dirty.clone(),
        ));
        let weak = Arc::downgrade(&core);
        let handler: InlineHandler = Arc::new(move |m| {
            if let Some(core) = weak.upgrade() {
                core.on_message(m);
            }
        });
        tokio::spawn(apply_effects(client.clone(), rx, handler));
        core.dirty.notify_one();
        core
    }

    /// Writes the records not written yet (the plugin is stopping).
    pub async fn flush(&self, client: &Client) {
        let batch = lock(&self.registry).take_dirty();
        write_batch(client, batch).await;
    }

    /// One message from a source topic.
    pub fn on_message(&self, m: &Message) {
        let parsed = lock(&self.sources).parse(&m.topic, &m.payload);
        for topic in parsed.subscribe {
            self.effect(Effect::Subscribe(topic));
        }
        for topic in parsed.unsubscribe {
            self.effect(Effect::Unsubscribe(topic));
        }
        let updates = parsed.updates;
        if updates.is_empty() {
            return;
        }
        let mut changes = Changes::default();
        let stored = {
            let mut reg = lock(&self.registry);
            reg.apply(updates, &m.topic, &mut changes);
            let mut stored: Vec<(String, Option<Known>)> = changes
                .described
                .iter()
                .chain(&changes.added)
                .map(|id| (id.clone(), reg.known(id).cloned()))
                .collect();
            stored.extend(changes.removed.iter().map(|id| (id.clone(), None)));
            self.confirm(&reg, &changes.reported);
            stored
        };
        if !changes.reported.is_empty() || !changes.availability.is_empty() {
            self.dirty.notify_one();
        }
        for (id, known) in stored {
            self.effect(Effect::Store(id, known.map(Box::new)));
        }
        for id in changes.added {
            self.effect(Effect::Event("added", json!({ "id": id })));
        }
        for id in changes.removed {
            self.effect(Effect::Event("removed", json!({ "id": id })));
        }
        for (id, state) in changes.availability {
            self.effect(Effect::Event(
                "availability",
                json!({ "id": id, "availability": state }),
            ));
        }
    }

    fn effect(&self, e: Effect) {
        if self.effects.try_send(e).is_err() {
            tracing::warn!("devices: effects queue full; an event or storage write was dropped");
        }
    }

    /// Wakes the `devices.set` calls a report confirmed.
    fn confirm(&self, reg: &Registry, reported: &[String]) {
        let mut waiters = lock(&self.waiters);
        if waiters.is_empty() {
            return;
        }
        let mut i = 0;
        while i < waiters.len() {
            let w = &waiters[i];
            let shows = reported.contains(&w.id)
                && reg
                    .reported(&w.id)
                    .is_some_and(|r| w.wanted.iter().all(|(k, v)| same(r.get(k), v)));
            if shows {
                let w = waiters.swap_remove(i);
                let _ = w.done.send(());
            } else {
                i += 1;
            }
        }
    }
}

/// Does a reported value show the wanted one? Strings ignore case (`on`/`ON`), numbers
/// allow the device's rounding (within 1).
fn same(reported: Option<&Value>, wanted: &Value) -> bool {
    match (reported, wanted) {
        (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
        (Some(a), b) if a.is_number() && b.is_number() => {
            (a.as_f64().unwrap_or(f64::NAN) - b.as_f64().unwrap_or(f64::NAN)).abs() <= 1.0
        }
        (Some(a), b) => a == b,
        (None, _) => false,
    }
}

/// Writes each changed device's record until the core is gone.
async fn write_state(client: Client, core: std::sync::Weak<Core>, dirty: Arc<Notify>) {
    loop {
        let Some(c) = core.upgrade() else { return };
        let batch = lock(&c.registry).take_dirty();
        drop(c);
        if batch.is_empty() {
            dirty.notified().await;
            continue;
        }
        write_batch(&client, batch).await;
    }
}

async fn write_batch(client: &Client, batch: Vec<(String, crate::model::DeviceState)>) {
    for (id, state) in batch {
        // The state change names the device's message as its cause.
        let parent = state.source_topic.as_ref().map(|t| format!("mqtt:{t}"));
        let value = serde_json::to_value(&state).unwrap_or(Value::Null);
        let key = format!("devices/{id}");
        if let Err(e) = with_parent(parent, client.state().set(&key, value)).await {
            tracing::warn!(device = id, "cannot write {key}: {e}");
        }
    }
}

async fn apply_effects(client: Client, mut rx: mpsc::Receiver<Effect>, handler: InlineHandler) {
    while let Some(e) = rx.recv().await {
        let outcome = match e {
            Effect::Event(name, data) => client.publish_event(name, data).await.map(|_| ()),
            Effect::Store(id, Some(known)) => {
                client
                    .storage()
                    .set(
                        &format!("device/{id}"),
                        serde_json::to_value(known).unwrap_or(Value::Null),
                    )
                    .await
            }
            Effect::Store(id, None) => client
                .storage()
                .delete(&format!("device/{id}"))
                .await
                .map(|_| ()),
            Effect::Subscribe(topic) => client.subscribe_inline(&topic, handler.clone()).await,
            Effect::Unsubscribe(topic) => client.unsubscribe(&topic).await,
        };
        if let Err(e) = outcome {
            tracing::warn!("devices: {e}");
        }
    }
}
