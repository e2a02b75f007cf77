//! RPC through the kernel: providing and calling across transports, replicas, errors,
//! no_responders, unavailable, deadlines, and MQTT 3.1.1 / 5 callers without the SDK.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hcore_client::{CallOptions, ErrorCode, RpcError};
use hcore_tests::hub::*;
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provide_and_call_across_transports() {
    let h = start().await;
    let tcp = h.tcp("tcp-provider").await;
    let local = h.local("echo").await;
    tcp.provide("math.add", |c| async move {
        let a = c.params["a"]
            .as_i64()
            .ok_or_else(|| RpcError::bad_request("a must be a number"))?;
        let b = c.params["b"]
            .as_i64()
            .ok_or_else(|| RpcError::bad_request("b must be a number"))?;
        Ok(json!({ "sum": a + b, "caller": c.caller }))
    })
    .await
    .unwrap();
    local
        .provide("echo.say", |c| async move { Ok(c.params) })
        .await
        .unwrap();
    local
        .provide("echo.panic", |_c| async move {
            if true {
                panic!("boom");
            }
            Ok(Value::Null)
        })
        .await
        .unwrap();
    // in-process -> TCP provider, TCP -> in-process provider
    let r = local
        .call("math.add", json!({"a": 2, "b": 3}))
        .await
        .unwrap();
    assert_eq!(r, json!({"sum": 5, "caller": "echo"}));
    let r = tcp.call("echo.say", json!({"x": [1, 2]})).await.unwrap();
    assert_eq!(r, json!({"x": [1, 2]}));
    // Structured errors travel back with their code.
    let e = local
        .call("math.add", json!({"a": "two"}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::BadRequest));
    let e = tcp.call("echo.panic", json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Internal));
    // registry.list shows services, methods and providers.
    let list = tcp.call("registry.list", json!({})).await.unwrap();
    assert_eq!(list["services"]["math"]["add"], json!(["tcp-provider"]));
    assert_eq!(list["services"]["echo"]["say"], json!(["echo"]));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_load() {
    let h = start().await;
    let served = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let mut replicas = Vec::new();
    for i in 0..2 {
        let c = h.tcp(&format!("worker-{i}")).await;
        let served = served.clone();
        c.provide("jobs.run", move |_call| {
            let served = served.clone();
            async move {
                served[i].fetch_add(1, Ordering::SeqCst);
                Ok(json!(i))
            }
        })
        .await
        .unwrap();
        replicas.push(c);
    }
    let caller = h.local("caller").await;
    for _ in 0..20 {
        caller.call("jobs.run", json!({})).await.unwrap();
    }
    let (a, b) = (
        served[0].load(Ordering::SeqCst),
        served[1].load(Ordering::SeqCst),
    );
    assert_eq!(a + b, 20);
    assert!(a > 0 && b > 0, "both replicas served: {a} / {b}");
    h.stop().await;
}

#[tokio::test]
async fn a_method_nobody_provides_fails_with_no_responders() {
    let h = start().await;
    let c = h.tcp("c").await;
    let options = CallOptions {
        timeout: Some(Duration::from_secs(60)),
        parent: None,
    };
    let e = c
        .call_with("nobody.home", json!({}), options.clone())
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some(ErrorCode::NoResponders),
        "answered, not timed out: {e}"
    );
    let e = c
        .call_with("state.frobnicate", json!({}), options)
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NotFound));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_goes_offline_mid_call_fails_it_with_unavailable() {
    let h = start().await;
    let caller = h.tcp("caller").await;
    // Two replicas that never answer. The call goes to one of them.
    let mut a = raw_provider(&h, "slow-a", &["slow.work"]).await;
    let mut b = raw_provider(&h, "slow-b", &["slow.work"]).await;
    // Observers see the call too, over TCP and in-process; they must not count as takers.
    let mut spy = raw(h.addr, "spy", None).await;
    spy.sub("hc/#").await;
    let local_spy = h.local("local-spy").await;
    let _spied = local_spy.subscribe("hc/call/#").await.unwrap();
    wait_registered(&caller, "slow.work", "slow-a").await;
    wait_registered(&caller, "slow.work", "slow-b").await;
    let c2 = caller.clone();
    let call = tokio::spawn(async move {
        let options = CallOptions {
            timeout: Some(Duration::from_secs(60)),
            parent: None,
        };
        c2.call_with("slow.work", json!({}), options).await
    });
    // Whichever replica took it now crashes (its socket just goes away).
    let taken_by_a = tokio::select! {
        _ = a.next_publish() => true,
        _ = b.next_publish() => false,
    };
    let (dead, alive) = if taken_by_a { (a, b) } else { (b, a) };
    drop(dead);
    let e = call.await.unwrap().unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Unavailable), "{e}");
    drop(alive);
    h.stop().await;
}

