//! hcore's embedded MQTT broker.
//!
//! rumqttd's router does the routing; this crate is the network edge in front of it: its
//! own accept loop (TCP_NODELAY on every socket), one port for MQTT 3.1.1 and 5 (the
//! CONNECT's protocol level picks the codec), keep-alive that counts only incoming packets,
//! wills owned by the edge, retained messages owned by the edge, authentication and
//! authorization hooks, bounded per-connection queues with counted drops, and in-process
//! clients. `docs/ARCHITECTURE.md` lists each rumqttd defect worked around and the test
//! that proves it.
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
mod direct;
mod error;
mod gaps;
pub mod hooks;
mod listener;
mod local;
mod metrics;
mod pressure;
mod retained;
mod router;
mod sessions;
mod state;
mod subs;
mod tasks;
pub mod topic;
mod types;
mod wills;
pub mod wire;

pub use broker::{Broker, BrokerHandle};
pub use config::{BrokerConfig, ListenerConfig, RouterSettings};
pub use direct::LocalSink;
pub use error::BrokerError;
pub use hooks::{AllowAll, ClientInfo, ConnectInfo, ConnectRefusal, Hooks};
pub use local::{LocalClient, LocalOptions, LocalReceiver};
pub use metrics::MetricsSnapshot;
pub use types::{Message, Properties, Protocol, QoS};
