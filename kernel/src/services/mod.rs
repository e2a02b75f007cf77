//! The kernel's own services (`state`, `storage`, `registry`, `plugins`, `kernel`): method
//! dispatch and parameter checking. Each handler answers at once (`Outcome::Reply`) or
//! hands the work to the persistence writer or a task that replies later.

mod admin;
mod state;
mod storage;

use std::sync::Arc;

use hcore_client::protocol::RpcError;
use serde_json::Value;

pub(crate) use state::{apply_change, apply_delete};

use crate::pending::ReplyTo;
use crate::runtime::Shared;

/// Who called and where the answer goes.
pub(crate) struct CallCtx {
    pub caller: String,
    pub reply: ReplyTo,
    /// The request id: the parent of whatever this call causes.
    pub request_id: Option<String>,
}

pub(crate) enum Outcome {
    Reply(Result<Value, RpcError>),
    /// The reply will be published later (after a durable write, or by a task).
    Later,
}

impl From<Result<Value, RpcError>> for Outcome {
    fn from(r: Result<Value, RpcError>) -> Outcome {
        Outcome::Reply(r)
    }
}

/// Runs `service.method` for a caller.
pub(crate) fn handle(
    sh: &Arc<Shared>,
    ctx: CallCtx,
    service: &str,
    method: &str,
    params: Value,
) -> Outcome {
    let params = match params {
        Value::Object(_) => params,
        Value::Null => Value::Object(Default::default()),
        other => {
            return Outcome::Reply(Err(RpcError::bad_request(format!(
                "params must be a JSON object, not {other}"
            ))))
        }
    };
    match service {
        "state" => state::handle(sh, ctx, method, &params),
        "storage" => storage::handle(sh, ctx, method, &params),
        "registry" | "plugins" | "kernel" => admin::handle(sh, ctx, service, method, &params),
        _ => Outcome::Reply(Err(RpcError::not_found(format!("no service {service}")))),
    }
}

fn unknown(service: &str, method: &str) -> Outcome {
    Outcome::Reply(Err(RpcError::not_found(format!(
        "{service} has no method {method}"
    ))))
}

/// A required string parameter.
fn str_param<'a>(params: &'a Value, name: &str) -> Result<&'a str, RpcError> {
    match params.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(RpcError::bad_request(format!(
            "{name} must be a string, not {other}"
        ))),
        None => Err(RpcError::bad_request(format!("missing parameter {name}"))),
    }
}

/// An optional string parameter (`null` counts as absent).
fn opt_str_param<'a>(params: &'a Value, name: &str) -> Result<Option<&'a str>, RpcError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(RpcError::bad_request(format!(
            "{name} must be a string, not {other}"
        ))),
    }
}

/// An optional unsigned integer parameter.
fn opt_u64_param(params: &Value, name: &str) -> Result<Option<u64>, RpcError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            RpcError::bad_request(format!("{name} must be a non-negative integer, not {v}"))
        }),
    }
}

/// A required value parameter, within the size limit.
fn value_param(sh: &Shared, params: &Value, name: &str) -> Result<Value, RpcError> {
    let v = params
        .get(name)
        .ok_or_else(|| RpcError::bad_request(format!("missing parameter {name}")))?;
    check_size(sh, v)?;
    Ok(v.clone())
}

/// Refuses values larger than `max_value_bytes`.
pub(crate) fn check_size(sh: &Shared, v: &Value) -> Result<(), RpcError> {
    let size = serde_json::to_vec(v).map_or(usize::MAX, |b| b.len());
    if size > sh.config.max_value_bytes {
        return Err(RpcError::bad_request(format!(
            "value of {size} bytes exceeds the limit of {} bytes",
            sh.config.max_value_bytes
        )));
    }
    Ok(())
}
