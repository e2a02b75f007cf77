//! Namespaced storage: every operation, paging, compare-and-set, and isolation between
//! namespaces tried the ways a curious user would.

use hcore_client::ErrorCode;
use hcore_tests::hub::*;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_operations_over_both_transports() {
    let h = start().await;
    for c in [h.tcp("tcp-user").await, h.local("local-user").await] {
        let s = c.storage();
        assert_eq!(s.get("missing").await.unwrap(), None);
        s.set("settings/greeting", json!("hello")).await.unwrap();
        assert_eq!(
            s.get("settings/greeting").await.unwrap(),
            Some(json!("hello"))
        );
        for i in 0..25 {
            s.set(&format!("items/{i:02}"), json!({"n": i}))
                .await
                .unwrap();
        }
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = s.list("items/", 10, after.as_deref()).await.unwrap();
            assert!(page.items.len() <= 10);
            all.extend(page.items.into_iter().map(|i| i.key));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(all.len(), 25);
        assert_eq!(all[0], "items/00");
        assert_eq!(all[24], "items/24");
        assert!(s.delete("items/00").await.unwrap());
        assert!(!s.delete("items/00").await.unwrap());
        let r = s.cas("lock", None, Some(json!("me"))).await.unwrap();
        assert!(r.swapped);
        let r = s.cas("lock", None, Some(json!("you"))).await.unwrap();
        assert_eq!((r.swapped, r.current), (false, Some(json!("me"))));
        let r = s.cas("lock", Some(json!("me")), None).await.unwrap();
        assert_eq!((r.swapped, r.current), (true, None));
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_plugin_cannot_read_or_write_another_namespace() {
    // Anonymous test clients are plugins here (an administrator may read everything).
    let h = start_anonymous_as("plugin").await;
    let alice = h.tcp("alice").await;
    alice.storage().set("token", json!("s3cret")).await.unwrap();

    // A plugin, "mallory" (in-process: the plugin role, not an administrator), tries.
    let mallory = h.local("mallory").await;
    // 1. Naming another namespace is for administrators, and only for reading.
    let r = mallory
        .call("storage.get", json!({"key": "token", "namespace": "alice"}))
        .await
        .unwrap_err();
    assert_eq!(r.code(), Some(ErrorCode::Forbidden), "{r}");
    let r = mallory
        .storage_of("alice")
        .list("", 10, None)
        .await
        .unwrap_err();
    assert_eq!(r.code(), Some(ErrorCode::Forbidden), "{r}");
    let r = mallory
        .call(
            "storage.set",
            json!({"key": "token", "value": "pwned", "namespace": "alice"}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        r.code(),
        Some(ErrorCode::BadRequest),
        "writes have no namespace: {r}"
    );
    mallory
        .storage()
        .set("token", json!("pwned"))
        .await
        .unwrap();
    // 2. A forged identity property is stripped and replaced by the broker.
    let mut raw_m = raw(h.addr, "mallory-raw", None).await;
    raw_m.sub("hc/reply/mallory-raw").await;
    let props = PublishProperties {
        user_properties: vec![("hc-client".into(), "alice".into())],
        ..Default::default()
    };
    raw_m
        .publish_props(
            "hc/call/mallory-raw/storage/get",
            r#"{"id":"1","params":{"key":"token"}}"#,
            props,
        )
        .await;
    let reply: Value = serde_json::from_slice(&raw_m.next().await.payload).unwrap();
    assert_eq!(reply["error"]["code"], "not_found");
    // 3. Another topic: calling as alice is refused by the broker (v5: PUBACK 0x87) and
    //    never reaches the kernel.
    raw_m
        .publish(
            "hc/call/alice/storage/set",
            r#"{"id":"2","params":{"key":"token","value":"pwned"}}"#,
            false,
        )
        .await;
    // 4. Reading alice's replies: subscribing by name is refused, and a wildcard
    //    subscriber does not get them.
    let mut snoop = raw(h.addr, "snoop", None).await;
    snoop.sub("hc/reply/alice").await;
    snoop.sub("hc/#").await;
    snoop.sub("#").await;
    assert_eq!(
        alice.storage().get("token").await.unwrap(),
        Some(json!("s3cret")),
        "alice's value is untouched"
    );
    // Writes carry the value in the request: those are private too.
    alice
        .storage()
        .set("token2", json!("also secret"))
        .await
        .unwrap();
    alice.state().set("alice/done", json!(true)).await.unwrap();
    loop {
        let p = snoop.next().await;
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        assert!(
            !topic.starts_with("hc/reply/alice") && !topic.starts_with("hc/call/alice/storage"),
            "snoop received alice's private message on {topic}"
        );
        if topic == "hc/state/alice/done" {
            break;
        }
    }
    // Mallory's writes landed in mallory's own namespace.
    assert_eq!(
        mallory.storage().get("token").await.unwrap(),
        Some(json!("pwned"))
    );
    h.stop().await;
}

/// An administrator (an anonymous client on loopback, until users and roles exist) reads
/// another namespace without taking over its client id; the plugin keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_read_other_namespaces_without_impersonating() {
    let h = start().await;
    let plugin = h.local("plugin").await;
    plugin.storage().set("config/a", json!(1)).await.unwrap();
    plugin.storage().set("config/b", json!(2)).await.unwrap();
    let admin = h.tcp("admin").await;
    assert_eq!(
        admin.storage_of("plugin").get("config/a").await.unwrap(),
        Some(json!(1))
    );
    let page = admin
        .storage_of("plugin")
        .list("config/", 10, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    // The plugin was not kicked off: it still reads and writes its own storage.
    plugin.storage().set("config/c", json!(3)).await.unwrap();
    assert_eq!(
        plugin.storage().get("config/a").await.unwrap(),
        Some(json!(1))
    );
    h.stop().await;
}
