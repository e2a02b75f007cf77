//! Broker counters, cheap enough to bump on every message (relaxed atomics), readable at
//! any time as a `MetricsSnapshot`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! metrics {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Live counters shared by every connection.
        #[derive(Debug, Default)]
        pub(crate) struct Metrics {
            $(pub(crate) $name: AtomicU64,)*
        }

        /// A point-in-time copy of the broker's counters.
        #[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
        pub struct MetricsSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Metrics {
            pub(crate) fn snapshot(&self) -> MetricsSnapshot {
                MetricsSnapshot { $($name: self.$name.load(Relaxed),)* }
            }
        }
    };
}

metrics! {
    /// Network connections accepted by a listener.
    connections_accepted,
    /// Network and in-process clients currently connected (CONNACK sent, not yet closed).
    clients_connected,
    /// CONNECTs refused (authentication, bad client id, unsupported protocol).
    connections_refused,
    /// Connections closed at accept: over `max_connections` (in all or per listener) or
    /// `max_connections_per_address`.
    limit_connections,
    /// Connections closed at accept: over `max_connects_per_second` for their address.
    limit_connect_rate,
    /// Connections closed for a protocol violation or malformed/oversized packet.
    protocol_errors,
    /// Connections closed because keep-alive expired.
    keep_alive_timeouts,
    /// Session takeovers (a client id connected again while connected).
    takeovers,
    /// Persistent sessions ended by their expiry.
    sessions_expired,
    /// Persistent sessions ended because more than `max_persistent_sessions` clients were
    /// away (the ones away longest go first).
    sessions_evicted,
    /// PUBLISH packets received from clients (network and in-process).
    publishes_received,
    /// PUBLISH packets delivered to subscribers.
    publishes_sent,
    /// Publishes that reached no subscriber.
    publishes_unrouted,
    /// Bytes read from network clients.
    bytes_received,
    /// Bytes written to network clients.
    bytes_sent,
    /// PUBLISHes and SUBSCRIBE filters refused by the authorization hook.
    not_authorized,
    /// Messages dropped because a subscriber's queue was full (slow subscriber).
    dropped_slow_subscriber,
    /// Messages dropped because their MQTT 5 message expiry passed before delivery.
    dropped_expired,
    /// Messages dropped because an absent persistent client's queue was full.
    dropped_offline_queue,
    /// Retained messages not stored (over a `max_retained_*` limit); still delivered.
    retained_refused,
    /// Subscriptions refused: over `max_subscriptions_per_client`.
    limit_subscriptions,
    /// Wills published.
    wills_published,
    /// Saves of retained messages and sessions that failed (retried at the next interval).
    persistence_errors,
}

impl Metrics {
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
    }
}
