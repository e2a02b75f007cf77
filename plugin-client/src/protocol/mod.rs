//! The hcore protocol as data: topic names, payload types, one typed request and result
//! per kernel method, error codes, the rules of an RPC and the rules for names and keys.
//! `docs/PROTOCOL.md` is the normative text; this module is its code form, used by the
//! SDK, the kernel and the CLI alike, so that all of them speak exactly the same protocol.

mod call;
pub mod commands;
mod filters;
mod messages;
mod method;
mod names;
mod topics;

pub use call::{call_key, id_string, payload_call_key, Incoming, Refused, ReplyTo};
pub use commands::{Command, GENERIC_ERRORS, KERNEL_METHODS};
pub use filters::{filter_matches, validate_filter};
pub use messages::{
    now_ms, Envelope, ErrorCode, Manifest, PluginStatus, Reply, Request, RpcError, StateContext,
    StateRecord, CALLS_VIA_KERNEL,
};
pub use method::{MethodName, KERNEL_SERVICES};
pub use names::{
    validate_event_name, validate_id, validate_name, validate_state_key, validate_storage_key,
    NameError, KERNEL_ID,
};
pub use topics::{Parsed, Topics, DEFAULT_ROOT};

/// User property in which the broker records the publisher's identity.
pub const IDENTITY_PROPERTY: &str = "hc-client";

/// The SDK's default call timeout (it sets every request's deadline from it).
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;
