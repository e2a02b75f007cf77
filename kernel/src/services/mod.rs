//! The kernel's own services (`state`, `storage`, `registry`, `plugins`, `kernel`), one
//! file each, on the typed protocol (`hcore_client::protocol::commands`): parameters are
//! parsed into the method's command type, and the answer is its result type. A handler
//! answers at once (`Outcome::Reply`) or leaves the answer to the persistence writer or a
//! task (`Outcome::Later`).
//!
//! Services see only what they need (`Services`): the stores, the writer, the call
//! registry, the plugin manager and the kernel's limits; never the connection.

mod access;
mod kernel;
mod plugins;
mod registry;
mod state;
mod storage;

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use hcore_client::protocol::{Command, ErrorCode, MethodName, ReplyTo, RpcError, GENERIC_ERRORS};
use serde_json::Value;

use crate::calls::Calls;
use crate::manager::PluginManager;
use crate::out::KernelLink;
use crate::persist::{Job, Persist, Refusal};
use crate::policy::KernelPolicy;
use crate::replier::Replier;
use crate::state::StateStore;
use crate::storage::Storage;
use crate::users::Resolved;

/// What the services work with.
pub(crate) struct Services {
    /// The embedded broker's policy (`None` with an external broker, whose ACL decides).
    pub policy: Option<Arc<KernelPolicy>>,
    pub state: Arc<StateStore>,
    pub storage: Arc<Storage>,
    pub persist: Persist,
    pub calls: Arc<Calls>,
    pub replier: Replier,
    pub manager: OnceLock<PluginManager>,
    pub link: KernelLink,
    pub root: String,
    pub started: Instant,
    /// Largest JSON value accepted by `state.set` and `storage.set`, bytes.
    pub max_value_bytes: usize,
    /// Values per `storage.list` page, bytes.
    pub max_page_bytes: usize,
}

/// One call: who made it and where the answer goes.
pub(crate) struct CallCtx {
    pub caller: String,
    /// The caller's role as stamped by the broker (`None` on an external broker).
    pub role: Option<String>,
    /// What the caller may provide and write; `None`: unrestricted.
    pub grants: Option<Arc<Resolved>>,
    pub reply: ReplyTo,
    /// The request id: the parent of whatever the call causes.
    pub request_id: Option<String>,
}

pub(crate) enum Outcome {
    Reply(Result<Value, RpcError>),
    /// The answer is published later (after a durable write, or by a task).
    Later,
}

impl Services {
    /// Runs a kernel method for a caller.
    pub fn handle(&self, ctx: CallCtx, method: &MethodName, params: Value) -> Outcome {
        let params = match params {
            Value::Object(_) => params,
            Value::Null => Value::Object(Default::default()),
            other => {
                return Outcome::Reply(Err(RpcError::bad_request(format!(
                    "params must be a JSON object, not {other}"
                ))))
            }
        };
        if let Err(e) = access::check(ctx.role.as_deref(), method) {
            return Outcome::Reply(Err(e));
        }
        let name = method.method();
        match method.service() {
            "state" => state::handle(self, ctx, name, params),
            "storage" => storage::handle(self, ctx, name, params),
            "registry" => registry::handle(self, ctx, name, params),
            "plugins" => plugins::handle(self, ctx, name, params),
            "kernel" => kernel::handle(self, name, params),
            _ => unknown(method.service(), name),
        }
    }

    /// Queues a job for the writer; the writer answers. A full queue is `unavailable`.
    fn persist(&self, job: Job) -> Outcome {
        match self.persist.submit(job) {
            Ok(()) => Outcome::Later,
            Err(Refusal::Busy) => Outcome::Reply(Err(RpcError::new(
                ErrorCode::Unavailable,
                "the kernel's write queue is full; try again",
            ))),
            Err(Refusal::Stopped) => Outcome::Reply(Err(RpcError::new(
                ErrorCode::Unavailable,
                "the kernel is shutting down",
            ))),
        }
    }

    /// Refuses values larger than `max_value_bytes`.
    pub fn check_value(&self, v: &Value) -> Result<(), RpcError> {
        let size = serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
        if size > self.max_value_bytes {
            return Err(RpcError::bad_request(format!(
                "value of {size} bytes exceeds the limit of {} bytes",
                self.max_value_bytes
            )));
        }
        Ok(())
    }
}

fn unknown(service: &str, method: &str) -> Outcome {
    Outcome::Reply(Err(RpcError::not_found(format!(
        "{service} has no method {method}"
    ))))
}

/// Parses `params` as command `C` and runs `f`; in debug builds, checks that every error
/// answered is one `C` declares (or a generic one), so PROTOCOL.md's error lists hold.
fn run<C: Command>(params: Value, f: impl FnOnce(C) -> Result<Outcome, RpcError>) -> Outcome {
    let outcome = serde_json::from_value::<C>(params)
        .map_err(|e| RpcError::bad_request(format!("{}: {e}", C::METHOD)))
        .and_then(f)
        .unwrap_or_else(|e| Outcome::Reply(Err(e)));
    if let Outcome::Reply(Err(e)) = &outcome {
        debug_assert!(
            C::ERRORS.contains(&e.code) || GENERIC_ERRORS.contains(&e.code),
            "{} answered {} which it does not declare",
            C::METHOD,
            e.code
        );
    }
    outcome
}

/// An immediate answer with the command's result type.
fn answer<C: Command>(result: C::Result) -> Result<Outcome, RpcError> {
    serde_json::to_value(result)
        .map(|v| Outcome::Reply(Ok(v)))
        .map_err(|e| RpcError::internal(e.to_string()))
}
