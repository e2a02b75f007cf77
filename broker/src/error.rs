//! The broker crate's error type.

use std::net::SocketAddr;

/// Errors the broker reports to its embedder.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The configuration is invalid; the message says which key and why.
    #[error("invalid broker config: {0}")]
    Config(String),
    /// A listener could not bind (port in use, no permission, address not local).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The router refused or dropped an in-process link.
    #[error("router link failed: {0}")]
    Link(String),
    /// A client id, topic or filter is not valid MQTT.
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// The hooks refused the operation.
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// The persistence store could not be opened, read or written.
    #[error("cannot use the broker's storage at {dir} (persistence_dir): {source}")]
    Persistence {
        dir: std::path::PathBuf,
        source: sled::Error,
    },
    /// The client was closed (shutdown, takeover by the same client id, or dropped).
    #[error("client closed")]
    Closed,
}
