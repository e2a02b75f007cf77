//! The hcore protocol as data: topic names, payload types, error codes and the rules for
//! names and keys. `docs/PROTOCOL.md` is the normative text; this module is its code form,
//! shared by the SDK and the kernel so that both speak exactly the same protocol.

mod messages;
mod names;
mod topics;

pub use messages::{
    now_ms, Envelope, ErrorCode, Manifest, PluginStatus, Reply, Request, RpcError, StateContext,
    StateRecord,
};
pub use names::{
    validate_event_name, validate_id, validate_name, validate_state_key, validate_storage_key,
    NameError,
};
pub use topics::{Parsed, Topics, DEFAULT_ROOT};

/// User property in which the broker records the publisher's client id.
pub const IDENTITY_PROPERTY: &str = "hc-client";

/// Default RPC timeout.
pub const DEFAULT_TIMEOUT_MS: u64 = 5_000;

/// Services implemented by the kernel itself.
pub const KERNEL_SERVICES: [&str; 5] = ["kernel", "plugins", "registry", "state", "storage"];
