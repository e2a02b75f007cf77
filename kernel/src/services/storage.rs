//! `storage.*`: the caller's namespace only. Reads answer at once; writes are persistence
//! jobs that reply after the flush (group commit).

use std::sync::Arc;

use hcore_client::protocol::{validate_storage_key, RpcError};
use serde_json::{json, Value};

use super::{
    check_size, opt_str_param, opt_u64_param, str_param, unknown, value_param, CallCtx, Outcome,
};
use crate::persist::Done;
use crate::runtime::Shared;

const DEFAULT_LIMIT: u64 = 100;
const MAX_LIMIT: u64 = 1000;

pub(super) fn handle(sh: &Arc<Shared>, ctx: CallCtx, method: &str, params: &Value) -> Outcome {
    let result = (|| -> Result<Outcome, RpcError> {
        let ns = ctx.caller.clone();
        let storage = sh.storage.clone();
        match method {
            "get" => {
                let key = key(params)?;
                match storage.get(&ns, key)? {
                    Some(value) => Ok(Outcome::Reply(Ok(json!({ "value": value })))),
                    None => Err(RpcError::not_found(format!("no value at {key}"))),
                }
            }
            "list" => {
                let prefix = opt_str_param(params, "prefix")?.unwrap_or("");
                let after = opt_str_param(params, "after")?;
                let limit = opt_u64_param(params, "limit")?
                    .unwrap_or(DEFAULT_LIMIT)
                    .clamp(1, MAX_LIMIT);
                let (items, next) = storage.list(&ns, prefix, after, limit as usize)?;
                let items: Vec<Value> = items
                    .into_iter()
                    .map(|(key, value)| json!({ "key": key, "value": value }))
                    .collect();
                Ok(Outcome::Reply(Ok(json!({ "items": items, "next": next }))))
            }
            "set" => {
                let key = key(params)?.to_string();
                let value = value_param(sh, params, "value")?;
                Ok(write(sh, ctx, move || {
                    storage
                        .set(&ns, &key, &value)
                        .map(|()| json!({ "ok": true }))
                }))
            }
            "delete" => {
                let key = key(params)?.to_string();
                Ok(write(sh, ctx, move || {
                    storage.delete(&ns, &key).map(|d| json!({ "deleted": d }))
                }))
            }
            "cas" => {
                let key = key(params)?.to_string();
                let expected = present(params.get("expected"));
                let value = present(params.get("value"));
                for v in [&expected, &value].into_iter().flatten() {
                    check_size(sh, v)?;
                }
                Ok(write(sh, ctx, move || {
                    storage
                        .cas(&ns, &key, expected.as_ref(), value.as_ref())
                        .map(|(swapped, current)| json!({ "swapped": swapped, "current": current }))
                }))
            }
            _ => Ok(unknown("storage", method)),
        }
    })();
    result.unwrap_or_else(|e| Outcome::Reply(Err(e)))
}

/// `null` and a missing field both mean "absent".
fn present(v: Option<&Value>) -> Option<Value> {
    v.filter(|v| !v.is_null()).cloned()
}

fn key(params: &Value) -> Result<&str, RpcError> {
    let key = str_param(params, "key")?;
    validate_storage_key(key).map_err(|e| RpcError::bad_request(e.to_string()))?;
    Ok(key)
}

fn write(
    sh: &Shared,
    ctx: CallCtx,
    op: impl FnOnce() -> Result<Value, RpcError> + Send + 'static,
) -> Outcome {
    let reply = ctx.reply;
    let job = Box::new(move || Done {
        effects: Vec::new(),
        reply: Some((reply, op())),
    });
    if sh.persist.submit(job) {
        Outcome::Later
    } else {
        Outcome::Reply(Err(RpcError::new(
            hcore_client::ErrorCode::Unavailable,
            "the kernel is shutting down",
        )))
    }
}
