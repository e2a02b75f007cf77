//! The SDK against a real broker and kernel, over TCP and in-process: subscriptions
//! (queued and in-line, bounded, refused), typed kernel commands, causality, and what a
//! caller sees when its connection is lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hcore_client::protocol::commands::{StateGet, StateKey, StateSet};
use hcore_client::{CallOptions, Client, ClientError, ClientOptions, ErrorCode};
use hcore_tests::hub::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_commands_and_plain_calls_agree() {
    let h = start().await;
    for c in [h.tcp("typed-tcp").await, h.local("typed-local").await] {
        let key = StateKey::new(format!("{}/x", c.id())).unwrap();
        let set = c
            .request(StateSet {
                key: key.clone(),
                value: json!({"on": true}),
                expected_version: None,
            })
            .await
            .unwrap();
        assert_eq!((set.version, set.changed), (1, true));
        let record = c.request(StateGet { key: key.clone() }).await.unwrap();
        assert_eq!(record.value, json!({"on": true}));
        let plain = c
            .call("state.get", json!({"key": key.as_str()}))
            .await
            .unwrap();
        assert_eq!(plain["version"], json!(1));
        // A misspelt parameter is refused, naming the accepted ones.
        let e = c.call("state.get", json!({"kee": "x"})).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::BadRequest));
        assert!(e.to_string().contains("`key`"), "{e}");
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_queued_inline_refused_and_bounded() {
    let h = start().await;
    let publisher = h.tcp("pub").await;
    let mut options = ClientOptions::new("sub").quiet();
    options.subscription_queue = 5;
    let sub = Client::connect(&h.url(), options).await.unwrap();
    // In line: called on the connection's task for every message.
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    sub.subscribe_inline(
        "dev/inline/+",
        Arc::new(move |_m| {
            s.fetch_add(1, Ordering::SeqCst);
        }),
    )
    .await
    .unwrap();
    // Queued, at most 5 waiting: a consumer that does not read loses the rest, counted.
    let mut slow = sub.subscribe("dev/queued/#").await.unwrap();
    for i in 0..20 {
        publisher
            .publish_raw(&format!("dev/queued/{i}"), "x", false)
            .await
            .unwrap();
        publisher
            .publish_raw(&format!("dev/inline/{i}"), "y", false)
            .await
            .unwrap();
    }
    eventually(|| seen.load(Ordering::SeqCst) == 20).await;
    eventually(|| slow.dropped() == 15).await;
    for i in 0..5 {
        assert_eq!(slow.next().await.unwrap().topic, format!("dev/queued/{i}"));
    }
    // Not a filter at all, and a filter the broker refuses: errors, not silence.
    let e = sub.subscribe("dev/#/x").await.err().unwrap();
    assert!(matches!(e, ClientError::Invalid(_)), "{e}");
    // An anonymous client on loopback is an administrator: it may read every reply.
    sub.subscribe("hc/reply/someone-else").await.unwrap();
    let local = h.local("local-sub").await;
    let e = local
        .subscribe("hc/reply/someone-else")
        .await
        .err()
        .unwrap();
    assert!(matches!(e, ClientError::Refused { .. }), "{e}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_handler_does_names_its_request_as_parent() {
    let h = start().await;
    let provider = h.local("relay").await;
    let p = provider.clone();
    provider
        .provide("relay.go", move |_call| {
            let p = p.clone();
            async move {
                let internal = |e: ClientError| hcore_client::RpcError::internal(e.to_string());
                p.call("kernel.info", json!({})).await.map_err(internal)?;
                p.storage().set("last", json!(1)).await.map_err(internal)?;
                Ok(json!("done"))
            }
        })
        .await
        .unwrap();
    let observer = h.tcp("observer").await;
    let mut calls = observer.subscribe("hc/call/relay/#").await.unwrap();
    let mut outer = observer.subscribe("hc/call/observer/#").await.unwrap();
    observer.call("relay.go", json!({})).await.unwrap();
    let request = outer.next().await.unwrap().json().unwrap();
    // The storage call is private to relay; kernel.info is visible.
    let info = calls.next().await.unwrap();
    assert_eq!(info.topic, "hc/call/relay/kernel/info");
    assert_eq!(info.json().unwrap()["parent"], request["id"]);
    // Outside a handler nothing is implied.
    assert_eq!(hcore_client::current_parent(), None);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_fails_waiting_calls_at_once() {
    let h = start().await;
    let slow = raw_provider(&h, "never", &["never.answers"]).await;
    let caller = h.tcp("caller").await;
    wait_registered(&caller, "never.answers", "never").await;
    let c = caller.clone();
    let waiting = tokio::spawn(async move {
        let options = CallOptions {
            timeout: Some(Duration::from_secs(60)),
            parent: None,
        };
        c.call_with("never.answers", json!({}), options).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    h.stop().await;
    let outcome = tokio::time::timeout(WAIT, waiting)
        .await
        .expect("answered long before the call's timeout")
        .unwrap();
    match outcome {
        Err(ClientError::Rpc(e)) => assert_eq!(e.code, ErrorCode::Unavailable, "{e}"),
        Err(ClientError::ConnectionLost) => {}
        other => panic!("{other:?}"),
    }
    drop(slow);
}
