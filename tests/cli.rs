//! The `hcore` binary as a user meets it: client commands against a running `hcore run`,
//! the demo, graceful shutdown under load, and user errors as one clear line.

use std::process::Output;

use hcore_client::{Client, ClientOptions};
use hcore_tests::binary::*;
use hcore_tests::hub::*;
use serde_json::{json, Value};

fn hcore() -> tokio::process::Command {
    let mut c = tokio::process::Command::new(hcore_bin());
    c.env_remove("RUST_LOG").kill_on_drop(true);
    c
}

async fn cli(url: &str, args: &[&str]) -> Output {
    let mut c = hcore();
    c.args(args).args(["--url", url]);
    tokio::time::timeout(WAIT, c.output())
        .await
        .expect("command finished")
        .unwrap()
}

/// `hcore run` on a free port with one bundled plugin.
async fn run_with_plugin(plugin: &str, dir: &TempDir) -> (tokio::process::Child, String) {
    let mut run = hcore();
    run.args([
        "run",
        "--listen",
        "127.0.0.1:0",
        "--plugin",
        plugin,
        "--data-dir",
    ])
    .arg(&dir.0);
    spawn_with(run).await
}

fn stdout_json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?} stderr {:?} status {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            o.status
        )
    })
}

/// A user error: non-zero exit, one `hcore: ...` line at the end of stderr, no panic.
fn one_line_error(o: &Output, code: i32, contains: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("hcore: ") && last.contains(contains),
        "last line: {last:?} (want {contains:?}); stderr: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_against_a_running_hcore() {
    init_tracing();
    let dir = TempDir::new();
    let (mut run, url) = spawn_hcore(&dir.0).await;

    let v = hcore().arg("version").output().await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        format!("hcore {}", env!("CARGO_PKG_VERSION"))
    );

    let o = cli(
        &url,
        &["call", "state.set", r#"{"key":"cli/x","value":{"n":1}}"#],
    )
    .await;
    assert_eq!(stdout_json(&o), json!({"version": 1, "changed": true}));
    let o = cli(&url, &["state", "get", "cli/x"]).await;
    assert_eq!(stdout_json(&o)["value"], json!({"n": 1}));
    let o = cli(&url, &["state", "set", "cli/x", "2"]).await;
    assert_eq!(stdout_json(&o)["version"], 2);
    let o = cli(
        &url,
        &["state", "set", "cli/x", "3", "--expect-version", "1"],
    )
    .await;
    one_line_error(&o, 2, "conflict");
    let o = cli(&url, &["state", "list", "cli/"]).await;
    assert_eq!(stdout_json(&o)["items"][0]["key"], "cli/x");
    let o = cli(&url, &["state", "delete", "cli/x"]).await;
    assert_eq!(stdout_json(&o), json!({"deleted": true}));

    let o = cli(&url, &["storage", "set", "token", r#""abc""#]).await;
    assert!(o.status.success());
    let o = cli(&url, &["storage", "get", "token"]).await;
    assert_eq!(stdout_json(&o), json!({"value": "abc"}));
    let o = cli(&url, &["storage", "list"]).await;
    assert_eq!(stdout_json(&o)["items"][0]["key"], "token");
    let o = cli(&url, &["storage", "delete", "token"]).await;
    assert_eq!(stdout_json(&o), json!({"deleted": true}));

    let o = cli(&url, &["call", "nobody.home"]).await;
    one_line_error(&o, 2, "no_responders");
    let o = cli(&url, &["call", "state.get", "{not json"]).await;
    one_line_error(&o, 1, "not valid JSON");

    // pub (retained) then sub sees it; sub pretty-prints events.
    let o = cli(&url, &["pub", "--retain", "dev/door", "open"]).await;
    assert!(o.status.success());
    let o = cli(&url, &["sub", "--raw", "-C", "1", "dev/#"]).await;
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "dev/door open");
    let mut sub = hcore();
    sub.args(["sub", "-C", "1", "hc/event/#", "--url", &url])
        .stdout(std::process::Stdio::piped());
    let sub = sub.spawn().unwrap();
    let emitter = Client::connect(&url, ClientOptions::new("emitter"))
        .await
        .unwrap();
    let pretty = tokio::time::timeout(WAIT, async {
        let mut sub = sub;
        loop {
            emitter
                .publish_event("motion/hall", json!({"seen": true}))
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if let Ok(Some(status)) = sub.try_wait() {
                assert!(status.success());
                let mut out = String::new();
                use tokio::io::AsyncReadExt;
                sub.stdout
                    .take()
                    .unwrap()
                    .read_to_string(&mut out)
                    .await
                    .unwrap();
                break out;
            }
        }
    })
    .await
    .unwrap();
    // `HH:MM:SS.mmm event ...`
    let (time, line) = pretty.split_once(' ').unwrap();
    assert!(
        time.len() == 12 && time.chars().filter(|c| *c == ':').count() == 2 && time.contains('.'),
        "{pretty}"
    );
    assert!(
        line.starts_with("event motion/hall from emitter"),
        "{pretty}"
    );

    // A filter that is not one, and one the broker refuses: one clear line, no hang.
    let o = cli(&url, &["sub", "hc/#/x"]).await;
    one_line_error(&o, 1, "'#' must be the whole last level");
    let o = cli(&url, &["sub", "$private/#"]).await;
    one_line_error(&o, 1, "refused the subscription to $private/#");

    let _ = run.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_commands() {
    init_tracing();
    let dir = TempDir::new();
    let (mut run, url) = run_with_plugin("example", &dir).await;
    let admin = Client::connect(&url, ClientOptions::new("admin").quiet())
        .await
        .unwrap();
    wait_registered(&admin, "example.hello", "example").await;
    let o = cli(&url, &["plugins", "list"]).await;
    let list = stdout_json(&o);
    assert_eq!(list["plugins"][0]["id"], "example");
    assert_eq!(list["plugins"][0]["state"], "running");
    let o = cli(&url, &["plugins", "stop", "example"]).await;
    assert_eq!(stdout_json(&o)["state"], "stopped");
    let o = cli(&url, &["call", "example.hello"]).await;
    one_line_error(&o, 2, "no_responders");
    let o = cli(&url, &["plugins", "start", "example"]).await;
    assert_eq!(stdout_json(&o)["state"], "running");
    let o = cli(&url, &["call", "example.hello", r#"{"name":"cli"}"#]).await;
    assert_eq!(stdout_json(&o)["greeting"], "Hello, cli!");
    // The in-process plugin's log events, once per start; not other plugins' or the hub's.
    let o = cli(&url, &["plugins", "logs", "example", "-n", "50"]).await;
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert_eq!(text.matches("example plugin started").count(), 2, "{text}");
    assert!(!text.contains("listener ready"), "{text}");
    one_line_error(
        &cli(&url, &["plugins", "logs", "nobody"]).await,
        2,
        "not_found",
    );
    let _ = run.kill().await;
}

#[tokio::test]
async fn demo_runs_and_explains_itself() {
    let o = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        hcore().args(["demo", "--pace-ms", "0"]).output(),
    )
    .await
    .unwrap()
    .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for needle in [
        "mosquitto_sub -p",
        "received from demo",
        "Hello, demo!",
        "bad_request",
        "no_responders",
        "version 2, changed true",
        "changed false",
        "conflict",
        "\"dark\"",
        "state \"failed\"",
        "restarts 1",
        "Hello, again!",
    ] {
        assert!(out.contains(needle), "demo output lacks {needle:?}:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_writes_keeps_every_acknowledged_write() {
    init_tracing();
    let dir = TempDir::new();
    let (run, url) = spawn_hcore(&dir.0).await;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let c = Client::connect(&url, ClientOptions::new(format!("t{w}")).quiet())
            .await
            .unwrap();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            for i in 0u64.. {
                match c.storage().set(&format!("k{i}"), json!(i)).await {
                    Ok(()) => acked.lock().unwrap().push((w, i)),
                    Err(_) => break,
                }
            }
        }));
    }
    eventually(|| acked.lock().unwrap().len() >= 500).await;
    sigterm(run.id().unwrap());
    let mut run = run;
    let status = tokio::time::timeout(WAIT, run.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "hcore exits 0 on SIGTERM: {status}");
    for w in writers {
        let _ = tokio::time::timeout(WAIT, w).await;
    }
    let acked = acked.lock().unwrap().clone();
    let (mut run, url) = spawn_hcore(&dir.0).await;
    for w in 0..8 {
        let c = Client::connect(&url, ClientOptions::new(format!("t{w}")).quiet())
            .await
            .unwrap();
        for (_, i) in acked.iter().filter(|(who, _)| *who == w) {
            assert_eq!(
                c.storage().get(&format!("k{i}")).await.unwrap(),
                Some(json!(i))
            );
        }
    }
    let _ = run.kill().await;
}

#[tokio::test]
async fn user_errors_are_one_clear_line() {
    let dir = TempDir::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let run = |args: Vec<String>| async move {
        let mut c = hcore();
        c.args(&args);
        tokio::time::timeout(WAIT, c.output())
            .await
            .unwrap()
            .unwrap()
    };
    let data = dir.0.to_string_lossy().to_string();
    let o = run(vec![
        "run".into(),
        "--listen".into(),
        port.clone(),
        "--data-dir".into(),
        data.clone(),
    ])
    .await;
    one_line_error(&o, 1, "cannot listen on");
    let bad = dir.0.join("bad.toml");
    std::fs::write(
        &bad,
        "plugins = [\"example\"]\n[broker]\nmax_packet_size = \"huge\"\n",
    )
    .unwrap();
    let o = run(vec![
        "run".into(),
        "--config".into(),
        bad.to_string_lossy().into(),
    ])
    .await;
    one_line_error(&o, 1, "line 3");
    let o = run(vec![
        "run".into(),
        "--config".into(),
        "/nonexistent/hcore.toml".into(),
    ])
    .await;
    one_line_error(&o, 1, "cannot read config");
    let o = run(vec![
        "run".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        "/proc/hcore-cannot-write".into(),
    ])
    .await;
    one_line_error(&o, 1, "storage at");
    let o = run(vec![
        "run".into(),
        "--broker".into(),
        "mqtt://127.0.0.1:1".into(),
        "--data-dir".into(),
        data.clone(),
    ])
    .await;
    one_line_error(&o, 1, "cannot connect");
    let o = run(vec![
        "call".into(),
        "state.get".into(),
        "--url".into(),
        "mqtt://127.0.0.1:1".into(),
    ])
    .await;
    one_line_error(&o, 1, "cannot connect");
    let o = run(vec![
        "run".into(),
        "--plugin".into(),
        "nope".into(),
        "--data-dir".into(),
        data,
    ])
    .await;
    one_line_error(&o, 1, "unknown plugin");
    drop(taken);
}

#[tokio::test]
async fn listening_beyond_loopback_warns_about_anonymous_access() {
    let dir = TempDir::new();
    let mut c = hcore();
    c.args(["run", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(&dir.0);
    c.stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let warned = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("WARN") && line.contains("anonymous") {
                return true;
            }
            if line.contains("kernel running") {
                return false;
            }
        }
        false
    })
    .await
    .unwrap();
    assert!(warned, "no warning about anonymous access on 0.0.0.0");
    let _ = child.kill().await;
}

