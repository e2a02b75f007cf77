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

/// Versions of one key as an observer sees them, in arrival order.
async fn versions(sub: &mut hcore_client::Subscription, until: u64, field: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    while seen.last() != Some(&until) {
        let m = tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("the last version in time")
            .unwrap();
        let v = m.json().unwrap();
        let version = match field {
            "record" => v["version"].as_u64(),
            _ => v["data"]["version"].as_u64(),
        };
        seen.push(version.unwrap());
    }
    seen
}

/// Many writers on one key, over TCP and in-process, each with many calls in flight at
/// once: every observer sees versions in strictly increasing order, and the retained
/// record, `state.get` and the highest acknowledged version agree at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pipelined_writers_on_one_key_stay_in_version_order() {
    const WRITERS: usize = 6;
    const PIPELINE: usize = 8;
    const ROUNDS: usize = 25;
    // In-process writers are plugins: the policy lets every plugin write `race/...`.
    let h = start_with_policy("[role.plugin]\nstate = [\"%u/#\", \"race/#\"]\n").await;
    let tcp_watch = h.tcp("tcp-watch").await;
    let local_watch = h.local("local-watch").await;
    let mut observers = [
        (
            tcp_watch.subscribe("hc/state/race/k").await.unwrap(),
            "record",
        ),
        (
            local_watch.subscribe("hc/state/race/k").await.unwrap(),
            "record",
        ),
        (
            tcp_watch
                .subscribe("hc/event/kernel/state_changed/race/k")
                .await
                .unwrap(),
            "event",
        ),
        (
            local_watch
                .subscribe("hc/event/kernel/state_changed/race/k")
                .await
                .unwrap(),
            "event",
        ),
    ];
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let client = if w % 2 == 0 {
            h.tcp(&format!("w{w}")).await
        } else {
            h.local(&format!("w{w}")).await
        };
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for r in 0..ROUNDS {
                let mut calls = tokio::task::JoinSet::new();
                for p in 0..PIPELINE {
                    let c = client.clone();
                    calls.spawn(async move { c.state().set("race/k", json!([w, r, p])).await });
                }
                while let Some(result) = calls.join_next().await {
                    let result = result.unwrap().unwrap();
                    assert!(result.changed);
                    acked.push(result.version);
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    acked.sort_unstable();
    let total = (WRITERS * PIPELINE * ROUNDS) as u64;
    assert_eq!(
        acked,
        (1..=total).collect::<Vec<_>>(),
        "every version answered once"
    );
    for (sub, field) in observers.iter_mut() {
        let seen = versions(sub, total, field).await;
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "{field} versions out of order: {seen:?}"
        );
    }
    let record = tcp_watch.state().get("race/k").await.unwrap().unwrap();
    assert_eq!(record.version, total);
    let late = h.tcp("late").await;
    let mut retained = late.subscribe("hc/state/race/k").await.unwrap();
    let last = retained.next().await.unwrap().json().unwrap();
    assert_eq!(last["version"], json!(total));
    assert_eq!(last["value"], record.value);
    h.stop().await;
}
