//! `hcore devices`: the devices plugin's `devices.list`, `devices.get` and `devices.set`
//! from the command line.

use hcore_client::CallOptions;
use hcore_devices_plugin::model::{DeviceList, DevicesGet, DevicesList, DevicesSet};
use serde_json::Value;

use crate::cli::{DevicesArgs, DevicesOp};
use crate::commands::{connect, Failure};

pub async fn devices(args: DevicesArgs) -> Result<(), Failure> {
    let mut conn = args.conn;
    if let DevicesOp::Set { wait_ms, .. } = &args.op {
        // The reply comes when the device confirms, or after `wait_ms`.
        conn.timeout = conn.timeout.max(*wait_ms as f64 / 1000.0 + 1.0);
    }
    let client = connect(&conn).await?;
    let call = |method: &'static str, params: Value| {
        let client = client.clone();
        async move {
            client
                .call_with(method, params, CallOptions::default())
                .await
        }
    };
    let result = match args.op {
        DevicesOp::List { json } => {
            let list = call(
                "devices.list",
                serde_json::to_value(DevicesList {}).unwrap_or_default(),
            )
            .await;
            list.map(|v| if json { print(&v) } else { table(v) })
        }
        DevicesOp::Get { id } => call(
            "devices.get",
            serde_json::to_value(DevicesGet { id }).unwrap_or_default(),
        )
        .await
        .map(|v| print(&v)),
        DevicesOp::Set {
            id,
            properties,
            wait_ms,
        } => {
            let properties = serde_json::from_str(&properties).map_err(|e| {
                Failure(
                    format!("properties must be a JSON object ({e}): {properties}"),
                    1,
                )
            })?;
            let cmd = DevicesSet {
                id,
                properties,
                timeout_ms: Some(wait_ms),
            };
            call("devices.set", serde_json::to_value(cmd).unwrap_or_default())
                .await
                .map(|v| print(&v))
        }
    };
    let _ = client.shutdown().await;
    Ok(result?)
}

fn print(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn table(v: Value) {
    let Ok(list) = serde_json::from_value::<DeviceList>(v) else {
        return;
    };
    println!(
        "{:<24} {:<8} {:<19} {:<24} SOURCES",
        "ID", "STATE", "LAST SEEN", "NAME"
    );
    for d in list.devices {
        let seen = d
            .last_seen
            .and_then(|ms| chrono::DateTime::from_timestamp_millis(ms as i64))
            .map(|t| t.with_timezone(&chrono::Local).format("%F %T").to_string())
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<24} {:<8} {:<19} {:<24} {}",
            d.id,
            d.availability.state,
            seen,
            d.name,
            d.sources.join(",")
        );
    }
}
