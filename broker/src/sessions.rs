//! Which client ids are connected, so that a second connection with the same id takes the
//! first one over cleanly.
//!
//! rumqttd handles takeover inside the router by dropping the old link and reusing its
//! connection id for the new one at once; the old connection's cleanup then races the new
//! connection (rumqttd defect: the old cleanup consumes the new connection's will). Here the
//! edge does it first: the new connection asks the old one to close (without its will,
//! because the client is alive), waits until it has left the router, and only then opens
//! its own link. Router ids are escaped client ids (`router_id`), so any UTF-8 id works.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::connection::outbox::EdgeMsg;
use crate::subs::Subscriptions;

/// What the edge keeps of a persistent session while its client is offline (the router
/// keeps the rest: its filters' read positions).
#[derive(Default)]
pub(crate) struct SavedSession {
    pub subs: Subscriptions,
    /// QoS 1/2 messages sent or queued but not acknowledged, re-sent on resume.
    pub unacked: Vec<EdgeMsg>,
}

/// How long a new connection waits for the one it takes over to close.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

struct Entry {
    generation: u64,
    kill: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

/// The registry of live client ids.
#[derive(Default)]
pub(crate) struct Sessions {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Entry>,
    next_generation: u64,
    /// Wills waiting for their MQTT 5 will delay, cancelled if the client comes back.
    delayed_wills: HashMap<String, tokio::task::AbortHandle>,
    /// Persistent sessions whose client is offline.
    saved: HashMap<String, SavedSession>,
}

/// Held by a live connection; dropping it tells a waiting successor that this connection
/// has finished its cleanup.
pub(crate) struct SessionClaim {
    pub client_id: String,
    pub generation: u64,
    /// Fires when a newer connection with the same client id takes this one over.
    kill: Option<oneshot::Receiver<()>>,
    _done: oneshot::Sender<()>,
}

impl SessionClaim {
    /// The takeover signal: resolves when a newer connection with this client id asks this
    /// one to close. Can be taken once.
    pub fn take_kill(&mut self) -> oneshot::Receiver<()> {
        self.kill.take().unwrap_or_else(|| oneshot::channel().1)
    }
}

impl Sessions {
    /// Registers `client_id` as live, taking over (and waiting for) a previous connection.
    /// Returns the claim and whether a takeover happened.
    pub async fn claim(&self, client_id: &str) -> (SessionClaim, bool) {
        let (kill_tx, kill_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let (generation, previous) = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.next_generation += 1;
            let generation = inner.next_generation;
            let previous = inner.live.insert(
                client_id.to_string(),
                Entry {
                    generation,
                    kill: Some(kill_tx),
                    done: Some(done_rx),
                },
            );
            (generation, previous)
        };
        let took_over = previous.is_some();
        if let Some(mut old) = previous {
            if let Some(kill) = old.kill.take() {
                let _ = kill.send(());
            }
            if let Some(done) = old.done.take() {
                if tokio::time::timeout(TAKEOVER_WAIT, done).await.is_err() {
                    tracing::warn!(
                        client_id,
                        "previous connection did not close within 5 s; continuing takeover"
                    );
                }
            }
        }
        let claim = SessionClaim {
            client_id: client_id.to_string(),
            generation,
            kill: Some(kill_rx),
            _done: done_tx,
        };
        (claim, took_over)
    }

    /// Removes the entry if it still belongs to `claim` (not to a successor).
    pub fn release(&self, claim: &SessionClaim) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner
            .live
            .get(&claim.client_id)
            .is_some_and(|e| e.generation == claim.generation)
        {
            inner.live.remove(&claim.client_id);
        }
    }

    /// Is some connection with this client id live now?
    pub fn is_live(&self, client_id: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.live.contains_key(client_id)
    }

    /// Registers a will waiting for its delay; replaces (and aborts) an older one.
    pub fn schedule_will(&self, client_id: &str, task: tokio::task::AbortHandle) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = inner.delayed_wills.insert(client_id.to_string(), task) {
            old.abort();
        }
    }

    /// A client with this id connected again: its delayed will must not fire.
    pub fn cancel_delayed_will(&self, client_id: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = inner.delayed_wills.remove(client_id) {
            task.abort();
        }
    }

    /// The delayed will fired; forget its handle.
    pub fn delayed_will_done(&self, client_id: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.delayed_wills.remove(client_id);
    }

    /// Keeps a persistent session while its client is offline.
    pub fn save(&self, client_id: &str, session: SavedSession) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.saved.insert(client_id.to_string(), session);
    }

    /// Takes a saved session (persistent reconnect) or discards it (clean start).
    pub fn take_saved(&self, client_id: &str) -> Option<SavedSession> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.saved.remove(client_id)
    }
}

/// The id a client gets inside rumqttd's router. The router refuses ids containing
/// `+ # $ /`; escaping them (and `%`) as `%XX` keeps every client id usable and distinct.
/// Internal links use ids starting with `%%`, which no escaped client id can produce.
pub(crate) fn router_id(client_id: &str) -> String {
    let mut out = String::with_capacity(client_id.len());
    for c in client_id.chars() {
        match c {
            '+' | '#' | '$' | '/' | '%' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_ids_are_escaped_and_distinct() {
        assert_eq!(router_id("plain-id_1"), "plain-id_1");
        assert_eq!(router_id("a/b"), "a%2Fb");
        assert_eq!(router_id("a%2Fb"), "a%252Fb");
        assert_eq!(router_id("$x+#"), "%24x%2B%23");
        assert!(!router_id("%%x").starts_with("%%"));
    }

    #[tokio::test]
    async fn takeover_waits_for_previous_claim() {
        let sessions = std::sync::Arc::new(Sessions::default());
        let (first, took) = sessions.claim("c").await;
        assert!(!took);
        let s2 = sessions.clone();
        let second = tokio::spawn(async move { s2.claim("c").await });
        // The first connection is told to close, cleans up, then releases.
        let mut first = first;
        first.take_kill().await.unwrap();
        drop(first);
        let (second, took) = second.await.unwrap();
        assert!(took);
        assert!(sessions.is_live("c"));
        sessions.release(&second);
        assert!(!sessions.is_live("c"));
    }
}
