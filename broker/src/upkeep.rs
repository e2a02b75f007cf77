//! The broker's background work: ending persistent sessions whose expiry has passed (or
//! beyond `max_persistent_sessions`), and publishing `$SYS` topics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use crate::state::BrokerState;

/// How often expired sessions are looked for.
const SWEEP: Duration = Duration::from_secs(5);

/// Starts the background tasks; they end with the broker.
pub(crate) fn start(st: &Arc<BrokerState>) {
    tokio::spawn(sweep(Arc::downgrade(st)));
    crate::sys::start(st);
}

async fn sweep(st: std::sync::Weak<BrokerState>) {
    let mut tick = tokio::time::interval(SWEEP);
    loop {
        tick.tick().await;
        let Some(st) = st.upgrade() else { return };
        if *st.shutdown.borrow() {
            return;
        }
        end_expired(&st);
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
