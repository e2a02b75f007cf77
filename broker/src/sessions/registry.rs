//! Which session keys are connected and which sessions exist.
//!
//! Takeover: a second connection with a session key asks the first one to close (without
//! its will: the client is demonstrably alive), waits until it has cleaned up, and only
//! then takes the session. Sessions: a clean one ends with its connection; a persistent
//! one stays (with its subscriptions and offline queue) until its client comes back or
//! its expiry passes. At most `max_persistent` persistent sessions are kept: beyond that
//! the one whose client has been away longest is ended (logged and counted).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::session::Session;

/// How long a new connection waits for the one it takes over to close.
const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

struct Claim {
    generation: u64,
    kill: Option<oneshot::Sender<()>>,
    done: Option<oneshot::Receiver<()>>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Claim>,
    next_generation: u64,
    /// Wills waiting for their MQTT 5 will delay, cancelled if the client comes back.
    delayed_wills: HashMap<String, tokio::task::AbortHandle>,
    /// Every session, connected or not.
    sessions: HashMap<String, Arc<Session>>,
    /// Persistent sessions in the order their clients went away, as (session id, client
    /// id); entries of sessions that resumed or ended since are dropped when it is
    /// compacted (each time it grows past the limit).
    away: VecDeque<(u64, String)>,
}

impl Inner {
    /// Is this entry of `away` still a session whose client is away?
    fn is_away(&self, id: u64, key: &str) -> bool {
        self.sessions
            .get(key)
            .is_some_and(|s| s.id == id && s.lock().offline_since().is_some())
    }

    /// Ends the sessions away longest while more than `max` are away; returns them.
    fn evict_beyond(&mut self, max: usize) -> Vec<Arc<Session>> {
        let mut evicted = Vec::new();
        if self.away.len() <= max {
            return evicted;
        }
        // Keep each session still away once, at its latest position (a client that came
        // back and left again has an older, stale entry too).
        let away = std::mem::take(&mut self.away);
        let mut seen = std::collections::HashSet::new();
        let mut kept: Vec<(u64, String)> = away
            .into_iter()
            .rev()
            .filter(|(id, c)| seen.insert(*id) && self.is_away(*id, c))
            .collect();
        kept.reverse();
        self.away = kept.into();
        while self.away.len() > max {
            let Some((_, key)) = self.away.pop_front() else {
                break;
            };
            if let Some(s) = self.sessions.remove(&key) {
                evicted.push(s);
            }
        }
        self.away.shrink_to(max.saturating_mul(2));
        evicted
    }
}

/// The registry.
#[derive(Default)]
pub(crate) struct Sessions {
    inner: Mutex<Inner>,
}

/// Held by a live connection; dropping it tells a waiting successor that this connection
/// has finished its cleanup.
pub(crate) struct SessionClaim {
    pub key: String,
    pub generation: u64,
    /// Fires when a newer connection with the same session key takes this one over.
    kill: Option<oneshot::Receiver<()>>,
    _done: oneshot::Sender<()>,
}

impl SessionClaim {
    /// The takeover signal: resolves when a newer connection with this session key asks this
    /// one to close. Can be taken once.
    pub fn take_kill(&mut self) -> oneshot::Receiver<()> {
        self.kill.take().unwrap_or_else(|| oneshot::channel().1)
    }
}

/// What opening a session found.
pub(crate) struct Opened {
    pub session: Arc<Session>,
    /// An existing persistent session was resumed.
    pub resumed: bool,
    /// A session replaced by a clean start (its subscriptions must be removed).
    pub replaced: Option<Arc<Session>>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `key` as live, taking over (and waiting for) a previous connection.
    /// Returns the claim and whether a takeover happened.
    pub async fn claim(&self, key: &str) -> (SessionClaim, bool) {
        let (kill_tx, kill_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let (generation, previous) = {
            let mut inner = self.lock();
            inner.next_generation += 1;
            let generation = inner.next_generation;
            let previous = inner.live.insert(
                key.to_string(),
                Claim {
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
                        session = ?key,
                        "previous connection did not close within 5 s; continuing takeover"
                    );
                }
            }
        }
        let claim = SessionClaim {
            key: key.to_string(),
            generation,
            kill: Some(kill_rx),
            _done: done_tx,
        };
        (claim, took_over)
    }

    /// Removes the claim if it still belongs to `claim` (not to a successor).
    pub fn release(&self, claim: &SessionClaim) {
        let mut inner = self.lock();
        if inner
            .live
            .get(&claim.key)
            .is_some_and(|e| e.generation == claim.generation)
        {
            inner.live.remove(&claim.key);
            shrink(&mut inner.live);
        }
    }

