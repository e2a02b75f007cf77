//! The broker's background work: ending persistent sessions whose expiry has passed (or
//! beyond `max_persistent_sessions`), returning freed memory to the OS, and publishing
//! `$SYS` topics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use crate::state::BrokerState;

/// How often the upkeep runs (freed memory is returned this soon after clients leave).
const TICK: Duration = Duration::from_secs(1);

/// Expired sessions are looked for every this many ticks.
const SWEEP_TICKS: u64 = 5;

/// Starts the background tasks; they end with the broker.
pub(crate) fn start(st: &Arc<BrokerState>) {
    tokio::spawn(sweep(Arc::downgrade(st)));
    crate::sys::start(st);
}

async fn sweep(st: std::sync::Weak<BrokerState>) {
    let mut tick = tokio::time::interval(TICK);
    let mut evicted = 0;
    for n in 0u64.. {
        tick.tick().await;
        let Some(st) = st.upgrade() else { return };
        if *st.shutdown.borrow() {
            return;
        }
        if n % SWEEP_TICKS == 0 {
            end_expired(&st);
        }
        evicted = warn_evicted(&st, evicted);
        st.reclaim.run();
    }
}

/// One warning per tick for the persistent sessions the count bound ended (a flood of
/// abandoned sessions would otherwise flood the log); returns the count seen so far.
fn warn_evicted(st: &BrokerState, seen: u64) -> u64 {
    let now = st
        .metrics
        .sessions_evicted
        .load(std::sync::atomic::Ordering::Relaxed);
    if now > seen {
        tracing::warn!(
            ended = now - seen,
            max_persistent_sessions = st.config.max_persistent_sessions,
            "too many persistent sessions: ended the ones whose clients were away longest"
        );
    }
    now
}

/// Ends the persistent sessions that are over their expiry or the count limit.
pub(crate) fn end_expired(st: &BrokerState) {
    for session in st.sessions.expired(Instant::now()) {
        tracing::info!(session = ?session.key, "persistent session ended (expired)");
        Metrics::inc(&st.metrics.sessions_expired);
        st.end_session(&session);
    }
    for session in st.sessions.evict_beyond(st.config.max_persistent_sessions) {
        Metrics::inc(&st.metrics.sessions_evicted);
        st.end_session(&session);
    }
}
