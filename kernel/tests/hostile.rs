//! Hostile requests: each gets a structured error where there is somewhere to send it,
//! and none of them affects other callers.

use hcore_client::ErrorCode;
use hcore_tests::hub::*;
use serde_json::{json, Value};

/// Sends a raw request as `caller` and returns the reply on its default reply topic.
async fn ask(r: &mut V5, caller: &str, path: &str, payload: &str) -> Value {
    r.publish(
        &format!("hc/call/{caller}/{path}"),
        payload.to_string(),
        false,
    )
    .await;
    let p = r.next().await;
    serde_json::from_slice(&p.payload).expect("replies are JSON")
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("(none)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_structured_errors() {
    let h = start().await;
    let mut r = raw(h.addr, "fuzz", None).await;
    r.sub("hc/reply/fuzz/#").await;
    let cases: Vec<(&str, String, &str)> = vec![
        ("state/get", "{not json".into(), "bad_request"),
        ("state/get", "[1,2,3]".into(), "bad_request"),
        ("state/get", r#"{"id":"1"}"#.into(), "bad_request"),
        (
            "state/get",
            r#"{"id":"2","params":{"key":5}}"#.into(),
            "bad_request",
        ),
        (
            "state/get",
            r#"{"id":"3","params":"key"}"#.into(),
            "bad_request",
        ),
        (
            "state/get",
            r#"{"id":"4","deadline":"soon"}"#.into(),
            "bad_request",
        ),
        (
            "state/set",
            r#"{"id":"5","params":{"key":"a/+/b","value":1}}"#.into(),
            "bad_request",
        ),
        (
            "state/set",
            r#"{"id":"6","params":{"key":"a//b","value":1}}"#.into(),
            "bad_request",
        ),
        (
            "state/set",
            r#"{"id":"7","params":{"key":"a/#","value":1}}"#.into(),
            "bad_request",
        ),
        (
            "state/set",
            r#"{"id":"8","params":{"key":"lamp/set","value":1}}"#.into(),
            "bad_request",
        ),
        (
            "state/set",
            r#"{"id":"9","params":{"key":"ok"}}"#.into(),
            "bad_request",
        ),
        (
            "storage/set",
            format!(
                r#"{{"id":"10","params":{{"key":"big","value":"{}"}}}}"#,
                "x".repeat(70_000)
            ),
            "bad_request",
        ),
        (
            "storage/list",
            r#"{"id":"11","params":{"limit":-1}}"#.into(),
            "bad_request",
        ),
        ("state/frobnicate", r#"{"id":"12"}"#.into(), "not_found"),
        ("nobody/home", r#"{"id":"13"}"#.into(), "no_responders"),
        (
            "state/get",
            r#"{"id":"14","params":{"key":"x"},"reply_to":"hc/reply/fuzz/#"}"#.into(),
            "bad_request",
        ),
        (
            "state/get",
            r#"{"id":"15","params":{"key":"x"},"reply_to":"hc/reply/victim"}"#.into(),
            "bad_request",
        ),
        (
            "registry/register",
            r#"{"id":"16","params":{"methods":["state.get"]}}"#.into(),
            "forbidden",
        ),
        (
            "registry/register",
            r#"{"id":"17","params":{"methods":"x.y"}}"#.into(),
            "bad_request",
        ),
        (
            "state/get",
            format!(r#"{{"id":"18","params":{{"key":"x"}},"deadline":{}}}"#, 1),
            "timeout",
        ),
    ];
    for (path, payload, want) in &cases {
        let reply = ask(&mut r, "fuzz", path, payload).await;
        assert_eq!(code(&reply), *want, "{path} {payload:.80} -> {reply}");
        assert!(reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // The kernel is unaffected.
    let c = h.tcp("normal").await;
    c.state().set("after/fuzz", json!(1)).await.unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_identities_never_reach_the_kernel() {
    let h = start().await;
    let mut r = raw(h.addr, "mallory", None).await;
    r.sub("hc/reply/mallory").await;
    // Calling, emitting and announcing as someone else is refused by the broker.
    r.publish(
        "hc/call/alice/state/set",
        r#"{"id":"x","params":{"key":"k","value":1}}"#,
        false,
    )
    .await;
    r.publish(
        "hc/plugin/alice/status",
        r#"{"state":"offline","session":99999999999999}"#,
        true,
    )
    .await;
    r.publish("hc/state/k", r#"{"value":"forged","version":1}"#, true)
        .await;
    let reply = ask(
        &mut r,
        "mallory",
        "state/exists",
        r#"{"id":"y","params":{"key":"k"}}"#,
    )
    .await;
    assert_eq!(
        reply["result"]["exists"], false,
        "the forged set never happened: {reply}"
    );
    let c = h.tcp("observer").await;
    let mut sub = c.subscribe("hc/state/k").await.unwrap();
    c.state().set("k", json!("real")).await.unwrap();
    let rec = sub.next().await.unwrap().json().unwrap();
    assert_eq!(
        rec["value"], "real",
        "only the kernel publishes state records"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_unaddressed_requests_do_not_hurt_other_callers() {
    let h = start().await;
    let flood = raw(h.addr, "flood", None).await;
    let caller = h.tcp("caller").await;
    caller.state().set("probe", json!(0)).await.unwrap();
    let f = tokio::spawn(async move {
        for i in 0..10_000u32 {
            // No id, no reply_to, half of them not even JSON.
            let payload = if i % 2 == 0 {
                "{".to_string()
            } else {
                r#"{"params":{"key":"probe"}}"#.to_string()
            };
            flood
                .client
                .publish(
                    "hc/call/flood/state/get",
                    rumqttc::v5::mqttbytes::QoS::AtMostOnce,
                    false,
                    payload,
                )
                .await
                .unwrap();
        }
        flood
    });
    // Other callers are served during the flood...
    for i in 1..=20 {
        caller.state().set("probe", json!(i)).await.unwrap();
    }
    let _flood = f.await.unwrap();
    // ...and after it, with nothing left behind.
    assert_eq!(
        caller.state().get("probe").await.unwrap().unwrap().value,
        json!(20)
    );
    assert_eq!(h.kernel().pending_calls(), 0);
    let e = caller.call("nobody.home", json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NoResponders));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_replies_are_never_retained() {
    use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
    let h = start().await;
    let mut r = raw(h.addr, "mallory", None).await;
    for topic in [
        "hc/reply/victim",
        "hc/reply/victim/x",
        "hc/call/mallory/state/get",
    ] {
        r.publish(topic, r#"{"id":"1","result":"junk"}"#, true)
            .await;
        let reason = r
            .next_incoming(|p| match p {
                Packet::PubAck(a) => Some(a.reason),
                _ => None,
            })
            .await;
        assert_eq!(reason, Some(PubAckReason::NotAuthorized), "{topic}");
    }
    // The victim's tools (mosquitto_rr, say) find nothing stored on their reply topic.
    let mut victim = raw(h.addr, "victim", None).await;
    victim.sub("hc/reply/victim/#").await;
    victim.sub("hc/reply/victim").await;
    // The first thing it reads is the answer to its own call, not junk.
    victim
        .publish("hc/call/victim/kernel/info", r#"{"id":"mine"}"#, false)
        .await;
    let first: serde_json::Value = serde_json::from_slice(&victim.next().await.payload).unwrap();
    assert_eq!(first["id"], "mine");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_from_the_far_future_cannot_unregister_a_plugin_for_good() {
    let h = start().await;
    let mut p = raw_provider(&h, "lamp", &["lamp.toggle"]).await;
    let caller = h.tcp("caller").await;
    wait_registered(&caller, "lamp.toggle", "lamp").await;
    // Its own connection (or one that took its id) claims session u64::MAX.
    p.publish(
        "hc/plugin/lamp/status",
        r#"{"state":"offline","session":18446744073709551615}"#,
        true,
    )
    .await;
    p.publish(
        "hc/plugin/lamp/status",
        r#"{"state":"online","session":2}"#,
        true,
    )
    .await;
    // Both handled (the kernel reads them in line, before the broker acknowledges): four
    // PUBACKs, two of them for the manifest and status `raw_provider` published.
    for _ in 0..4 {
        p.next_incoming(|p| {
            matches!(p, rumqttc::v5::mqttbytes::v5::Packet::PubAck(_)).then_some(())
        })
        .await
        .expect("PUBACK");
    }
    // Still registered: the forged status was ignored, the real one accepted.
    let listed = caller.call("registry.list", json!({})).await.unwrap();
    assert_eq!(
        listed["services"]["lamp"]["toggle"],
        json!(["lamp"]),
        "{listed}"
    );
    drop(p);
    h.stop().await;
}
