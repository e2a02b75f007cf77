//! A NATS cluster that enforces hcore's users and policy: `hcore export nats` writes the
//! authorization every node includes; the kernel logs in with the login the export made.
//! Users reach their rights on any node, and the attacks an ACL must stop are refused:
//! a wrong password, speaking as another plugin (status, calls, state records), forging
//! the kernel's deliveries, reading another's replies or calls or nats-server's own QoS 1
//! delivery subjects; a connection with alice's client id never gets her rights.
//!
//! A refused publish is silent on NATS, so each forgery is followed by an allowed message
//! from the same connection on the same node; the watcher (an administrator) must see
//! the allowed one and never the forgery before it.

use hcore_client::{Client, ClientOptions, Subscription};
use hcore_tests::binary::{add_user, hcore_bin};
use hcore_tests::bus::spawn_kernel;
use hcore_tests::hub::{until_online, wait_registered};
use hcore_tests::nats::NatsCluster;
use hcore_tests::{TempDir, WAIT};
use serde_json::json;

async fn login(url: &str, user: &str, client_id: &str, password: &str) -> Result<Client, String> {
    let mut o = ClientOptions::new(client_id);
    o.username = Some(user.into());
    o.password = Some(password.into());
    Client::connect(url, o).await.map_err(|e| e.to_string())
}

/// Messages on `sub` until one whose payload is `sentinel`: none may contain `forged`.
async fn none_forged_before(sub: &mut Subscription, sentinel: &str, what: &str) {
    loop {
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: the allowed message never came"))
            .expect("subscription open");
        let text = String::from_utf8_lossy(&m.payload);
        assert!(!text.contains("forged"), "{what}: {} {text}", m.topic);
        if text == sentinel {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_cluster_enforces_the_users_and_policy() {
    hcore_tests::init_tracing();
    let dir = TempDir::new();
    let data = dir.path().join("data");
    for (user, role) in [
        ("alice", "plugin"),
        ("mallory", "plugin"),
        ("watcher", "admin"),
        ("eye", "observer"),
    ] {
        add_user(&data, user, role, "pw");
    }
    let out = dir.path().join("nats");
    let st = std::process::Command::new(hcore_bin())
        .args(["export", "nats"])
        .arg(&out)
        .arg("--data-dir")
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success(), "hcore export nats");
    // (nats-server resolves an include against the including file's directory.)
    let include = "include \"nats/authorization.conf\"";
    let cluster = NatsCluster::start_with(3, dir.path(), include, Some(("watcher", "pw"))).await;
    let url = |i: usize| cluster.nodes[i].url.clone();

    // Logins: a wrong password and an unknown user are refused; the kernel (with the
    // login the export made) reaches node 0.
    assert!(login(&url(1), "alice", "alice", "wrong").await.is_err());
    assert!(login(&url(1), "nobody", "nobody", "pw").await.is_err());
    let watcher = login(&url(1), "watcher", "watcher", "pw").await.unwrap();
    let mut status = watcher.subscribe("hc/kernel/status").await.unwrap();
    let _kernel = spawn_kernel(&url(0), &data);
    until_online(&mut status).await;

    // The core works across nodes with the rights each user has: alice (node 2) provides,
    // mallory (node 1) calls her, she sets her own state.
    let alice = login(&url(2), "alice", "alice", "pw").await.unwrap();
    alice
        .provide("alice.echo", |call| async move { Ok(call.params) })
        .await
        .unwrap();
    let mallory = login(&url(1), "mallory", "mallory", "pw").await.unwrap();
    wait_registered(&mallory, "alice.echo", "alice").await;
    assert_eq!(
        mallory.call("alice.echo", json!({"x": 1})).await.unwrap(),
        json!({"x": 1})
    );
    alice.state().set("alice/lamp", json!("on")).await.unwrap();
    alice.storage().set("secret", json!(1)).await.unwrap();

    // Reading what is not hers is refused at subscribe time.
    for filter in [
        "hc/reply/#",
        "hc/reply/alice/#",
        "hc/call/#",
        "hc/deliver/alice/#",
        "#",
        "$MQTT/sub/#",
    ] {
        let sub = mallory.subscribe(filter).await;
        assert!(sub.is_err(), "mallory subscribed {filter}");
    }

    // Forgeries, each followed by an allowed message from the same connection, which the
    // watcher must see first. mallory provides nothing and may publish replies; eye, an
    // observer, may not: a reply needs the call's id, which neither can read.
    let eye = login(&url(1), "eye", "eye", "pw").await.unwrap();
    let mut seen = watcher.subscribe("#").await.unwrap();
    eye.publish_raw(
        "hc/reply/mallory/forged",
        r#"{"id":"x","result":"forged"}"#,
        false,
    )
    .await
    .unwrap();
    eye.publish_raw("hc/call/eye/kernel/ping", "sentinel eye", false)
        .await
        .unwrap();
    none_forged_before(&mut seen, "sentinel eye", "eye's reply").await;
    let forgeries = [
        (
            "hc/plugin/alice/status",
            r#"{"state":"offline","session":1,"forged":1}"#,
        ),
        (
            "hc/kernel/status",
            r#"{"state":"offline","session":1,"forged":1}"#,
        ),
        (
            "hc/deliver/alice/alice/mallory/alice/echo",
            r#"{"id":"forged","params":{}}"#,
        ),
        ("hc/state/alice/lamp", r#"{"value":"forged","version":99}"#),
        (
            "hc/call/alice/storage/set",
            r#"{"params":{"key":"secret","value":"forged"}}"#,
        ),
        ("hc/event/alice/rang", r#"{"forged":1}"#),
    ];
    for (i, (topic, payload)) in forgeries.iter().enumerate() {
        mallory.publish_raw(topic, *payload, false).await.unwrap();
        let sentinel = format!("sentinel {i}");
        mallory
            .publish_raw("hc/event/mallory/sentinel", sentinel.clone(), false)
            .await
            .unwrap();
        none_forged_before(&mut seen, &sentinel, topic).await;
    }
    assert_eq!(alice.storage().get("secret").await.unwrap(), Some(json!(1)));
    assert_eq!(
        mallory
            .state()
            .get("alice/lamp")
            .await
            .unwrap()
            .map(|r| r.value),
        Some(json!("on"))
    );
    // And alice still answers (her status was not taken over).
    assert_eq!(
        mallory.call("alice.echo", json!({"y": 2})).await.unwrap(),
        json!({"y": 2})
    );

    // Takeover: mallory with alice's client id. nats-server closes alice's connection
    // (MQTT's rule for a reused client id; it cannot tie the id to a user), but the
    // connection is still mallory's: it may not read alice's deliveries, so it can
    // never answer her calls. Once it leaves, alice is back and answers.
    let as_alice = login(&url(1), "mallory", "alice", "pw").await.unwrap();
    assert!(as_alice.subscribe("hc/deliver/alice/#").await.is_err());
    let _ = as_alice.shutdown().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match mallory.call("alice.echo", json!({"z": 3})).await {
            Ok(v) => break assert_eq!(v, json!({"z": 3})),
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "alice never came back: {e}"
            ),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
