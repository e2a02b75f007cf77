//! `plugins.*`: the plugin registry, and the lifecycle and logs of managed plugins. An
//! in-process plugin is managed by the kernel's plugin manager; a plugin run by a plugin
//! host is managed by that host, so its command is passed on to the host
//! (`<host>.start|stop|restart|logs`, same parameters and result) and the host's answer
//! relayed. Starting and stopping take time, so they run in a task that answers when the
//! plugin has reached its new state.

use std::time::Duration;

use hcore_client::protocol::commands::{
    PluginList, PluginState, PluginsList, PluginsLogs, PluginsRestart, PluginsStart, PluginsStop,
};
use hcore_client::protocol::{ErrorCode, RpcError};
use hcore_client::{CallOptions, ClientError};
use serde_json::Value;

use super::{answer, run, unknown, CallCtx, Outcome, Services};
use crate::manager::PluginManager;

/// Longest a plugin host gets to carry out a command (its stop timeout is shorter).
const HOST_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy)]
enum Lifecycle {
    Start,
    Stop,
    Restart,
}

impl Lifecycle {
    fn method(self) -> &'static str {
        match self {
            Lifecycle::Start => "start",
            Lifecycle::Stop => "stop",
            Lifecycle::Restart => "restart",
        }
    }
}

/// Who manages a plugin.
enum Manager {
    InProcess(PluginManager),
    Host(String),
}

pub(super) fn handle(sv: &Services, ctx: CallCtx, method: &str, params: Value) -> Outcome {
    match method {
        "list" => run::<PluginsList>(params, |_| {
            answer::<PluginsList>(PluginList {
                plugins: sv.calls.registry().plugins(),
            })
        }),
        "start" => run::<PluginsStart>(params, |c| lifecycle(sv, ctx, c.id, Lifecycle::Start)),
        "stop" => run::<PluginsStop>(params, |c| lifecycle(sv, ctx, c.id, Lifecycle::Stop)),
        "restart" => {
            run::<PluginsRestart>(params, |c| lifecycle(sv, ctx, c.id, Lifecycle::Restart))
        }
        "logs" => run::<PluginsLogs>(params, |c| logs(sv, ctx, c)),
        _ => unknown("plugins", method),
    }
}

fn manager_of(sv: &Services, id: &str) -> Result<Manager, RpcError> {
    if let Some(m) = sv.manager.get().filter(|m| m.has(id)) {
        return Ok(Manager::InProcess(m.clone()));
    }
    match sv.calls.registry().host_of(id) {
        Some((host, true)) => Ok(Manager::Host(host)),
        Some((host, false)) => Err(RpcError::new(
            ErrorCode::Unavailable,
            format!("{id} runs on plugin host {host}, which is offline"),
        )),
        None => Err(RpcError::not_found(format!(
            "{id} is neither an in-process plugin nor run by a plugin host \
             (plugins started by hand start and stop themselves)"
        ))),
    }
}

fn lifecycle(sv: &Services, ctx: CallCtx, id: String, op: Lifecycle) -> Result<Outcome, RpcError> {
    match manager_of(sv, &id)? {
        Manager::InProcess(manager) => {
            let replier = sv.replier.clone();
            tokio::spawn(async move {
                let outcome = run_lifecycle(&manager, &id, op)
                    .await
                    .map(|state| {
                        serde_json::to_value(PluginState { id, state }).unwrap_or(Value::Null)
                    })
                    .map_err(|e| RpcError::new(ErrorCode::Internal, e));
                replier.reply(&ctx.reply, outcome);
            });
            Ok(Outcome::Later)
        }
        Manager::Host(host) => forward(sv, ctx, &host, op.method(), serde_json::json!({"id": id})),
    }
}

fn logs(sv: &Services, ctx: CallCtx, c: PluginsLogs) -> Result<Outcome, RpcError> {
    match manager_of(sv, &c.id)? {
        Manager::InProcess(_) => answer::<PluginsLogs>(crate::plugin_logs::tail(&c.id, c.lines)),
        Manager::Host(host) => {
            let params = serde_json::to_value(&c).map_err(|e| RpcError::internal(e.to_string()))?;
            forward(sv, ctx, &host, "logs", params)
        }
    }
}

/// Passes a command on to the plugin host that runs the plugin; relays its answer.
fn forward(
    sv: &Services,
    ctx: CallCtx,
    host: &str,
    method: &str,
    params: Value,
) -> Result<Outcome, RpcError> {
    let client = sv
        .link
        .get()
        .cloned()
        .ok_or_else(|| RpcError::new(ErrorCode::Unavailable, "the kernel is not connected"))?;
    let replier = sv.replier.clone();
    let method = format!("{host}.{method}");
    tokio::spawn(async move {
        let options = CallOptions {
            timeout: Some(HOST_COMMAND_TIMEOUT),
            parent: ctx.request_id.clone(),
        };
        let outcome = client
            .call_with(&method, params, options)
            .await
            .map_err(|e| match e {
                ClientError::Rpc(e) => e,
                other => RpcError::new(
                    ErrorCode::Unavailable,
                    format!("{method} could not be called: {other}"),
                ),
            });
        replier.reply(&ctx.reply, outcome);
    });
    Ok(Outcome::Later)
}

async fn run_lifecycle(manager: &PluginManager, id: &str, op: Lifecycle) -> Result<String, String> {
    match op {
        Lifecycle::Start => manager.start(id).await,
        Lifecycle::Stop => manager.stop(id).await,
        Lifecycle::Restart => {
            manager.stop(id).await?;
            manager.start(id).await
        }
    }
}