/// One rule for late requests: whoever would run a request (a provider, or the kernel for
/// its own services) answers `timeout` instead of running it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_requests_are_answered_timeout_by_providers_and_the_kernel() {
    let h = start().await;
    let served = Arc::new(AtomicUsize::new(0));
    let provider = h.tcp("p").await;
    let s = served.clone();
    provider
        .provide("count.hit", move |_| {
            let s = s.clone();
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                Ok(json!(null))
            }
        })
        .await
        .unwrap();
    let mut raw = raw(h.addr, "late", None).await;
    raw.sub("hc/reply/late").await;
    let past = hcore_client::protocol::now_ms() - 1000;
    for (id, topic, params) in [
        ("old", "hc/call/late/count/hit", json!({})),
        ("k", "hc/call/late/state/get", json!({"key": "x"})),
    ] {
        raw.publish(
            topic,
            json!({"id": id, "deadline": past, "params": params}).to_string(),
            false,
        )
        .await;
        let reply: Value = serde_json::from_slice(&raw.next().await.payload).unwrap();
        assert_eq!(reply["id"], id);
        assert_eq!(reply["error"]["code"], "timeout", "{reply}");
    }
    // Without a deadline nobody applies one: the request runs.
    raw.publish(
        "hc/call/late/count/hit",
        json!({"id": "any"}).to_string(),
        false,
    )
    .await;
    let reply: Value = serde_json::from_slice(&raw.next().await.payload).unwrap();
    assert_eq!(reply, json!({"id": "any", "result": null}));
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "only the timely request ran"
    );
    h.stop().await;
}

#[tokio::test]
async fn mqtt5_and_mqtt311_callers_without_the_sdk() {
    let h = start().await;
    let c = h.tcp("writer").await;
    c.state().set("doc/x", json!(42)).await.unwrap();
    // MQTT 5: Response Topic + Correlation Data, no id in the payload.
    let mut v5 = raw(h.addr, "v5caller", None).await;
    v5.sub("hc/reply/v5caller/#").await;
    let props = PublishProperties {
        response_topic: Some("hc/reply/v5caller/rr".into()),
        correlation_data: Some(bytes::Bytes::from_static(b"corr-1")),
        ..Default::default()
    };
    v5.publish_props(
        "hc/call/v5caller/state/get",
        r#"{"params":{"key":"doc/x"}}"#,
        props,
    )
    .await;
    let p = v5.next().await;
    assert_eq!(p.topic, "hc/reply/v5caller/rr");
    assert_eq!(
        p.properties.unwrap().correlation_data.as_deref(),
        Some(&b"corr-1"[..])
    );
    let reply: Value = serde_json::from_slice(&p.payload).unwrap();
    assert_eq!(reply["result"]["value"], 42);
    assert!(reply.get("id").is_none());
    // MQTT 3.1.1: id and reply_to in the payload.
    let mut o = rumqttc::MqttOptions::new("v3caller", h.addr.ip().to_string(), h.addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut el) = rumqttc::AsyncClient::new(o, 10);
    client
        .subscribe("hc/reply/v3caller", rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    client
        .publish(
            "hc/call/v3caller/state/get",
            rumqttc::QoS::AtLeastOnce,
            false,
            r#"{"id":"q1","params":{"key":"doc/x"},"reply_to":"hc/reply/v3caller"}"#,
        )
        .await
        .unwrap();
    let reply = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = el.poll().await {
                break serde_json::from_slice::<Value>(&p.payload).unwrap();
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        reply,
        json!({"id": "q1", "result": reply["result"].clone()})
    );
    assert_eq!(reply["result"]["value"], 42);
    h.stop().await;
}

/// The reply a provider written from PROTOCOL.md sends: the payload's `id` and `reply_to`
/// (falling back on MQTT 5 Correlation Data and Response Topic, then on the caller's
/// default reply topic).
fn answer(
    topic: &str,
    payload: &[u8],
    response_topic: Option<String>,
    served_by: &str,
) -> (String, Value) {
    let request: Value = serde_json::from_slice(payload).unwrap();
    let caller = topic.split('/').nth(2).unwrap();
    let reply_to = request["reply_to"]
        .as_str()
        .map(str::to_string)
        .or(response_topic)
        .unwrap_or_else(|| format!("hc/reply/{caller}"));
    let mut reply = json!({ "result": { "served_by": served_by } });
    if let Some(id) = request.get("id") {
        reply["id"] = id.clone();
    }
    (reply_to, reply)
}

async fn announce_v311(p: &mut V4, id: &str, method: &str) {
    let (service, name) = method.split_once('.').unwrap();
    p.subscribe(
        &format!("$share/{method}/hc/call/+/{service}/{name}"),
        rumqttc::QoS::AtLeastOnce,
    )
    .await;
    let manifest = json!({ "services": [method] }).to_string();
    for (topic, payload) in [
        (format!("hc/plugin/{id}/manifest"), manifest),
        (
            format!("hc/plugin/{id}/status"),
            r#"{"state":"online","session":1}"#.into(),
        ),
    ] {
        p.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, true, payload)
            .await
            .unwrap();
    }
}

