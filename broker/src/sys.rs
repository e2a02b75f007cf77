//! `$SYS/broker/...`: the broker's state, published retained every `sys_interval_secs`,
//! named like mosquitto's so existing dashboards and `mosquitto_sub -t '$SYS/#'` work.
//! Wildcard subscriptions (`#`) never see them (MQTT 4.7.2); `$SYS/#` does.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::Touched;
use crate::router::publication::Publication;
use crate::state::BrokerState;
use crate::types::Message;

pub(crate) fn start(st: &Arc<BrokerState>) {
    let interval = st.config.sys_interval_secs;
    if interval == 0 {
        return;
    }
    let weak = Arc::downgrade(st);
    tokio::spawn(async move {
        let every = Duration::from_secs(interval);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            tick.tick().await;
            let Some(st) = weak.upgrade() else { return };
            if *st.shutdown.borrow() {
                return;
            }
            publish(&st);
        }
    });
}

/// The topics and their values now.
pub(crate) fn snapshot(st: &BrokerState) -> Vec<(&'static str, String)> {
    let m = &st.metrics;
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Relaxed);
    let (sessions, persistent) = st.sessions.counts();
    let dropped =
        n(&m.dropped_slow_subscriber) + n(&m.dropped_expired) + n(&m.dropped_offline_queue);
    let counts: [(&'static str, u64); 15] = [
        ("$SYS/broker/clients/connected", n(&m.clients_connected)),
        ("$SYS/broker/clients/total", sessions as u64),
        ("$SYS/broker/clients/persistent", persistent as u64),
        ("$SYS/broker/messages/received", n(&m.publishes_received)),
        ("$SYS/broker/messages/sent", n(&m.publishes_sent)),
        ("$SYS/broker/bytes/received", n(&m.bytes_received)),
        ("$SYS/broker/bytes/sent", n(&m.bytes_sent)),
        (
            "$SYS/broker/retained messages/count",
            st.retained_count() as u64,
        ),
        (
            "$SYS/broker/subscriptions/count",
            st.router.filters() as u64,
        ),
        ("$SYS/broker/messages/dropped", dropped),
        (
            "$SYS/broker/messages/dropped/slow_subscriber",
            n(&m.dropped_slow_subscriber),
        ),
        (
            "$SYS/broker/messages/dropped/expired",
            n(&m.dropped_expired),
        ),
        (
            "$SYS/broker/messages/dropped/offline_queue",
            n(&m.dropped_offline_queue),
        ),
        ("$SYS/broker/connections/refused", n(&m.connections_refused)),
        (
            "$SYS/broker/connections/limited",
            n(&m.limit_connections) + n(&m.limit_connect_rate),
        ),
    ];
    let mut out = vec![
        (
            "$SYS/broker/version",
            format!("hcore {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "$SYS/broker/uptime",
            format!("{} seconds", st.started.elapsed().as_secs()),
        ),
    ];
    out.extend(counts.into_iter().map(|(t, v)| (t, v.to_string())));
    out
}

fn publish(st: &BrokerState) {
    let mut touched = Touched::default();
    for (topic, value) in snapshot(st) {
        let message = Message::new(topic, value).retained(true);
        let _ = st.publish(Publication::new(message, 0), "$SYS", &mut touched);
    }
}
