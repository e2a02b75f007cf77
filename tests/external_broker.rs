//! External-broker mode: `hcore run --broker mqtt://...` against a real mosquitto (with
//! deploy/mosquitto's ACL and passwords), passing the core scenarios with the SDK and
//! with mosquitto_pub/sub: events, RPC both ways, state, storage, plugin status, and the
//! identity rules enforced by mosquitto's ACL.

use std::process::Stdio;
use std::time::Duration;

use hcore_client::{Client, ClientOptions, ErrorCode};
use hcore_tests::binary::*;
use hcore_tests::hub::*;
use serde_json::json;

struct Mosquitto {
    child: tokio::process::Child,
    port: u16,
}

/// mosquitto on a free port with deploy/mosquitto's ACL and one password for everyone.
async fn mosquitto(dir: &std::path::Path) -> Mosquitto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let passwd = dir.join("passwd");
    for (i, user) in ["kernel", "example", "alice", "mallory", "rust", "watcher"]
        .iter()
        .enumerate()
    {
        let mut c = std::process::Command::new("mosquitto_passwd");
        if i == 0 {
            c.arg("-c");
        }
        let st = c
            .args(["-b"])
            .arg(&passwd)
            .args([user, "pw"])
            .status()
            .expect("mosquitto_passwd (mosquitto package)");
        assert!(st.success());
    }
    // The shipped ACL, plus the documented block for one more provider (alice).
    let acl = dir.join("hcore.acl");
    let shipped_acl = include_str!("../deploy/mosquitto/hcore.acl");
    std::fs::write(
        &acl,
        format!("{shipped_acl}\nuser alice\ntopic read hc/call/+/alice/#\n"),
    )
    .unwrap();
    let acl = acl.to_string_lossy().into_owned();
    let conf = dir.join("mosquitto.conf");
    let shipped = include_str!("../deploy/mosquitto/mosquitto.conf");
    let conf_text = shipped
        .replace("listener 1883", &format!("listener {port} 127.0.0.1"))
        .replace("/etc/mosquitto/hcore.passwd", &passwd.to_string_lossy())
        .replace("/etc/mosquitto/hcore.acl", &acl)
        .replace("persistence true", "persistence false");
    std::fs::write(&conf, conf_text).unwrap();
    let child = tokio::process::Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto");
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return Mosquitto { child, port };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("mosquitto did not start");
}

async fn client(url: &str, id: &str) -> Client {
    let mut o = ClientOptions::new(id);
    o.username = Some(id.into());
    o.password = Some("pw".into());
    Client::connect(url, o).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_scenarios_on_mosquitto() {
    init_tracing();
    let dir = TempDir::new();
    let mut mq = mosquitto(&dir.0).await;
    let url = format!("mqtt://127.0.0.1:{}", mq.port);
    let config = dir.0.join("hcore.toml");
    std::fs::write(
        &config,
        format!("plugins = [\"example\"]\nbroker_url = \"{url}\"\nbroker_username = \"kernel\"\nbroker_password = \"pw\"\n"),
    )
    .unwrap();
    let mut run = tokio::process::Command::new(hcore_bin());
    run.args(["run", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.0.join("data"));
    let log = std::fs::File::create(dir.0.join("hcore.log")).unwrap();
    let mut hcore = run
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let rust = client(&url, "rust").await;
    let mut status = rust.subscribe("hc/kernel/status").await.unwrap();
    loop {
        let s = tokio::time::timeout(WAIT, status.next())
            .await
            .expect("kernel online")
            .unwrap();
        if s.json().is_some_and(|v| v["state"] == "online") {
            break;
        }
    }
    // Plugin status: the in-process example plugin reached mosquitto as a TCP client.
    wait_registered(&rust, "example.hello", "example").await;
    let list = rust.call("plugins.list", json!({})).await.unwrap();
    assert!(list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["id"] == "example" && p["state"] == "running"));

    // RPC both ways: SDK -> in-process plugin, and an SDK provider called by mosquitto_rr.
    let r = rust
        .call("example.hello", json!({"name": "mosquitto"}))
        .await
        .unwrap();
    assert_eq!(r["greeting"], "Hello, mosquitto!");
    let alice = client(&url, "alice").await;
    alice
        .provide("alice.echo", |c| async move { Ok(c.params) })
        .await
        .unwrap();
    assert_eq!(
        rust.call("alice.echo", json!({"x": 1})).await.unwrap(),
        json!({"x": 1})
    );
    let e = rust.call("nobody.home", json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NoResponders));

    // Events.
    let watcher = client(&url, "watcher").await;
    let mut events = watcher.subscribe("hc/event/#").await.unwrap();
    rust.publish_event("demo/ping", json!({"n": 1}))
        .await
        .unwrap();
    let ev = loop {
        let e = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap();
        if e.topic == "hc/event/rust/demo/ping" {
            break e;
        }
    };
    assert_eq!(ev.envelope.unwrap().source, "rust");

    // State and storage.
    rust.state().set("ext/lamp", json!("on")).await.unwrap();
    assert_eq!(
        watcher
            .state()
            .get("ext/lamp")
            .await
            .unwrap()
            .unwrap()
            .value,
        json!("on")
    );
    alice.storage().set("secret", json!(1)).await.unwrap();
    assert_eq!(alice.storage().get("secret").await.unwrap(), Some(json!(1)));

    // mosquitto_pub/sub: a retained state record and a state command.
    let port = mq.port.to_string();
    let mut sub = tokio::process::Command::new("mosquitto_sub")
        .args([
            "-p",
            &port,
            "-i",
            "watcher2",
            "-u",
            "watcher",
            "-P",
            "pw",
            "-t",
            "hc/state/ext/door",
            "-C",
            "1",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::process::Command::new("mosquitto_pub")
        .args([
            "-p",
            &port,
            "-i",
            "alice-pub",
            "-u",
            "alice",
            "-P",
            "pw",
            "-t",
            "hc/state/ext/door/set",
            "-m",
            "\"open\"",
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let line = tokio::time::timeout(WAIT, async {
        use tokio::io::AsyncReadExt;
        let mut s = String::new();
        sub.stdout
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .await
            .unwrap();
        s
    })
    .await
    .unwrap();
    let rec: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(rec["value"], "open");

    // Identity is the broker's job here: mosquitto's ACL refuses speaking as another
    // client, and keeps alice's storage replies from mallory.
    let mallory = client(&url, "mallory").await;
    let mut snoop = mallory.subscribe("hc/reply/#").await.unwrap();
    mallory
        .publish_raw(
            "hc/call/alice/storage/set",
            r#"{"params":{"key":"secret","value":666}}"#,
            false,
        )
        .await
        .unwrap();
    assert_eq!(alice.storage().get("secret").await.unwrap(), Some(json!(1)));
    let leaked = tokio::time::timeout(Duration::from_millis(300), snoop.next()).await;
    assert!(
        leaked.is_err(),
        "mallory read a reply: {:?}",
        leaked.ok().flatten().map(|m| m.topic)
    );

    let _ = hcore.kill().await;
    let _ = mq.child.kill().await;
}
