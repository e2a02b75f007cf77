//! External-broker mode: `hcore run --broker mqtt://...` against a real mosquitto with
//! the files `hcore export mosquitto` wrote, passing the core scenarios with the SDK and
//! with mosquitto_pub/sub: events, RPC both ways, state, storage, plugin status; and the
//! attacks on identity, storage, replies and takeover, which mosquitto must refuse.

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

/// mosquitto on a free port with the files `hcore export mosquitto` wrote for `data`
/// (and `config`, whose in-process plugins get logins).
/// `tls`: the directory of `hcore certs` files to serve TLS with.
async fn mosquitto(
    dir: &std::path::Path,
    data: &std::path::Path,
    config: &std::path::Path,
    tls: Option<&std::path::Path>,
) -> Mosquitto {
    let out = dir.join("mosquitto");
    let st = std::process::Command::new(hcore_bin())
        .args(["export", "mosquitto"])
        .arg(&out)
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .status()
        .unwrap();
    assert!(st.success(), "hcore export mosquitto");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = out.join("mosquitto.conf");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("listener 1883", &listener(port, tls))
        // Tests run as root: keep mosquitto from switching to its own user, which could
        // not read the files (0640, owned by root).
        + "user root\n";
    std::fs::write(&conf, text).unwrap();
    let child = hcore_tests::daemon("mosquitto", &conf);
    let addr = format!("127.0.0.1:{port}");
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return Mosquitto { child, port };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("mosquitto did not start");
}

fn listener(port: u16, tls: Option<&std::path::Path>) -> String {
    let mut l = format!("listener {port} 127.0.0.1");
    if let Some(d) = tls {
        let f = |name: &str| d.join(name).display().to_string();
        l += &format!(
            "\ncafile {}\ncertfile {}\nkeyfile {}",
            f("ca.pem"),
            f("server.pem"),
            f("server.key")
        );
    }
    l
}

async fn client(url: &str, id: &str) -> Client {
    client_as(url, id, id).await
}

