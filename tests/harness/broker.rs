//! hcore's broker on its own, on a free port: start it, watch its metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hcore_broker::{Broker, BrokerConfig, Hooks};

pub use crate::clients::*;
pub use crate::mosquitto::{
    lines_of, mosquitto_pub, mosquitto_sub, next_line, require_mosquitto_clients, Lines,
};
pub use crate::wire::*;
pub use crate::{eventually, free_port, init_tracing, TempDir, WAIT};

pub fn test_config() -> BrokerConfig {
    BrokerConfig::with_listener("127.0.0.1:0".parse().unwrap())
}

pub async fn start() -> Broker {
    start_with(test_config(), None).await
}

pub async fn start_with(config: BrokerConfig, hooks: Option<Arc<dyn Hooks>>) -> Broker {
    init_tracing();
    match hooks {
        Some(h) => Broker::start_with_hooks(config, h).await.unwrap(),
        None => Broker::start(config).await.unwrap(),
    }
}

pub fn addr(b: &Broker) -> SocketAddr {
    b.local_addrs()[0]
}

/// Waits until `n` clients are connected (CONNACK sent).
pub async fn wait_clients(b: &hcore_broker::BrokerHandle, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while b.metrics().clients_connected < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "clients did not connect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until a metric reaches a value.
pub async fn wait_metric(
    b: &hcore_broker::BrokerHandle,
    what: impl Fn(&hcore_broker::MetricsSnapshot) -> bool,
) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !what(&b.metrics()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "metric did not reach the expected value: {:?}",
            b.metrics()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
