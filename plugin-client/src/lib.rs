//! The hcore plugin SDK.
//!
//! One API whether a plugin runs on another machine (TCP, MQTT 5, reconnecting) or inside
//! the kernel's process (no TCP, feature `in-process`): connect with an id, publish events,
//! subscribe, provide methods, call methods, use state and storage, shut down. Everything
//! goes over MQTT as described in `docs/PROTOCOL.md`, so a plugin written in any other
//! language with an MQTT library interoperates with plugins written with this SDK.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hcore_client::ClientError> {
//! use hcore_client::{Client, ClientOptions};
//! use serde_json::json;
//!
//! let client = Client::connect("mqtt://127.0.0.1:1883", ClientOptions::new("greeter")).await?;
//! client
//!     .provide("greeter.hello", |call| async move {
//!         Ok(json!({ "greeting": format!("hello, {}", call.caller) }))
//!     })
//!     .await?;
//! let answer = client.call("greeter.hello", json!({})).await?;
//! client.state().set("greeter/last", answer).await?;
//! client.shutdown().await?;
//! # Ok(()) }
//! ```

mod announce;
mod client;
mod context;
mod error;
mod events;
mod handlers;
mod pending;
mod plugin;
pub mod protocol;
mod provide;
mod routes;
mod routing;
mod rpc;
mod state;
mod storage;
pub mod transport;

pub use async_trait::async_trait;
pub use client::{Announce, Client, ClientOptions, OnConnect};
pub use context::{current_parent, with_parent};
pub use error::ClientError;
pub use handlers::Call;
pub use plugin::{run_remote, shutdown_signal, Plugin, PluginError};
pub use protocol::commands::{CasResult, Item, Page, SetResult, StateItem};
pub use protocol::{ErrorCode, Manifest, RpcError};
pub use routes::{IncomingEvent, InlineHandler, Subscription};
pub use rpc::CallOptions;
pub use state::State;
pub use storage::Storage;
pub use transport::{Message, MqttVersion, Outgoing, TlsOptions};