    /// Is some connection with this session key live now?
    pub fn is_live(&self, key: &str) -> bool {
        self.lock().live.contains_key(key)
    }

    /// The session for a connection that holds the claim on `key`: the existing one
    /// when it is persistent and the client does not start clean, else `make()`'s.
    pub fn open(&self, key: &str, clean_start: bool, make: impl FnOnce() -> Session) -> Opened {
        let mut inner = self.lock();
        if !clean_start {
            if let Some(s) = inner.sessions.get(key) {
                if s.lock().persistent {
                    return Opened {
                        session: s.clone(),
                        resumed: true,
                        replaced: None,
                    };
                }
            }
        }
        let session = Arc::new(make());
        let replaced = inner.sessions.insert(key.to_string(), session.clone());
        Opened {
            session,
            resumed: false,
            replaced,
        }
    }

    /// The session's client went away: a clean session ends; a persistent one stays, and
    /// if more than `max_away` persistent sessions are now away, the ones away longest end.
    /// Returns the sessions that ended (to remove their subscriptions) and how many of them
    /// were persistent sessions pushed out by the bound.
    pub fn close(&self, session: &Arc<Session>, max_away: usize) -> (Vec<Arc<Session>>, usize) {
        let persistent = {
            let mut state = session.lock();
            state.went_offline(Instant::now());
            state.persistent
        };
        if !persistent {
            return (self.forget(session).into_iter().collect(), 0);
        }
        let mut inner = self.lock();
        inner.away.push_back((session.id, session.key.clone()));
        let evicted = inner.evict_beyond(max_away);
        let n = evicted.len();
        (evicted, n)
    }

    /// Removes `session` if it is still the one registered for its session key.
    pub fn forget(&self, session: &Arc<Session>) -> Option<Arc<Session>> {
        let mut inner = self.lock();
        let current = inner.sessions.get(&session.key)?;
        if !Arc::ptr_eq(current, session) {
            return None;
        }
        let removed = inner.sessions.remove(&session.key);
        shrink(&mut inner.sessions);
        removed
    }

    /// Persistent sessions whose client has been away past their expiry: removed and
    /// returned (to tear down).
    pub fn expired(&self, now: Instant) -> Vec<Arc<Session>> {
        let mut inner = self.lock();
        let past: Vec<String> = inner
            .sessions
            .values()
            .filter(|s| {
                let state = s.lock();
                state
                    .offline_since()
                    .is_some_and(|since| now.saturating_duration_since(since) >= state.expiry)
            })
            .map(|s| s.key.clone())
            .collect();
        let out = past
            .iter()
            .filter_map(|id| inner.sessions.remove(id))
            .collect();
        shrink(&mut inner.sessions);
        out
    }

    /// Ends the persistent sessions away longest while more than `max_away` are away
    /// (after a restart with a lower limit); returns them.
    pub fn evict_beyond(&self, max_away: usize) -> Vec<Arc<Session>> {
        self.lock().evict_beyond(max_away)
    }

    /// Every session kept (connected or not).
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().sessions.values().cloned().collect()
    }

    /// Adds a session restored from disk (before any client connects).
    pub fn restore(&self, session: Arc<Session>) {
        let mut inner = self.lock();
        inner.away.push_back((session.id, session.key.clone()));
        inner.sessions.insert(session.key.clone(), session);
    }

    /// Sessions kept (connected or not), and how many of them are persistent.
    pub fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        let persistent = inner
            .sessions
            .values()
            .filter(|s| s.lock().persistent)
            .count();
        (inner.sessions.len(), persistent)
    }

    /// Registers a will waiting for its delay; replaces (and aborts) an older one.
    pub fn schedule_will(&self, key: &str, task: tokio::task::AbortHandle) {
        if let Some(old) = self.lock().delayed_wills.insert(key.to_string(), task) {
            old.abort();
        }
    }

    /// A client with this id connected again: its delayed will must not fire.
    pub fn cancel_delayed_will(&self, key: &str) {
        if let Some(task) = self.lock().delayed_wills.remove(key) {
            task.abort();
        }
    }

    /// The delayed will fired; forget its handle.
    pub fn delayed_will_done(&self, key: &str) {
        self.lock().delayed_wills.remove(key);
    }
}

/// Gives back the memory of a map that once held many more entries.
fn shrink<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) {
    if m.capacity() > 64 && m.len() < m.capacity() / 4 {
        m.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
