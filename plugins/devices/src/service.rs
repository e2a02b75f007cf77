//! `devices.list`, `devices.get`, `devices.set`, and the state command topic
//! `<root>/state/devices/<id>/set` (the same as `devices.set` without a reply).

use std::sync::Arc;
use std::time::Duration;

use hcore_client::protocol::now_ms;
use hcore_client::{Client, ClientError, ErrorCode, RpcError};
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::core::{lock, Core, Waiter, MAX_WAITERS};
use crate::model::{DeviceList, DevicesGet, DevicesSet, SetOutcome};

/// Longest a caller may ask `devices.set` to wait.
const MAX_TIMEOUT_MS: u64 = 60_000;
/// How long before the caller's deadline an unconfirmed command is answered `sent`.
const ANSWER_MARGIN_MS: u64 = 250;

pub async fn provide(client: &Client, core: Arc<Core>) -> Result<(), ClientError> {
    let c = core.clone();
    client
        .provide("devices.list", move |_| {
            let devices = lock(&c.registry).list();
            async move { to_value(DeviceList { devices }) }
        })
        .await?;
    let c = core.clone();
    client
        .provide("devices.get", move |call| {
            let found = params::<DevicesGet>(&call.params).and_then(|g| {
                lock(&c.registry)
                    .get(&g.id)
                    .ok_or_else(|| RpcError::not_found(format!("no device {}", g.id)))
            });
            async move { found.and_then(to_value) }
        })
        .await?;
    let (c, cl) = (core, client.clone());
    client
        .provide("devices.set", move |call| {
            let (c, cl) = (c.clone(), cl.clone());
            // Answer before the caller stops waiting, confirmed or not.
            let left = call.deadline.map(|d| {
                Duration::from_millis(d.saturating_sub(now_ms()).saturating_sub(ANSWER_MARGIN_MS))
            });
            async move {
                set(&cl, &c, params::<DevicesSet>(&call.params)?, left)
                    .await
                    .and_then(to_value)
            }
        })
        .await
}

/// Runs one command: checks and translates the values, sends the device's native
/// command, and waits for a report that shows them.
pub async fn set(
    client: &Client,
    core: &Core,
    cmd: DevicesSet,
    caller_waits: Option<Duration>,
) -> Result<SetOutcome, RpcError> {
    let (sent, wanted) = {
        let reg = lock(&core.registry);
        let known = reg
            .known(&cmd.id)
            .ok_or_else(|| RpcError::not_found(format!("no device {}", cmd.id)))?;
        if known.device.availability.state == "offline" {
            return Err(RpcError::new(
                ErrorCode::Unavailable,
                format!("{} is offline", cmd.id),
            ));
        }
        if cmd.properties.is_empty() {
            return Err(RpcError::bad_request("properties is empty"));
        }
        let mut native = Map::new();
        for (name, v) in &cmd.properties {
            let p = known.device.properties.get(name).ok_or_else(|| {
                let names: Vec<&String> = known.device.properties.keys().collect();
                RpcError::bad_request(format!(
                    "{} has no property {name} (it has {names:?})",
                    cmd.id
                ))
            })?;
            native.insert(
                name.clone(),
                p.check(name, v).map_err(RpcError::bad_request)?,
            );
        }
        let route = reg.route(&cmd.id, &native).ok_or_else(|| {
            RpcError::bad_request(format!(
                "no source of {} can set all of these together",
                cmd.id
            ))
        })?;
        let wanted: Map<String, Value> = native
            .iter()
            .filter(|(_, v)| *v != "TOGGLE")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (route.command(&native), wanted)
    };
    let (done, confirmed) = oneshot::channel();
    {
        let mut waiters = lock(&core.waiters);
        if waiters.len() >= MAX_WAITERS {
            return Err(RpcError::new(
                ErrorCode::Unavailable,
                "too many device commands waiting; try again",
            ));
        }
        waiters.push(Waiter {
            id: cmd.id.clone(),
            wanted,
            done,
        });
    }
    for s in &sent {
        client
            .publish_raw(&s.topic, s.payload.clone().into_bytes(), false)
            .await
            .map_err(|e| {
                RpcError::new(
                    ErrorCode::Unavailable,
                    format!("cannot send the command: {e}"),
                )
            })?;
    }
    let asked = Duration::from_millis(
        cmd.timeout_ms
            .unwrap_or(core.confirm_timeout_ms)
            .min(MAX_TIMEOUT_MS),
    );
    let timeout = caller_waits.map_or(asked, |w| w.min(asked));
    let confirmed = matches!(tokio::time::timeout(timeout, confirmed).await, Ok(Ok(())));
    if !confirmed {
        lock(&core.waiters).retain(|w| !w.done.is_closed());
    }
    let reported = lock(&core.registry)
        .reported(&cmd.id)
        .cloned()
        .unwrap_or_default();
    Ok(SetOutcome {
        id: cmd.id,
        status: if confirmed { "done" } else { "sent" }.into(),
        confirmed,
        sent,
        reported,
    })
}

fn params<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, RpcError> {
    serde_json::from_value(v.clone()).map_err(|e| RpcError::bad_request(e.to_string()))
}

fn to_value<T: serde::Serialize>(v: T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(|e| RpcError::internal(e.to_string()))
}
