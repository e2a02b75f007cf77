//! The state engine over the SDK (TCP and in-process) and over plain MQTT.

use hcore_client::ErrorCode;
use hcore_tests::hub::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_get_set_delete_exists_list_with_versions() {
    let h = start().await;
    for client in [h.tcp("auto-tcp").await, h.local("auto-local").await] {
        let st = client.state();
        let key = format!("{}/lamp", client.id());
        assert_eq!(st.get(&key).await.unwrap(), None);
        let r = st.set(&key, json!({"on": true})).await.unwrap();
        assert_eq!((r.version, r.changed), (1, true));
        // An identical value bumps nothing.
        let r = st.set(&key, json!({"on": true})).await.unwrap();
        assert_eq!((r.version, r.changed), (1, false));
        let r = st.set(&key, json!({"on": false})).await.unwrap();
        assert_eq!(r.version, 2);
        let rec = st.get(&key).await.unwrap().unwrap();
        assert_eq!(rec.value, json!({"on": false}));
        assert_eq!(rec.source, client.id());
        // Optimistic concurrency: a stale version fails with conflict.
        let e = st.set_if(&key, json!(1), 1).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Conflict));
        assert_eq!(st.set_if(&key, json!(1), 2).await.unwrap().version, 3);
        assert!(st.exists(&key).await.unwrap());
        let items = st.list(&format!("{}/", client.id())).await.unwrap();
        assert_eq!(items.len(), 1);
        assert!(st.delete(&key).await.unwrap());
        assert!(!st.exists(&key).await.unwrap());
        assert!(!st.delete(&key).await.unwrap());
        let e = st.set_if(&key, json!(1), 5).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::Conflict));
        assert_eq!(st.set_if(&key, json!(1), 0).await.unwrap().version, 1);
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_are_retained_and_announced_once() {
    let h = start().await;
    let writer = h.tcp("writer").await;
    let watcher = h.local("watcher").await;
    let mut changes = watcher
        .subscribe("hc/event/kernel/state_changed/#")
        .await
        .unwrap();
    let mut retained = watcher.subscribe("hc/state/room/+").await.unwrap();
    writer.state().set("room/temp", json!(21.5)).await.unwrap();
    writer.state().set("room/temp", json!(21.5)).await.unwrap();
    writer.state().set("room/temp", json!(22)).await.unwrap();
    let e1 = changes.next().await.unwrap();
    let env = e1.envelope.unwrap();
    assert_eq!(env.source, "kernel");
    assert_eq!(
        env.data,
        json!({"key": "room/temp", "old": null, "new": 21.5, "version": 1, "source": "writer"})
    );
    assert!(
        env.parent.is_some(),
        "the change names the request that caused it"
    );
    let e2 = changes.next().await.unwrap().envelope.unwrap();
    assert_eq!(
        e2.data["new"],
        json!(22),
        "the identical write emitted nothing"
    );
    let r1 = retained.next().await.unwrap();
    assert_eq!(r1.json().unwrap()["value"], json!(21.5));
    let r2 = retained.next().await.unwrap();
    assert_eq!(r2.json().unwrap()["version"], json!(2));
    // A new subscriber gets the retained record.
    let late = h.tcp("late").await;
    let mut sub = late.subscribe("hc/state/room/temp").await.unwrap();
    let r = sub.next().await.unwrap();
    assert!(r.retain);
    assert_eq!(r.json().unwrap()["value"], json!(22));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_and_is_republished() {
    let h = start().await;
    let c = h.tcp("c").await;
    c.state().set("persist/me", json!({"n": 1})).await.unwrap();
    c.state().set("persist/me", json!({"n": 2})).await.unwrap();
    c.shutdown().await.unwrap();
    let dir = h.stop().await;
    let h = start_in(dir, Vec::new()).await;
    let c = h.tcp("c2").await;
    let rec = c.state().get("persist/me").await.unwrap().unwrap();
    assert_eq!((rec.value, rec.version), (json!({"n": 2}), 2));
    let mut sub = c.subscribe("hc/state/persist/#").await.unwrap();
    let r = sub.next().await.unwrap();
    assert!(r.retain, "republished as a retained message at start");
    h.stop().await;
}
