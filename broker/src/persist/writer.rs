//! The writer thread: every interval, saves the retained topics and persistent sessions
//! that changed, in one batch per tree and one flush; once more when it is stopped.
//!
//! It runs on its own thread because a flush blocks on the disk. A failed save is logged
//! and counted, and what it held is tried again at the next interval.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::record::{encode, unix_ms_now, StoredMessage, StoredRetained, StoredSession};
use super::Store;
use crate::metrics::Metrics;
use crate::state::BrokerState;

/// Retained topics looked up per hold of the store's lock.
const CHUNK: usize = 1024;

/// The running writer; dropping it stops the thread after a last save.
pub(crate) struct Writer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Sessions as last saved: client id -> (session id, revision).
type Saved = HashMap<String, (u64, u64)>;

impl Writer {
    pub fn start(store: Store, st: Arc<BrokerState>, interval: Duration, saved: Saved) -> Writer {
        let (stop, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("hcore-broker-persist".into())
            .spawn(move || run(store, st, interval, saved, rx))
            .expect("spawning the persistence thread");
        Writer {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops after a last save, and waits for it.
    pub async fn stop(mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }
}

fn run(
    store: Store,
    st: Arc<BrokerState>,
    interval: Duration,
    mut saved: Saved,
    rx: mpsc::Receiver<()>,
) {
    loop {
        let last = matches!(
            rx.recv_timeout(interval),
            Err(RecvTimeoutError::Disconnected)
        );
        if let Err(e) = save(&store, &st, &mut saved) {
            Metrics::inc(&st.metrics.persistence_errors);
            tracing::error!("saving retained messages and sessions failed (will retry): {e}");
        }
        if last {
            store.close();
            return;
        }
    }
}

fn save(store: &Store, st: &BrokerState, saved: &mut Saved) -> Result<(), sled::Error> {
    let now = unix_ms_now();
    let topics = st.retained().take_changed();
    let retained = retained_batch(st, &topics, now);
    let (sessions, updated, removed) = sessions_batch(st, saved, now);
    let result = store
        .retained
        .apply_batch(retained)
        .and_then(|()| store.sessions.apply_batch(sessions))
        .and_then(|()| store.db.flush().map(|_| ()));
    match result {
        Ok(()) => {
            saved.extend(updated);
            for id in removed {
                saved.remove(&id);
            }
            Ok(())
        }
        Err(e) => {
            st.retained().mark_changed(topics);
            Err(e)
        }
    }
}

fn retained_batch(st: &BrokerState, topics: &[String], now: u64) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for chunk in topics.chunks(CHUNK) {
        let entries: Vec<_> = {
            let store = st.retained();
            chunk.iter().map(|t| store.entry(t)).collect()
        };
        for (topic, entry) in chunk.iter().zip(entries) {
            match entry {
                Some((p, owner)) => batch.insert(
                    topic.as_bytes(),
                    encode(&StoredRetained {
                        message: StoredMessage::of(&p, now),
                        owner: owner.to_string(),
                    }),
                ),
                None => batch.remove(topic.as_bytes()),
            }
        }
    }
    batch
}

/// The persistent sessions that changed since saved (and the ones gone): the batch, the
/// new saved revisions, the client ids removed.
fn sessions_batch(st: &BrokerState, saved: &Saved, now: u64) -> (sled::Batch, Saved, Vec<String>) {
    let mut batch = sled::Batch::default();
    let mut updated = Saved::new();
    let mut present = HashSet::new();
    for session in st.sessions.all() {
        let state = session.lock();
        if !state.persistent {
            continue;
        }
        let id = &session.key;
        present.insert(id.clone());
        let version = (session.id, state.revision());
        if saved.get(id) != Some(&version) {
            batch.insert(id.as_bytes(), encode(&StoredSession::of(&state, now)));
            updated.insert(id.clone(), version);
        }
    }
    let removed: Vec<String> = saved
        .keys()
        .filter(|id| !present.contains(*id))
        .cloned()
        .collect();
    for id in &removed {
        batch.remove(id.as_bytes());
    }
    (batch, updated, removed)
}
