//! Credentials: clients with a user name need the right password (CONNACK 0x04 / 0x86
//! otherwise), anonymous clients are let in on loopback listeners only, a user's role
//! decides what it may do, and users added while hcore runs can connect at once.

use hcore_client::{Client, ClientOptions, ErrorCode};
use hcore_kernel::users::{Role, Users};
use hcore_tests::broker::{connect_login, connect_packet, Wire};
use hcore_tests::hub::*;
use serde_json::json;

async fn with_lan_listener() -> (Harness, std::net::SocketAddr) {
    start_with_lan().await
}

/// A client logged in as `name` (its client id too) over the LAN listener.
async fn login(lan: std::net::SocketAddr, name: &str, password: &str) -> Client {
    login_as(lan, name, password, name).await
}

async fn connack(to: std::net::SocketAddr, packet: &[u8]) -> u8 {
    let mut raw = Wire::connect(to).await;
    raw.send(packet).await;
    raw.read_packet().await.expect("CONNACK").1[1]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_checked_and_anonymous_clients_stay_on_loopback() {
    let (h, lan) = with_lan_listener().await;
    let users = Users::open(h.dir.path());
    users.add("pi-lamp", "s3cret", Role::Plugin).unwrap();

    // Anonymous: refused on the LAN listener, fine on loopback.
    assert_eq!(
        connack(lan, &connect_packet(4, "anon", 30, true)).await,
        0x05
    );
    assert_eq!(
        connack(lan, &connect_packet(5, "anon", 30, true)).await,
        0x87
    );
    assert_eq!(
        connack(h.addr, &connect_packet(4, "anon", 30, true)).await,
        0
    );
    // Wrong password or unknown user: 0x04 (3.1.1) / 0x86 (5), on every listener.
    for to in [lan, h.addr] {
        assert_eq!(
            connack(to, &connect_login(4, "pi-lamp", "pi-lamp", "nope")).await,
            0x04
        );
        assert_eq!(
            connack(to, &connect_login(5, "pi-lamp", "pi-lamp", "nope")).await,
            0x86
        );
        assert_eq!(
            connack(to, &connect_login(5, "x", "nobody", "s3cret")).await,
            0x86
        );
    }
    // The right password, in the URL, over the LAN listener.
    let url = format!("mqtt://pi-lamp:s3cret@{lan}");
    let lamp = Client::connect(&url, ClientOptions::new("pi-lamp").quiet())
        .await
        .unwrap();
    lamp.state().set("pi-lamp/on", json!(true)).await.unwrap();
    let wrong = format!("mqtt://pi-lamp:guess@{lan}");
    let refused = Client::connect(&wrong, ClientOptions::new("pi-lamp2").quiet()).await;
    assert!(refused.is_err(), "a wrong password connects");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_role_decides_and_new_users_work_without_a_restart() {
    let (h, lan) = with_lan_listener().await;
    let users = Users::open(h.dir.path());
    users.add("plug", "p", Role::Plugin).unwrap();
    let plug = login(lan, "plug", "p").await;
    plug.storage().set("secret", json!("mine")).await.unwrap();
    // Added while hcore runs (as `hcore users add` does): connects at once.
    users.add("boss", "b", Role::Admin).unwrap();
    let boss = login(lan, "boss", "b").await;
    // An administrator reads other namespaces; a plugin does not.
    assert_eq!(
        boss.storage_of("plug").get("secret").await.unwrap(),
        Some(json!("mine"))
    );
    let e = plug.storage_of("boss").get("x").await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Forbidden));
    // A removed user can no longer connect; a changed password takes effect.
    users.update("plug", Some("p2"), None).unwrap();
    assert_eq!(
        connack(lan, &connect_login(5, "plug2", "plug", "p")).await,
        0x86
    );
    assert_eq!(
        connack(lan, &connect_login(5, "plug2", "plug", "p2")).await,
        0
    );
    users.remove("boss").unwrap();
    assert_eq!(
        connack(lan, &connect_login(5, "boss2", "boss", "b")).await,
        0x86
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_limit_kernel_methods_and_state_commands() {
    let (h, lan) = with_lan_listener().await;
    let users = Users::open(h.dir.path());
    for (name, role) in [
        ("watcher", Role::Observer),
        ("plug", Role::Plugin),
        ("root", Role::Admin),
    ] {
        users.add(name, "pw", role).unwrap();
    }
    let watcher = login(lan, "watcher", "pw").await;
    let plug = login(lan, "plug", "pw").await;
    let root = login(lan, "root", "pw").await;
    let forbidden = |r: Result<serde_json::Value, hcore_client::ClientError>| {
        assert_eq!(r.unwrap_err().code(), Some(ErrorCode::Forbidden));
    };
    // An observer reads, and changes nothing.
    plug.state().set("plug/door", json!(true)).await.unwrap();
    assert!(watcher.state().get("plug/door").await.unwrap().is_some());
    forbidden(
        watcher
            .call("state.set", json!({"key": "plug/door", "value": false}))
            .await,
    );
    forbidden(
        watcher
            .call("state.delete", json!({"key": "plug/door"}))
            .await,
    );
    forbidden(
        watcher
            .call("storage.set", json!({"key": "k", "value": 1}))
            .await,
    );
    forbidden(watcher.call("plugins.stop", json!({"id": "example"})).await);
    watcher
        .publish_raw("hc/state/plug/door/set", "false", false)
        .await
        .unwrap();
    // A plugin writes state but does not stop plugins; an administrator may.
    forbidden(plug.call("plugins.stop", json!({"id": "example"})).await);
    let e = root
        .call("plugins.stop", json!({"id": "example"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    // The observer's `/set` command was dropped: a later write by the plugin is version 2.
    let v = plug
        .state()
        .set("plug/door", json!("jammed"))
        .await
        .unwrap();
    assert_eq!(v.version, 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_administrators_read_sys_topics() {
    use hcore_tests::broker::{subscribe_packet, Wire};
    let (h, lan) = with_lan_listener().await;
    let users = Users::open(h.dir.path());
    users.add("watcher", "pw", Role::Observer).unwrap();
    users.add("root", "pw", Role::Admin).unwrap();
    for (user, granted) in [("watcher", 0x80), ("root", 0)] {
        let mut raw = Wire::connect(lan).await;
        raw.send(&connect_login(4, user, user, "pw")).await;
        assert_eq!(raw.read_packet().await.unwrap().1[1], 0);
        raw.send(&subscribe_packet(1, "$SYS/#", 0)).await;
        let (b1, body) = raw.read_packet().await.expect("SUBACK");
        assert_eq!((b1, body[2]), (0x90, granted), "{user}");
    }
    h.stop().await;
}
