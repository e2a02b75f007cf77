//! The kernel crate's error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The database could not be opened or written (path, permissions, corruption).
    #[error("storage at {path}: {message}")]
    Storage { path: PathBuf, message: String },
    /// The kernel could not connect to the broker.
    #[error("cannot connect to the broker: {0}")]
    Connect(String),
    /// The embedded broker could not start (a listener could not bind, a bad setting).
    #[error("{0}")]
    Broker(String),
    /// A configuration value is invalid.
    #[error("invalid kernel config: {0}")]
    Config(String),
    /// The users files could not be read or written, or a users command cannot be done.
    #[error("users ({path}): {message}")]
    Users { path: PathBuf, message: String },
}
