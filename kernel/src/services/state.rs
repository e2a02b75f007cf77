//! `state.*`: reads answer at once; writes change the engine in memory, then persist,
//! and after the flush publish the retained record, the `state_changed` event and the reply.

use std::sync::Arc;

use hcore_client::protocol::{validate_state_key, Envelope, RpcError, StateRecord};
use hcore_client::transport::Outgoing;
use serde_json::{json, Value};

use super::{opt_str_param, opt_u64_param, str_param, unknown, value_param, CallCtx, Outcome};
use crate::persist::Done;
use crate::runtime::Shared;
use crate::state_engine::Change;

pub(super) fn handle(sh: &Arc<Shared>, ctx: CallCtx, method: &str, params: &Value) -> Outcome {
    let result = (|| -> Result<Outcome, RpcError> {
        match method {
            "get" => {
                let key = key(params)?;
                let state = sh.state.lock().unwrap_or_else(|e| e.into_inner());
                match state.get(key) {
                    Some(r) => Ok(Outcome::Reply(Ok(record_json(r)))),
                    None => Err(RpcError::not_found(format!("no state at {key}"))),
                }
            }
            "exists" => {
                let key = key(params)?;
                let state = sh.state.lock().unwrap_or_else(|e| e.into_inner());
                Ok(Outcome::Reply(Ok(
                    json!({ "exists": state.get(key).is_some() }),
                )))
            }
            "list" => {
                let prefix = opt_str_param(params, "prefix")?.unwrap_or("");
                let state = sh.state.lock().unwrap_or_else(|e| e.into_inner());
                Ok(Outcome::Reply(Ok(json!({ "items": state.list(prefix) }))))
            }
            "set" => {
                let key = key(params)?;
                let value = value_param(sh, params, "value")?;
                let expected = opt_u64_param(params, "expected_version")?;
                let change = sh.state.lock().unwrap_or_else(|e| e.into_inner()).set(
                    key,
                    value,
                    expected,
                    &ctx.caller,
                    ctx.request_id.clone(),
                )?;
                Ok(apply_change(sh, key, change, Some(ctx)))
            }
            "delete" => {
                let key = key(params)?;
                let expected = opt_u64_param(params, "expected_version")?;
                let removed = sh
                    .state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .delete(key, expected)?;
                let (source, parent) = (ctx.caller.clone(), ctx.request_id.clone());
                Ok(apply_delete(sh, key, removed, &source, parent, Some(ctx)))
            }
            _ => Ok(unknown("state", method)),
        }
    })();
    result.unwrap_or_else(|e| Outcome::Reply(Err(e)))
}

fn key(params: &Value) -> Result<&str, RpcError> {
    let key = str_param(params, "key")?;
    validate_state_key(key).map_err(|e| RpcError::bad_request(e.to_string()))?;
    Ok(key)
}

fn record_json(r: &StateRecord) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

/// Who made a change and why: the `state_changed` event's envelope fields.
struct ChangeMeta<'a> {
    version: u64,
    source: &'a str,
    id: String,
    parent: Option<String>,
}

fn state_changed(
    sh: &Shared,
    key: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    meta: ChangeMeta<'_>,
) -> Outgoing {
    let data = json!({ "key": key, "old": old, "new": new, "version": meta.version });
    let mut envelope = Envelope::new(meta.source, meta.parent, data);
    envelope.id = meta.id;
    Outgoing {
        topic: sh.topics.state_changed(key),
        payload: serde_json::to_vec(&envelope).unwrap_or_default().into(),
        qos: 1,
        retain: false,
        correlation: None,
    }
}

/// The retained record on `<root>/state/<key>` (an empty payload deletes it).
fn retained_record(sh: &Shared, key: &str, record: Vec<u8>) -> Outgoing {
    Outgoing {
        topic: sh.topics.state(key),
        payload: record.into(),
        qos: 1,
        retain: true,
        correlation: None,
    }
}

/// Persists a write and, after the flush, publishes record, event and reply (if any).
pub(crate) fn apply_change(
    sh: &Arc<Shared>,
    key: &str,
    change: Change,
    ctx: Option<CallCtx>,
) -> Outcome {
    let (old, new) = match change {
        Change::Unchanged { version } => {
            return Outcome::Reply(Ok(json!({ "version": version, "changed": false })));
        }
        Change::Changed { old, new } => (old, new),
    };
    let tree = state_tree(sh);
    let record = serde_json::to_vec(&new).unwrap_or_default();
    let effects = vec![
        retained_record(sh, key, record.clone()),
        state_changed(
            sh,
            key,
            old.as_ref().map(|r| &r.value),
            Some(&new.value),
            ChangeMeta {
                version: new.version,
                source: &new.source,
                id: new.context.id.clone(),
                parent: new.context.parent.clone(),
            },
        ),
    ];
    let key = key.to_string();
    let version = new.version;
    let reply = ctx.map(|c| c.reply);
    persist(sh, move || {
        let outcome = tree
            .insert(key.as_bytes(), record)
            .map(|_| json!({ "version": version, "changed": true }))
            .map_err(|e| RpcError::internal(format!("database: {e}")));
        Done {
            effects,
            reply: reply.map(|r| (r, outcome)),
        }
    })
}

/// The state engine's database tree (a cheap handle), for a persistence job.
fn state_tree(sh: &Shared) -> sled::Tree {
    sh.state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .tree
        .clone()
}

/// Persists a delete and announces it (empty retained record, `state_changed` event).
pub(crate) fn apply_delete(
    sh: &Arc<Shared>,
    key: &str,
    removed: Option<StateRecord>,
    source: &str,
    parent: Option<String>,
    ctx: Option<CallCtx>,
) -> Outcome {
    let Some(old) = removed else {
        return Outcome::Reply(Ok(json!({ "deleted": false })));
    };
    let tree = state_tree(sh);
    let effects = vec![
        retained_record(sh, key, Vec::new()),
        state_changed(
            sh,
            key,
            Some(&old.value),
            None,
            ChangeMeta {
                version: old.version,
                source,
                id: uuid::Uuid::new_v4().to_string(),
                parent,
            },
        ),
    ];
    let key = key.to_string();
    let reply = ctx.map(|c| c.reply);
    persist(sh, move || {
        let outcome = tree
            .remove(key.as_bytes())
            .map(|_| json!({ "deleted": true }))
            .map_err(|e| RpcError::internal(format!("database: {e}")));
        Done {
            effects,
            reply: reply.map(|r| (r, outcome)),
        }
    })
}

fn persist(sh: &Shared, job: impl FnOnce() -> Done + Send + 'static) -> Outcome {
    if sh.persist.submit(Box::new(job)) {
        Outcome::Later
    } else {
        Outcome::Reply(Err(RpcError::new(
            hcore_client::ErrorCode::Unavailable,
            "the kernel is shutting down",
        )))
    }
}
