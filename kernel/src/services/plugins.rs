//! `plugins.*`: the plugin registry, and the lifecycle of in-process plugins. Starting and
//! stopping take time (a stop waits for the plugin), so they run in a task that answers
//! when the plugin has reached its new state.

use hcore_client::protocol::commands::{
    PluginList, PluginState, PluginsList, PluginsRestart, PluginsStart, PluginsStop,
};
use hcore_client::protocol::{ErrorCode, RpcError};
use serde_json::Value;

use super::{answer, run, unknown, CallCtx, Outcome, Services};
use crate::manager::PluginManager;

#[derive(Clone, Copy)]
enum Lifecycle {
    Start,
    Stop,
    Restart,
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
        _ => unknown("plugins", method),
    }
}

fn lifecycle(sv: &Services, ctx: CallCtx, id: String, op: Lifecycle) -> Result<Outcome, RpcError> {
    let manager = sv
        .manager
        .get()
        .filter(|m| m.has(&id))
        .cloned()
        .ok_or_else(|| {
            RpcError::not_found(format!(
                "{id} is not an in-process plugin (remote plugins start and stop themselves)"
            ))
        })?;
    let replier = sv.replier.clone();
    tokio::spawn(async move {
        let outcome = run_lifecycle(&manager, &id, op)
            .await
            .map(|state| serde_json::to_value(PluginState { id, state }).unwrap_or(Value::Null))
            .map_err(|e| RpcError::new(ErrorCode::Internal, e));
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
