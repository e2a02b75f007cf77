//! The attacks of someone on the Wi-Fi who has one credential (a compromised plugin), on
//! the embedded broker: taking over another identity's connection, speaking as it,
//! reading its storage, taking or answering its calls, and writing state or device
//! topics beyond its grants. Every one must be refused; the victim must not notice.

use std::net::SocketAddr;
use std::time::Duration;

use hcore_client::{Client, ErrorCode};
use hcore_kernel::users::{Role, Users};
use hcore_tests::hub::*;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
use serde_json::json;

/// A hub with these users (password "pw"), reached on its LAN listener.
async fn hub_with(users: &[(&str, Role)]) -> (Harness, SocketAddr) {
    let (h, lan) = start_with_lan().await;
    let store = Users::open(h.dir.path());
    for (name, role) in users {
        store.add(name, "pw", *role).unwrap();
    }
    (h, lan)
}

async fn login(lan: SocketAddr, user: &str) -> Client {
    login_as(lan, user, "pw", user).await
}

/// The PUBACK reason of a QoS 1 publish by `c`.
async fn publish_reason(c: &mut V5, topic: &str, payload: &str) -> Option<PubAckReason> {
    c.publish(topic, payload.to_string(), false).await;
    c.next_incoming(|p| match p {
        Packet::PubAck(a) => Some(a.reason),
        _ => None,
    })
    .await
}

