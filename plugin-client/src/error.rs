//! The SDK's error type.

use crate::protocol::{NameError, RpcError};

/// Everything that can go wrong in the SDK.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The broker could not be reached or refused the connection.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The client was shut down (or taken over by another connection with the same id).
    #[error("client is closed")]
    Closed,
    /// The connection was lost before the reply arrived (the client reconnects; the call
    /// may or may not have run).
    #[error("the connection to the broker was lost before the reply arrived")]
    ConnectionLost,
    /// A name, id or key is not valid (see PROTOCOL.md for the rules).
    #[error("invalid: {0}")]
    Invalid(#[from] NameError),
    /// The call completed with an error reply (including `timeout`).
    #[error("call failed: {0}")]
    Rpc(#[from] RpcError),
    /// The broker refused a subscription (not authorized, invalid filter, ...).
    #[error("the broker refused the subscription to {filter}: {reason}")]
    Refused { filter: String, reason: String },
    /// The transport failed to send.
    #[error("transport: {0}")]
    Transport(String),
    /// A payload could not be decoded.
    #[error("unexpected payload: {0}")]
    Decode(String),
}

impl ClientError {
    /// The RPC error code, if this is an error reply.
    pub fn code(&self) -> Option<crate::protocol::ErrorCode> {
        match self {
            ClientError::Rpc(e) => Some(e.code),
            _ => None,
        }
    }
}