/// Every mix of protocol versions works: MQTT 5 and 3.1.1 callers, each calling an MQTT 5
/// and an MQTT 3.1.1 provider, and an MQTT 5 caller that uses only properties (as
/// `mosquitto_rr` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mix_of_protocol_versions_is_answered() {
    let h = start().await;
    let mut p5 = raw_provider(&h, "p5", &["mix.five"]).await;
    tokio::spawn(async move {
        while let Some(p) = p5.next_publish().await {
            let props = p.properties.unwrap_or_default();
            let topic = String::from_utf8_lossy(&p.topic).into_owned();
            let (to, reply) = answer(&topic, &p.payload, props.response_topic, "p5");
            let mirror = PublishProperties {
                correlation_data: props.correlation_data,
                ..Default::default()
            };
            p5.publish_props(&to, reply.to_string(), mirror).await;
        }
    });
    let mut p4 = v4(h.addr, "p4").await;
    announce_v311(&mut p4, "p4", "mix.four").await;
    tokio::spawn(async move {
        while let Some(p) = p4.next_publish().await {
            let (to, reply) = answer(&p.topic, &p.payload, None, "p4");
            p4.client
                .publish(to, rumqttc::QoS::AtLeastOnce, false, reply.to_string())
                .await
                .unwrap();
        }
    });
    let sdk = h.tcp("sdk").await;
    wait_registered(&sdk, "mix.five", "p5").await;
    wait_registered(&sdk, "mix.four", "p4").await;

    let mut c5 = raw(h.addr, "c5", None).await;
    c5.sub("hc/reply/c5/#").await;
    let mut c4 = v4(h.addr, "c4").await;
    c4.subscribe("hc/reply/c4", rumqttc::QoS::AtLeastOnce).await;
    for (method, provider) in [("five", "p5"), ("four", "p4")] {
        // MQTT 5 caller: the payload carries id and reply_to; properties mirror them.
        let props = PublishProperties {
            response_topic: Some("hc/reply/c5/x".into()),
            correlation_data: Some(bytes::Bytes::from_static(b"k5")),
            ..Default::default()
        };
        let request = json!({"id": "k5", "reply_to": "hc/reply/c5/x"}).to_string();
        c5.publish_props(&format!("hc/call/c5/mix/{method}"), request, props)
            .await;
        let p = c5.next().await;
        assert_eq!(p.topic, "hc/reply/c5/x");
        let reply: Value = serde_json::from_slice(&p.payload).unwrap();
        assert_eq!(
            reply,
            json!({"id": "k5", "result": {"served_by": provider}})
        );
        // MQTT 3.1.1 caller: everything in the payload.
        let request = json!({"id": "k4", "reply_to": "hc/reply/c4"}).to_string();
        c4.client
            .publish(
                format!("hc/call/c4/mix/{method}"),
                rumqttc::QoS::AtLeastOnce,
                false,
                request,
            )
            .await
            .unwrap();
        let p = c4.next_publish().await.unwrap();
        let reply: Value = serde_json::from_slice(&p.payload).unwrap();
        assert_eq!(
            reply,
            json!({"id": "k4", "result": {"served_by": provider}})
        );
        // MQTT 5, properties only, default reply topic: answered by both versions.
        let props = PublishProperties {
            response_topic: Some("hc/reply/c5".into()),
            correlation_data: Some(bytes::Bytes::from_static(b"only-props")),
            ..Default::default()
        };
        c5.publish_props(&format!("hc/call/c5/mix/{method}"), "{}", props)
            .await;
        let p = c5.next().await;
        assert_eq!(p.topic, "hc/reply/c5");
        let reply: Value = serde_json::from_slice(&p.payload).unwrap();
        assert_eq!(reply["result"]["served_by"], provider);
    }
    h.stop().await;
}