/// Nothing arrives for `c` for a moment (a negative check: what it could have read).
async fn receives_nothing(c: &mut V5) -> Option<String> {
    let got = tokio::time::timeout(Duration::from_millis(300), c.next_publish()).await;
    got.ok()
        .flatten()
        .map(|p| String::from_utf8_lossy(&p.topic).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_speaks_only_for_its_own_identity() {
    let (h, lan) = hub_with(&[("lamp", Role::Plugin), ("mallory", Role::Plugin)]).await;
    let lamp = login(lan, "lamp").await;
    lamp.storage().set("secret", json!("s3cret")).await.unwrap();
    let session = lamp.session();

    // mallory's password with lamp's client id: its own identity, its own storage, and
    // lamp stays connected.
    let fake = login_as(lan, "mallory", "pw", "lamp").await;
    assert_eq!(fake.id(), "mallory");
    assert_eq!(fake.storage().get("secret").await.unwrap(), None);
    fake.storage().set("secret", json!("pwned")).await.unwrap();
    assert_eq!(
        lamp.storage().get("secret").await.unwrap(),
        Some(json!("s3cret"))
    );
    assert_eq!(lamp.session(), session, "lamp was taken over");
    assert!(h.broker().is_connected("lamp\0lamp"));

    // Speaking as lamp: its calls (storage), status (the u64::MAX session), events.
    let mut raw = raw_login(lan, "mallory", "lamp").await;
    for topic in [
        "hc/call/lamp/storage/set",
        "hc/plugin/lamp/status",
        "hc/event/lamp/motion",
        "hc/state/lamp/x",
    ] {
        let payload = r#"{"state":"offline","session":18446744073709551615}"#;
        assert_eq!(
            publish_reason(&mut raw, topic, payload).await,
            Some(PubAckReason::NotAuthorized),
            "{topic}"
        );
    }
    // Reading lamp's replies by name is refused.
    assert_eq!(
        raw.sub("hc/reply/lamp/#").await,
        vec![SubscribeReasonCode::NotAuthorized]
    );
    assert_eq!(
        lamp.storage().get("secret").await.unwrap(),
        Some(json!("s3cret"))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_else_takes_or_answers_a_plugins_calls() {
    let (h, lan) = hub_with(&[
        ("lamp", Role::Plugin),
        ("mallory", Role::Plugin),
        ("caller", Role::Plugin),
    ])
    .await;
    let lamp = login(lan, "lamp").await;
    lamp.provide("lamp.toggle", |c| async move {
        Ok(json!({"by": "lamp", "n": c.params["n"]}))
    })
    .await
    .unwrap();
    let caller = login(lan, "caller").await;
    wait_registered(&caller, "lamp.toggle", "lamp").await;

    let mallory = login(lan, "mallory").await;
    let e = mallory
        .call("registry.register", json!({"methods": ["lamp.toggle"]}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let mut raw = raw_login(lan, "mallory", "mallory-raw").await;
    let refused = raw.sub("$share/lamp.toggle/hc/call/+/lamp/toggle").await;
    assert_eq!(refused, vec![SubscribeReasonCode::NotAuthorized]);
    // Broad filters are granted, but no call of lamp's reaches mallory through them.
    raw.sub("$share/any/hc/call/+/+/#").await;
    raw.sub("hc/call/#").await;
    for n in 0..20 {
        let r = caller.call("lamp.toggle", json!({"n": n})).await.unwrap();
        assert_eq!(r, json!({"by": "lamp", "n": n}));
        // A blind forged reply (the caller's reply topic, a guessed id) is refused.
        let forged = format!(r#"{{"id":"{n}","result":{{"by":"mallory"}}}}"#);
        assert_eq!(
            publish_reason(&mut raw, "hc/reply/caller", &forged).await,
            Some(PubAckReason::NotAuthorized)
        );
    }
    assert_eq!(receives_nothing(&mut raw).await, None);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_grants_guard_state_and_device_topics() {
    let (h, lan) = hub_with(&[
        ("lamp", Role::Plugin),
        ("plug", Role::Device),
        ("eye", Role::Observer),
    ])
    .await;
    let lamp = login(lan, "lamp").await;
    let eye = login(lan, "eye").await;
    // A plugin writes its own keys, not the door lock's.
    lamp.state().set("lamp/on", json!(true)).await.unwrap();
    let e = lamp
        .state()
        .set("door/lock", json!("open"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    let e = lamp
        .call("plugins.stop", json!({"id": "lamp"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));

    // A device publishes its ecosystem's topics (Tasmota here); the observer reads them.
    let mut tele = eye.subscribe("tele/#").await.unwrap();
    let mut plug = raw_login(lan, "plug", "DVES_1A2B3C").await;
    assert_eq!(
        publish_reason(&mut plug, "tele/plug/STATE", r#"{"POWER":"ON"}"#).await,
        Some(PubAckReason::Success)
    );
    let m = tokio::time::timeout(WAIT, tele.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.topic, "tele/plug/STATE");
    for topic in ["hc/state/door/lock/set", "hc/event/plug/x", "private/x"] {
        assert_eq!(
            publish_reason(&mut plug, topic, "\"open\"").await,
            Some(PubAckReason::NotAuthorized),
            "{topic}"
        );
    }

    // The policy grants the device the door's keys: in force without a restart.
    std::fs::write(
        h.dir.path().join("policy.toml"),
        "[user.plug]\nstate = [\"door/#\"]\n",
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while publish_reason(&mut plug, "hc/state/door/lock/set", "\"open\"").await
        != Some(PubAckReason::Success)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the policy never took effect"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rec = eye.state().get("door/lock").await.unwrap().unwrap();
    assert_eq!((rec.value, rec.source.as_str()), (json!("open"), "plug"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_one_identity_share_its_calls_and_keep_each_other_connected() {
    let (h, lan) = hub_with(&[("lamp", Role::Plugin), ("caller", Role::Plugin)]).await;
    let mut replicas = Vec::new();
    for name in ["lamp-pi1", "lamp-pi2"] {
        let r = login_as(lan, "lamp", "pw", name).await;
        assert_eq!(r.id(), "lamp");
        r.provide("lamp.toggle", move |_c| async move { Ok(json!(name)) })
            .await
            .unwrap();
        replicas.push(r);
    }
    let sessions: Vec<u64> = replicas.iter().map(Client::session).collect();
    let caller = login(lan, "caller").await;
    wait_registered(&caller, "lamp.toggle", "lamp").await;
    let mut served = std::collections::HashSet::new();
    for _ in 0..20 {
        served.insert(caller.call("lamp.toggle", json!({})).await.unwrap());
    }
    assert_eq!(served.len(), 2, "both replicas take calls: {served:?}");
    // They share one storage namespace and stayed connected all along.
    replicas[0].storage().set("k", json!(1)).await.unwrap();
    assert_eq!(
        replicas[1].storage().get("k").await.unwrap(),
        Some(json!(1))
    );
    let now: Vec<u64> = replicas.iter().map(Client::session).collect();
    assert_eq!(now, sessions);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_sees_every_call_and_reply_on_the_bus() {
    let (h, lan) = hub_with(&[("lamp", Role::Plugin), ("root", Role::Admin)]).await;
    let lamp = login(lan, "lamp").await;
    let mut root = raw_login(lan, "root", "root-tool").await;
    root.sub("hc/#").await;
    lamp.storage().set("secret", json!("s3cret")).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let p = root.next().await;
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        if topic.starts_with("hc/call/lamp/storage/") || topic.starts_with("hc/reply/lamp") {
            seen.push(topic);
        }
    }
    assert!(seen[0].starts_with("hc/call/lamp/storage/set"), "{seen:?}");
    assert!(seen[1].starts_with("hc/reply/lamp"), "{seen:?}");
    // An anonymous client may not take a user's name as its client id.
    let refused = hcore_tests::clients::v5_with(v5_options(h.addr, "lamp")).await;
    assert!(refused.is_err(), "an anonymous client connected as lamp");
    h.stop().await;
}
