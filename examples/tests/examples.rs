//! Every example runs: the in-process plugin program, the remote plugin program, and the
//! shell session with mosquitto clients.

use std::process::Stdio;
use std::time::Duration;

use hcore_client::{Client, ClientOptions};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const WAIT: Duration = Duration::from_secs(15);

async fn wait_registered(c: &Client, service: &str, method: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = c.call("registry.list", json!({})).await.unwrap();
        if list["services"][service][method].is_array() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service}.{method} never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_run() {
    // The in-process example: broker + kernel + its plugin.
    let mut inproc = tokio::process::Command::new(env!("CARGO_BIN_EXE_in_process"))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(inproc.stdout.take().unwrap()).lines();
    let ready = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let addr = ready
        .strip_prefix("ready on ")
        .expect("ready line")
        .to_string();
    let url = format!("mqtt://{addr}");
    let me = Client::connect(&url, ClientOptions::new("tester").quiet())
        .await
        .unwrap();
    wait_registered(&me, "counter", "add").await;
    assert_eq!(
        me.call("counter.add", json!({"by": 2})).await.unwrap(),
        json!({"value": 2})
    );
    assert_eq!(
        me.call("counter.add", json!({})).await.unwrap(),
        json!({"value": 3})
    );

    // The remote example against it.
    let mut remote = tokio::process::Command::new(env!("CARGO_BIN_EXE_remote"))
        .arg(&url)
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_registered(&me, "weather", "now").await;
    assert_eq!(
        me.call("weather.now", json!({})).await.unwrap()["celsius"],
        21.5
    );
    // SIGTERM through the shell's built-in kill.
    let pid = remote.id().unwrap();
    std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    let status = tokio::time::timeout(WAIT, remote.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "the remote plugin stops cleanly on SIGTERM"
    );

    // The shell session.
    let port = addr.rsplit(':').next().unwrap().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/shell/session.sh");
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("sh")
            .arg(script)
            .arg(&port)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replies: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        replies.contains(&json!({"result": {"changed": true, "version": 1}})),
        "{text}"
    );
    assert!(text.contains(r#""value":"closed""#), "{text}");
    assert!(
        text.contains("hc/event/kernel/state_changed/shell/lamp"),
        "{text}"
    );
    let _ = inproc.kill().await;
}
