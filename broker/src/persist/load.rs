//! Filling the broker from the store at startup.
//!
//! Retained messages go through the same limits as live ones (the limits may have shrunk
//! since they were saved) and expire as they would have; persistent sessions get their
//! subscriptions back in the router and their waiting messages, and count as away since
//! they were saved. A record that cannot be read is logged and removed, never guessed at.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::record::{decode, unix_ms_now, StoredRetained, StoredSession};
use super::Store;
use crate::error::BrokerError;
use crate::hooks::ClientInfo;
use crate::sessions::{QueueLimits, Session};
use crate::state::BrokerState;
use crate::topic::parse_filter;

/// What was loaded: counts for the log, and the sessions as saved (client id -> (session
/// id, revision)) so the writer does not save them again unchanged.
pub(crate) struct Loaded {
    pub retained: usize,
    pub sessions: usize,
    pub saved: HashMap<String, (u64, u64)>,
}

pub(crate) fn load(store: &Store, st: &BrokerState) -> Result<Loaded, BrokerError> {
    let now = unix_ms_now();
    let retained = load_retained(store, st, now)?;
    let saved = load_sessions(store, st, now)?;
    Ok(Loaded {
        retained,
        sessions: saved.len(),
        saved,
    })
}

fn load_retained(store: &Store, st: &BrokerState, now: u64) -> Result<usize, BrokerError> {
    let mut retained = st.retained();
    let mut drop = Vec::new();
    // One shared name per client that stored messages.
    let mut owners: HashMap<String, Arc<str>> = HashMap::new();
    for item in store.retained.iter() {
        let (key, value) = item.map_err(|e| store.error(e))?;
        let restored = decode::<StoredRetained>(&value)
            .map_err(|e| format!("unreadable record: {e}"))
            .and_then(|r| {
                let owner = match owners.get(&r.owner) {
                    Some(o) => o.clone(),
                    None => owners
                        .entry(r.owner.clone())
                        .or_insert_with(|| r.owner.as_str().into())
                        .clone(),
                };
                retained
                    .restore(r.message.restore(now), owner)
                    .map_err(|why| format!("not restored: {why:?}"))
            });
        if let Err(why) = restored {
            tracing::warn!(topic = %String::from_utf8_lossy(&key), "retained message dropped at load: {why}");
            drop.push(key);
        }
    }
    for key in drop {
        store.retained.remove(key).map_err(|e| store.error(e))?;
    }
    Ok(retained.len())
}

fn load_sessions(
    store: &Store,
    st: &BrokerState,
    now: u64,
) -> Result<HashMap<String, (u64, u64)>, BrokerError> {
    let mut saved = HashMap::new();
    for item in store.sessions.iter() {
        let (key, value) = item.map_err(|e| store.error(e))?;
        match decode::<StoredSession>(&value) {
            Ok(record) => {
                let session = restore_session(st, record, now);
                let revision = session.lock().revision();
                saved.insert(session.key.clone(), (session.id, revision));
                st.sessions.restore(session);
            }
            Err(e) => {
                tracing::warn!(client_id = %String::from_utf8_lossy(&key), "persistent session dropped at load: unreadable record: {e}");
                store.sessions.remove(key).map_err(|e| store.error(e))?;
            }
        }
    }
    Ok(saved)
}

fn restore_session(st: &BrokerState, r: StoredSession, now: u64) -> Arc<Session> {
    let away_since = r.offline_since(now);
    let info = ClientInfo {
        client_id: r.client_id.clone(),
        username: r.username.clone(),
        anonymous_role: None,
        peer: None,
        protocol: r.protocol,
    };
    let limits = QueueLimits {
        messages: st.config.max_queued_messages,
        bytes: st.config.max_queued_bytes,
    };
    let session = Arc::new(Session::new(
        st.next_session_id(),
        info,
        true,
        Duration::from_secs(r.expiry_secs),
        limits,
    ));
    for (written, opts) in r.subs {
        match parse_filter(&written, &st.config) {
            Ok(filter) => st.restore_subscription(&session, filter, opts),
            Err(e) => {
                tracing::warn!(client_id = %r.client_id, filter = %written, "subscription dropped at load: {e}")
            }
        }
    }
    let mut state = session.lock();
    let in_flight = r.in_flight.into_iter().map(|d| d.restore(now)).collect();
    let queued = r.queued.into_iter().map(|d| d.restore(now)).collect();
    state.keep_unacknowledged(in_flight, queued);
    state.went_offline(away_since);
    drop(state);
    session
}
