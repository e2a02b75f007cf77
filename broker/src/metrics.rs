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
    /// CONNECTs refused (authentication, bad client id, limits, unsupported protocol).
    connections_refused,
    /// Connections closed for a protocol violation or malformed/oversized packet.
    protocol_errors,
    /// Connections closed because keep-alive expired.
    keep_alive_timeouts,
    /// Session takeovers (a client id connected again while connected).
    takeovers,
    /// PUBLISH packets received from clients (network and in-process).
    publishes_received,
    /// PUBLISH packets delivered to subscribers.
    publishes_sent,
    /// PUBLISHes and SUBSCRIBE filters refused by the authorization hook.
    not_authorized,
    /// QoS 0 messages dropped because a subscriber's queue was full (slow subscriber).
    dropped_slow_subscriber,
    /// Messages lost inside the router because a subscriber fell behind the commit log.
    dropped_router_lag,
    /// Wills published.
    wills_published,
    /// Times a publisher waited for lagging subscribers (flow control).
    publisher_waits,
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
