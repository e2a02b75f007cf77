//! A plugin written in Python from PROTOCOL.md alone (examples/python/thermostat.py,
//! paho-mqtt): the Rust SDK calls its method, it calls a kernel method, and its will
//! takes its service away when it dies.

use hcore_client::ErrorCode;
use hcore_tests::hub::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_plugin_serves_rust_and_calls_the_kernel() {
    let h = start().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/python/thermostat.py"
    );
    let mut python = tokio::process::Command::new("python3")
        .arg(script)
        .arg(h.addr.ip().to_string())
        .arg(h.addr.port().to_string())
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("python3 (with paho-mqtt: pip install paho-mqtt)");
    let rust = h.tcp("rust-caller").await;
    wait_registered(&rust, "thermostat.target", "thermostat").await;

    let r = rust
        .call("thermostat.target", json!({"celsius": 21.5}))
        .await
        .unwrap();
    assert_eq!(r, json!({"target": 21.5}));
    let e = rust
        .call("thermostat.target", json!({"celsius": "warm"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BadRequest));
    // The plugin recorded the target through the kernel, as itself.
    let deadline = tokio::time::Instant::now() + WAIT;
    let rec = loop {
        if let Some(rec) = rust.state().get("thermostat/target").await.unwrap() {
            break rec;
        }
        assert!(tokio::time::Instant::now() < deadline, "state never set");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(
        (rec.value, rec.source.as_str()),
        (json!(21.5), "thermostat")
    );

    // It dies: its will takes the service away.
    python.kill().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match rust.call("thermostat.target", json!({"celsius": 20})).await {
            Err(e) if e.code() == Some(ErrorCode::NoResponders) => break,
            _ => assert!(
                tokio::time::Instant::now() < deadline,
                "service still registered"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    h.stop().await;
}