/// A client logged in as `user` with client id `client_id`.
async fn client_as(url: &str, user: &str, client_id: &str) -> Client {
    let mut o = ClientOptions::new(client_id);
    o.username = Some(user.into());
    o.password = Some("pw".into());
    Client::connect(url, o).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_scenarios_on_mosquitto() {
    init_tracing();
    let dir = TempDir::new();
    let data = dir.0.join("data");
    for (user, role) in [
        ("alice", "plugin"),
        ("mallory", "plugin"),
        ("rust", "plugin"),
        ("watcher", "observer"),
        ("plug", "device"),
    ] {
        add_user(&data, user, role, "pw");
    }
    // alice may also command the `ext/...` state keys.
    std::fs::write(
        data.join("policy.toml"),
        "[user.alice]\nstate = [\"alice/#\", \"ext/#\"]\n",
    )
    .unwrap();
    let config = dir.0.join("hcore.toml");
    std::fs::write(&config, "plugins = [\"example\"]\n").unwrap();
    let mut mq = mosquitto(&dir.0, &data, &config, None).await;
    let url = format!("mqtt://127.0.0.1:{}", mq.port);
    let mut run = tokio::process::Command::new(hcore_bin());
    run.args(["run", "--broker", &url, "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data);
    let log = std::fs::File::create(dir.0.join("hcore.log")).unwrap();
    let mut hcore = run
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let rust = client(&url, "rust").await;
    until_online(&mut rust.subscribe("hc/kernel/status").await.unwrap()).await;
    // Plugin status: the in-process example plugin reached mosquitto as a TCP client.
    // (It registers its methods while it starts, so "running" may come a moment later.)
    wait_registered(&rust, "example.hello", "example").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let list = rust.call("plugins.list", json!({})).await.unwrap();
        let plugins = list["plugins"].as_array().unwrap().clone();
        if plugins
            .iter()
            .any(|p| p["id"] == "example" && p["state"] == "running")
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

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
    rust.state().set("rust/lamp", json!("on")).await.unwrap();
    assert_eq!(
        watcher
            .state()
            .get("rust/lamp")
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

    // Forged replies need the call's id: mallory cannot read calls to alice's service.
    let mut calls = mallory.subscribe("hc/call/#").await.ok();
    assert_eq!(
        rust.call("alice.echo", json!({"y": 2})).await.unwrap(),
        json!({"y": 2})
    );
    if let Some(calls) = calls.as_mut() {
        let seen = tokio::time::timeout(Duration::from_millis(300), calls.next()).await;
        assert!(
            seen.is_err(),
            "mallory read a call: {:?}",
            seen.ok().flatten().map(|m| m.topic)
        );
    }

    // Takeover: mallory with alice's client id, then with the kernel's. The client id is
    // the user name on this mosquitto, so neither is kicked off.
    let alice_session = alice.session();
    let mut kernel_status = watcher.subscribe("hc/kernel/status").await.unwrap();
    let _ = tokio::time::timeout(WAIT, kernel_status.next()).await; // the retained one
    let as_alice = client_as(&url, "mallory", "alice").await;
    let as_kernel = client_as(&url, "mallory", "kernel").await;
    assert_eq!(
        rust.call("alice.echo", json!({"z": 3})).await.unwrap(),
        json!({"z": 3})
    );
    assert_eq!(
        alice.session(),
        alice_session,
        "alice was kicked off and reconnected"
    );
    rust.state().set("rust/after", json!(1)).await.unwrap();
    let flap = tokio::time::timeout(Duration::from_millis(300), kernel_status.next()).await;
    assert!(
        flap.is_err(),
        "the kernel's status changed: {:?}",
        flap.ok().flatten().map(|m| m.payload)
    );
    drop((as_alice, as_kernel));

    // A device's default topics (Tasmota's tele/stat/cmnd) pass; observers read them.
    let plug = client(&url, "plug").await;
    let mut tele = watcher.subscribe("tele/#").await.unwrap();
    plug.publish_raw("tele/plug/STATE", r#"{"POWER":"ON"}"#, false)
        .await
        .unwrap();
    let m = tokio::time::timeout(WAIT, tele.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.topic, "tele/plug/STATE");

    let _ = hcore.kill().await;
    let _ = mq.child.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kernel_and_its_plugins_reach_mosquitto_over_tls() {
    init_tracing();
    let dir = TempDir::new();
    let (data, pki) = (dir.0.join("data"), dir.0.join("certs"));
    let st = std::process::Command::new(hcore_bin())
        .args(["certs", "--dir"])
        .arg(&pki)
        .args(["server", "127.0.0.1"])
        .status()
        .unwrap();
    assert!(st.success());
    add_user(&data, "watcher", "observer", "pw");
    let ca = pki.join("ca.pem");
    let config = dir.0.join("hcore.toml");
    std::fs::write(
        &config,
        format!(
            "plugins = [\"example\"]\nbroker_ca = \"{}\"\n",
            ca.display()
        ),
    )
    .unwrap();
    let mut mq = mosquitto(&dir.0, &data, &config, Some(&pki)).await;
    let url = format!("mqtts://127.0.0.1:{}", mq.port);
    let mut hcore = tokio::process::Command::new(hcore_bin())
        .args(["run", "--broker", &url, "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.0.join("hcore.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut o = ClientOptions::new("watcher").quiet();
    (o.username, o.password) = (Some("watcher".into()), Some("pw".into()));
    o.tls.ca = Some(ca);
    let watcher = Client::connect(&url, o).await.unwrap();
    until_online(&mut watcher.subscribe("hc/kernel/status").await.unwrap()).await;
    // The in-process example plugin answers through mosquitto's TLS listener.
    wait_registered(&watcher, "example.hello", "example").await;
    let r = watcher
        .call("example.hello", json!({"name": "tls"}))
        .await
        .unwrap();
    assert_eq!(r["greeting"], "Hello, tls!");
    let _ = hcore.kill().await;
    let _ = mq.child.kill().await;
}
