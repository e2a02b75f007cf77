//! `registry.*`, `plugins.*` and `kernel.*`.

use std::sync::Arc;

use hcore_client::protocol::RpcError;
use hcore_client::ErrorCode;
use serde_json::{json, Value};

use super::{str_param, unknown, CallCtx, Outcome};
use crate::persist::reply_message;
use crate::runtime::Shared;

pub(super) fn handle(
    sh: &Arc<Shared>,
    ctx: CallCtx,
    service: &str,
    method: &str,
    params: &Value,
) -> Outcome {
    let result = match (service, method) {
        ("registry", "register") => methods(params).and_then(|m| {
            let m = m.unwrap_or_default();
            sh.registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .register(&ctx.caller, &m)
                .map(|()| json!({ "registered": m }))
        }),
        ("registry", "unregister") => methods(params).map(|m| {
            let removed = sh
                .registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .unregister(&ctx.caller, m.as_deref());
            json!({ "unregistered": removed })
        }),
        ("registry", "list") => Ok(json!({
            "services": sh.registry.lock().unwrap_or_else(|e| e.into_inner()).services_json()
        })),
        ("plugins", "list") => Ok(sh
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .plugins_json()),
        ("plugins", "start" | "stop" | "restart") => return lifecycle(sh, ctx, method, params),
        ("kernel", "info") => Ok(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "root": sh.topics.root(),
            "uptime_ms": sh.started.elapsed().as_millis() as u64,
            "session": sh.session.load(std::sync::atomic::Ordering::Relaxed),
        })),
        _ => return unknown(service, method),
    };
    Outcome::Reply(result)
}

/// `methods`: an optional list of strings.
fn methods(params: &Value) -> Result<Option<Vec<String>>, RpcError> {
    match params.get("methods") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_string).ok_or_else(|| {
                    RpcError::bad_request(format!("methods must be strings, not {v}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(other) => Err(RpcError::bad_request(format!(
            "methods must be a list, not {other}"
        ))),
    }
}

/// Starting and stopping take time (a stop waits for the plugin): done in a task that
/// replies when the plugin has reached its new state.
fn lifecycle(sh: &Arc<Shared>, ctx: CallCtx, method: &str, params: &Value) -> Outcome {
    let id = match str_param(params, "id") {
        Ok(id) => id.to_string(),
        Err(e) => return Outcome::Reply(Err(e)),
    };
    let Some(manager) = sh.manager.get().cloned() else {
        return Outcome::Reply(Err(RpcError::not_found("no in-process plugins")));
    };
    if !manager.has(&id) {
        return Outcome::Reply(Err(RpcError::not_found(format!(
            "{id} is not an in-process plugin (remote plugins start and stop themselves)"
        ))));
    }
    let sh = sh.clone();
    let method = method.to_string();
    tokio::spawn(async move {
        let outcome = match method.as_str() {
            "start" => manager.start(&id).await,
            "stop" => manager.stop(&id).await,
            _ => match manager.stop(&id).await {
                Ok(_) => manager.start(&id).await,
                Err(e) => Err(e),
            },
        };
        let outcome = outcome
            .map(|state| json!({ "id": id, "state": state }))
            .map_err(|e| RpcError::new(ErrorCode::Internal, e));
        let _ = sh.link.publish(reply_message(&ctx.reply, outcome)).await;
    });
    Outcome::Later
}
