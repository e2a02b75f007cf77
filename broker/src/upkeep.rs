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
    for n in 0u64.. {
        tick.tick().await;
        let Some(st) = st.upgrade() else { return };
        if *st.shutdown.borrow() {
            return;
        }
        if n % SWEEP_TICKS == 0 {
            end_expired(&st);
        }
        st.reclaim.run();
    }
}

/// Ends the persistent sessions that are over their expiry or the count limit.
pub(crate) fn end_expired(st: &BrokerState) {
    for session in st
        .sessions
        .expired(Instant::now(), st.config.max_persistent_sessions)
    {
        tracing::info!(client_id = %session.client_id, "persistent session ended (expired)");
        Metrics::inc(&st.metrics.sessions_expired);
        st.end_session(&session);
    }
}