/// `hcore run --plugin devices` with a Zigbee2MQTT bridge (simulated, real formats):
/// `hcore devices list|get|set`, and a state command published with `hcore pub`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_commands() {
    init_tracing();
    let dir = TempDir::new();
    let (mut run, url) = run_with_plugin("devices", &dir).await;
    let bridge = Client::connect(&url, ClientOptions::new("z2m-sim").quiet())
        .await
        .unwrap();
    let lamp = json!([{"ieee_address": "0x000b57fffec6a5b2", "type": "Router", "friendly_name": "hall_lamp",
        "definition": {"model": "LED1545G12", "vendor": "IKEA", "exposes": [{"type": "light", "features": [
            {"type": "binary", "name": "state", "property": "state", "access": 7, "value_on": "ON", "value_off": "OFF"}]}]}}]);
    let mut sets = bridge.subscribe("zigbee2mqtt/hall_lamp/set").await.unwrap();
    // The bridge applies each /set and reports the new state, as Zigbee2MQTT does.
    let b = bridge.clone();
    let answering = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(m) = sets.next().await {
            seen.push(String::from_utf8_lossy(&m.payload).into_owned());
            b.publish_raw("zigbee2mqtt/hall_lamp", m.payload.clone(), false)
                .await
                .unwrap();
            if seen.len() == 2 {
                return seen;
            }
        }
        seen
    });
    wait_registered(&bridge, "devices.list", "devices").await;
    bridge
        .publish_raw(
            "zigbee2mqtt/bridge/devices",
            lamp.to_string().into_bytes(),
            true,
        )
        .await
        .unwrap();
    bridge
        .publish_raw("zigbee2mqtt/hall_lamp", r#"{"state":"OFF"}"#, false)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let o = cli(&url, &["devices", "list"]).await;
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        if text.contains("hall_lamp") && text.contains("online") {
            assert!(text.starts_with("ID"), "{text}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never listed: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let o = cli(&url, &["devices", "set", "hall_lamp", r#"{"state": "on"}"#]).await;
    let out = stdout_json(&o);
    assert_eq!(
        (out["status"].as_str(), out["confirmed"].as_bool()),
        (Some("done"), Some(true)),
        "{out}"
    );
    let o = cli(
        &url,
        &[
            "pub",
            "hc/state/devices/hall_lamp/set",
            r#"{"state": "OFF"}"#,
        ],
    )
    .await;
    assert!(o.status.success());
    let seen = tokio::time::timeout(WAIT, answering)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, [r#"{"state":"ON"}"#, r#"{"state":"OFF"}"#]);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = stdout_json(&cli(&url, &["devices", "get", "hall_lamp"]).await);
        if got["reported"]["state"] == "OFF" {
            assert_eq!(got["properties"]["state"]["settable"], true);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{got}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    one_line_error(
        &cli(&url, &["devices", "set", "hall_lamp", r#"{"colour": 1}"#]).await,
        2,
        "no property colour",
    );
    let _ = run.kill().await;
}
