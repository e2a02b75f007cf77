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
    let (sessions, persistent) = st.sessions.counts();
    let dropped = m.dropped_slow_subscriber.load(Relaxed)
        + m.dropped_expired.load(Relaxed)
        + m.dropped_offline_queue.load(Relaxed);
    vec![
        (
            "$SYS/broker/version",
            format!("hcore {}", env!("CARGO_PKG_VERSION")),
        ),
        (
            "$SYS/broker/uptime",
            format!("{} seconds", st.started.elapsed().as_secs()),
        ),
        (
            "$SYS/broker/clients/connected",
            m.clients_connected.load(Relaxed).to_string(),
        ),
        ("$SYS/broker/clients/total", sessions.to_string()),
        ("$SYS/broker/clients/persistent", persistent.to_string()),
        (
            "$SYS/broker/messages/received",
            m.publishes_received.load(Relaxed).to_string(),
        ),
        (
            "$SYS/broker/messages/sent",
            m.publishes_sent.load(Relaxed).to_string(),
        ),
        (
            "$SYS/broker/bytes/received",
            m.bytes_received.load(Relaxed).to_string(),
        ),
        (
            "$SYS/broker/bytes/sent",
            m.bytes_sent.load(Relaxed).to_string(),
        ),
        (
            "$SYS/broker/retained messages/count",
            st.retained_count().to_string(),
        ),
        (
            "$SYS/broker/subscriptions/count",
            st.router.filters().to_string(),
        ),
        ("$SYS/broker/messages/dropped", dropped.to_string()),
        (
            "$SYS/broker/messages/dropped/slow_subscriber",
            m.dropped_slow_subscriber.load(Relaxed).to_string(),
        ),
        (
            "$SYS/broker/messages/dropped/expired",
            m.dropped_expired.load(Relaxed).to_string(),
        ),
        (
            "$SYS/broker/messages/dropped/offline_queue",
            m.dropped_offline_queue.load(Relaxed).to_string(),
        ),
        (
            "$SYS/broker/connections/refused",
            m.connections_refused.load(Relaxed).to_string(),
        ),
        (
            "$SYS/broker/connections/limited",
            (m.limit_connections.load(Relaxed) + m.limit_connect_rate.load(Relaxed)).to_string(),
        ),
    ]
}

fn publish(st: &BrokerState) {
    let mut touched = Touched::default();
    for (topic, value) in snapshot(st) {
        let message = Message::new(topic, value).retained(true);
        let _ = st.publish(Publication::new(message, 0), "$SYS", &mut touched);
    }
}
