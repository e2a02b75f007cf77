//! The plugin host's errors.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("cannot connect to the hub: {0}")]
    Connect(#[source] hcore_client::ClientError),
    #[error("the hub connection failed: {0}")]
    Client(#[from] hcore_client::ClientError),
}
