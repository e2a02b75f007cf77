//! The host's methods, `<host>.list|start|stop|restart|logs`, with the parameters and
//! results of `plugins.*`. Only the hub's kernel may call them: it checks that the caller
//! of `plugins.start` etc. is an administrator, then passes the command on.

use hcore_client::protocol::commands::{
    PluginState, PluginsLogs, PluginsRestart, PluginsStart, PluginsStop,
};
use hcore_client::protocol::{ErrorCode, RpcError, KERNEL_ID};
use hcore_client::{Call, Client, ClientError};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::supervisor::Supervised;

#[derive(Clone, Copy)]
enum Op {
    Start,
    Stop,
    Restart,
}

/// Provides the host's methods on its connection.
pub async fn provide(client: &Client, plugins: Vec<Supervised>) -> Result<(), ClientError> {
    let me = client.id().to_string();
    let list = plugins.clone();
    client
        .provide(&format!("{me}.list"), move |call| {
            let list = list.clone();
            async move {
                only_kernel(&call)?;
                let views: Vec<_> = list.iter().map(Supervised::view).collect();
                Ok(serde_json::json!({ "plugins": views }))
            }
        })
        .await?;
    for (name, op) in [
        ("start", Op::Start),
        ("stop", Op::Stop),
        ("restart", Op::Restart),
    ] {
        let plugins = plugins.clone();
        client
            .provide(&format!("{me}.{name}"), move |call| {
                lifecycle(plugins.clone(), call, op)
            })
            .await?;
    }
    client
        .provide(&format!("{me}.logs"), move |call| {
            let plugins = plugins.clone();
            async move {
                only_kernel(&call)?;
                let c: PluginsLogs = params(&call)?;
                let p = find(&plugins, &c.id)?;
                let logs = p
                    .ring
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .tail(&c.id, c.lines);
                serde_json::to_value(logs).map_err(|e| RpcError::internal(e.to_string()))
            }
        })
        .await
}

async fn lifecycle(plugins: Vec<Supervised>, call: Call, op: Op) -> Result<Value, RpcError> {
    only_kernel(&call)?;
    let id = match op {
        Op::Start => params::<PluginsStart>(&call)?.id,
        Op::Stop => params::<PluginsStop>(&call)?.id,
        Op::Restart => params::<PluginsRestart>(&call)?.id,
    };
    let p = find(&plugins, &id)?;
    let outcome = match op {
        Op::Start => p.start_program().await,
        Op::Stop => p.stop_program().await,
        Op::Restart => p.restart_program().await,
    };
    let state = outcome.map_err(|e| RpcError::new(ErrorCode::Internal, e))?;
    serde_json::to_value(PluginState { id, state }).map_err(|e| RpcError::internal(e.to_string()))
}

fn only_kernel(call: &Call) -> Result<(), RpcError> {
    if call.caller == KERNEL_ID {
        return Ok(());
    }
    Err(RpcError::new(
        ErrorCode::Forbidden,
        format!(
            "only the hub's kernel may call {} (administrators use plugins.{} on the hub)",
            call.method,
            call.method.rsplit('.').next().unwrap_or_default()
        ),
    ))
}

fn params<C: DeserializeOwned>(call: &Call) -> Result<C, RpcError> {
    serde_json::from_value(call.params.clone())
        .map_err(|e| RpcError::bad_request(format!("{}: {e}", call.method)))
}

fn find<'a>(plugins: &'a [Supervised], id: &str) -> Result<&'a Supervised, RpcError> {
    plugins
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| RpcError::not_found(format!("this host runs no plugin {id}")))
}
