//! hcore's embedded MQTT broker.
//!
//! A complete MQTT 3.1.1 and 5 broker on the caller's tokio runtime: its own accept loop
//! (TCP_NODELAY, limits per address), one port for both protocol versions (the CONNECT's
//! protocol level picks the codec; rumqttd's packet codecs decode, the broker encodes),
//! its own router (a subscription trie with shared groups, delivering on the publisher's
//! task into each subscriber's bounded outbox), retained messages and sessions (with
//! optional persistence), wills, every MQTT 5 feature hcore needs, `$SYS` topics,
//! authentication and authorization hooks, and in-process clients. It knows nothing of
//! hcore's own topics; the kernel adds those rules through the hooks.
//!
//! ```no_run
//! # async fn run() -> Result<(), hcore_broker::BrokerError> {
//! use hcore_broker::{Broker, BrokerConfig, LocalOptions, Message, QoS};
//! let broker = Broker::start(BrokerConfig::with_listener("127.0.0.1:0".parse().unwrap())).await?;
//! let (client, mut rx) = broker.local_client("kernel", LocalOptions::default()).await?;
//! client.subscribe("zigbee2mqtt/#", QoS::AtMostOnce).await?;
//! client.publish(Message::new("zigbee2mqtt/lamp", r#"{"state":"ON"}"#)).await?;
//! let msg = rx.recv().await;
//! broker.shutdown().await;
//! # Ok(()) }
//! ```

mod broker;
pub mod config;
mod connection;
mod endpoint;
mod error;
pub mod hooks;
mod limits;
mod listener;
mod local;
mod metrics;
mod persist;
mod reclaim;
mod retained;
mod router;
mod sessions;
mod state;
mod sys;
mod tasks;
mod tls;
pub mod topic;
mod transport;
mod types;
mod upkeep;
mod wills;
pub mod wire;

pub use broker::{Broker, BrokerHandle};
pub use config::{BrokerConfig, ListenerConfig};
pub use endpoint::local::LocalSink;
pub use error::BrokerError;
pub use hooks::{AllowAll, ClientInfo, ConnectInfo, ConnectRefusal, Hooks, PublishInfo};
pub use local::{LocalClient, LocalOptions, LocalReceiver};
pub use metrics::MetricsSnapshot;
pub use router::subscription::RetainHandling;
pub use types::{Message, Properties, Protocol, QoS};
