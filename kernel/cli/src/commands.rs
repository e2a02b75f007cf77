//! Client commands against a running hcore: pub, sub, call, state, storage, plugins.
//! Each prints JSON (or readable lines for `sub`) on stdout; failures are one line on
//! stderr and a non-zero exit code (2 for an RPC error, with its code).

use std::time::Duration;

use hcore_client::protocol::commands::{
    PluginsList, PluginsLogs, PluginsRestart, PluginsStart, PluginsStop, StateDelete, StateGet,
    StateKey, StateList, StateSet, StorageDelete, StorageGet, StorageKey, StorageList, StorageSet,
};
use hcore_client::protocol::Command;
use hcore_client::{CallOptions, Client, ClientError, ClientOptions};
use serde_json::{json, Value};

use crate::cli::{
    CallArgs, Conn, PluginsArgs, PluginsOp, PubArgs, StateArgs, StateOp, StorageArgs, StorageOp,
};

/// A command failure: the message and the exit code.
pub struct Failure(pub String, pub i32);

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure(s, 1)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        match e {
            ClientError::Rpc(r) => Failure(format!("{}: {}", r.code, r.message), 2),
            other => Failure(other.to_string(), 1),
        }
    }
}

pub async fn connect(conn: &Conn) -> Result<Client, Failure> {
    let mut options = ClientOptions::new(conn.client_id.clone()).quiet();
    options.username = conn.username.clone();
    options.password = conn.password.clone();
    options.tls = hcore_client::TlsOptions {
        ca: conn.ca.clone(),
        cert: conn.cert.clone(),
        key: conn.key.clone(),
    };
    options.timeout = Duration::from_secs_f64(conn.timeout.max(0.1));
    Ok(Client::connect(&conn.url, options).await?)
}

fn parse_json(what: &str, text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text)
        .map_err(|e| Failure(format!("{what} is not valid JSON ({e}): {text}"), 1))
}

fn print(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

pub async fn publish(args: PubArgs) -> Result<(), Failure> {
    let client = connect(&args.conn).await?;
    client
        .publish_raw(&args.topic, args.payload.into_bytes(), args.retain)
        .await?;
    client.shutdown().await?;
    Ok(())
}

async fn call_print(conn: &Conn, method: &str, params: Value) -> Result<(), Failure> {
    let client = connect(conn).await?;
    let result = client
        .call_with(method, params, CallOptions::default())
        .await;
    let _ = client.shutdown().await;
    print(&result?);
    Ok(())
}

pub async fn call(args: CallArgs) -> Result<(), Failure> {
    let params = match &args.params {
        Some(p) => parse_json("params", p)?,
        None => json!({}),
    };
    call_print(&args.conn, &args.method, params).await
}

/// Sends a kernel method as its typed command and prints the typed result.
async fn request_print<C: Command>(conn: &Conn, command: C) -> Result<(), Failure> {
    let client = connect(conn).await?;
    let result = client.request(command).await;
    let _ = client.shutdown().await;
    let value = serde_json::to_value(result?).map_err(|e| Failure(e.to_string(), 1))?;
    print(&value);
    Ok(())
}

fn state_key(key: String) -> Result<StateKey, Failure> {
    StateKey::new(key).map_err(|e| Failure(format!("invalid key: {e}"), 1))
}

fn storage_key(key: String) -> Result<StorageKey, Failure> {
    StorageKey::new(key).map_err(|e| Failure(format!("invalid key: {e}"), 1))
}

pub async fn state(args: StateArgs) -> Result<(), Failure> {
    let conn = &args.conn;
    match args.op {
        StateOp::Get { key } => {
            request_print(
                conn,
                StateGet {
                    key: state_key(key)?,
                },
            )
            .await
        }
        StateOp::Set {
            key,
            value,
            expect_version,
        } => {
            let command = StateSet {
                key: state_key(key)?,
                value: parse_json("value", &value)?,
                expected_version: expect_version,
            };
            request_print(conn, command).await
        }
        StateOp::Delete { key } => {
            let command = StateDelete {
                key: state_key(key)?,
                expected_version: None,
            };
            request_print(conn, command).await
        }
        StateOp::List { prefix } => request_print(conn, StateList { prefix }).await,
    }
}

pub async fn storage(args: StorageArgs) -> Result<(), Failure> {
    let conn = &args.conn;
    let namespace = args.namespace;
    match args.op {
        StorageOp::Get { key } => {
            let key = storage_key(key)?;
            request_print(conn, StorageGet { key, namespace }).await
        }
        StorageOp::List { prefix } => {
            let command = StorageList {
                prefix,
                namespace,
                ..StorageList::default()
            };
            request_print(conn, command).await
        }
        _ if namespace.is_some() => Err(Failure(
            "--namespace reads another namespace; writes only go to your own".into(),
            1,
        )),
        StorageOp::Set { key, value } => {
            let command = StorageSet {
                key: storage_key(key)?,
                value: parse_json("value", &value)?,
            };
            request_print(conn, command).await
        }
        StorageOp::Delete { key } => {
            request_print(
                conn,
                StorageDelete {
                    key: storage_key(key)?,
                },
            )
            .await
        }
    }
}

/// Starting and stopping wait for the plugin (a plugin host gives it up to its stop
/// timeout before SIGKILL): the reply gets at least this long, seconds.
const LIFECYCLE_TIMEOUT_SECS: f64 = 35.0;

pub async fn plugins(args: PluginsArgs) -> Result<(), Failure> {
    let mut conn = args.conn;
    if matches!(
        args.op,
        PluginsOp::Start { .. } | PluginsOp::Stop { .. } | PluginsOp::Restart { .. }
    ) {
        conn.timeout = conn.timeout.max(LIFECYCLE_TIMEOUT_SECS);
    }
    let conn = &conn;
    match args.op {
        PluginsOp::List => request_print(conn, PluginsList {}).await,
        PluginsOp::Start { id } => request_print(conn, PluginsStart { id }).await,
        PluginsOp::Stop { id } => request_print(conn, PluginsStop { id }).await,
        PluginsOp::Restart { id } => request_print(conn, PluginsRestart { id }).await,
        PluginsOp::Logs { id, lines } => {
            let client = connect(conn).await?;
            let result = client
                .request(PluginsLogs {
                    id,
                    lines: Some(lines),
                })
                .await;
            let _ = client.shutdown().await;
            let logs = result?;
            if logs.dropped > 0 {
                println!("({} older lines dropped)", logs.dropped);
            }
            for l in logs.lines {
                let at = chrono::DateTime::from_timestamp_millis(l.ts as i64)
                    .map(|t| {
                        t.with_timezone(&chrono::Local)
                            .format("%F %T%.3f")
                            .to_string()
                    })
                    .unwrap_or_default();
                println!("{at} {:<6} {}", l.stream, l.line);
            }
            Ok(())
        }
    }
}
