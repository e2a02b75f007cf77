//! Events: envelopes from plugins (TCP, in-process, plain MQTT), wildcard subscriptions,
//! device topics passed through untouched, and the context chain
//! event -> call -> state change.

use hcore_tests::hub::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_envelopes_and_device_topics_pass_through() {
    let h = start().await;
    let watcher = h.local("watcher").await;
    let mut buttons = watcher.subscribe("hc/event/+/button/#").await.unwrap();
    let mut devices = watcher.subscribe("zigbee2mqtt/+").await.unwrap();
    let tcp = h.tcp("hall-switch").await;
    let sent = tcp
        .publish_event("button/press", json!({"action": "single"}))
        .await
        .unwrap();
    let got = buttons.next().await.unwrap();
    assert_eq!(got.topic, "hc/event/hall-switch/button/press");
    let env = got.envelope.unwrap();
    assert_eq!(env, sent);
    assert_eq!(
        (env.source.as_str(), env.parent.clone()),
        ("hall-switch", None)
    );
    let local = h.local("kitchen-switch").await;
    local
        .publish_event("button/hold", json!({"secs": 2}))
        .await
        .unwrap();
    assert_eq!(
        buttons.next().await.unwrap().envelope.unwrap().source,
        "kitchen-switch"
    );

    // A device that knows nothing about hcore: payload untouched.
    let dev = raw(h.addr, "z2m", None).await;
    dev.publish(
        "zigbee2mqtt/lamp",
        r#"{"state":"ON","brightness":254}"#,
        false,
    )
    .await;
    let d = devices.next().await.unwrap();
    assert_eq!(&d.payload[..], br#"{"state":"ON","brightness":254}"#);
    assert!(d.envelope.is_none());
    // Events under another plugin's name are refused by the broker.
    dev.publish("hc/event/hall-switch/button/press", "{}", false)
        .await;
    tcp.publish_event("button/marker", json!(null))
        .await
        .unwrap();
    assert!(buttons.next().await.unwrap().topic.ends_with("/marker"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_links_event_call_and_state_change() {
    let h = start().await;
    let automation = h.tcp("automation").await;
    let lamp = h.local("lamp").await;
    let l2 = lamp.clone();
    // The handler names no parent: the SDK makes the request it handles the parent of
    // everything it does (the call it makes, the event it publishes).
    lamp.provide("lamp.turn_on", move |_call| {
        let l2 = l2.clone();
        async move {
            let internal =
                |e: hcore_client::ClientError| hcore_client::RpcError::internal(e.to_string());
            l2.state()
                .set("lamp/power", json!("on"))
                .await
                .map_err(internal)?;
            l2.publish_event("turned_on", json!({}))
                .await
                .map_err(internal)?;
            Ok(json!("on"))
        }
    })
    .await
    .unwrap();
    let mut changes = automation
        .subscribe("hc/event/kernel/state_changed/lamp/#")
        .await
        .unwrap();
    // Calls are visible to any observer (their replies are not).
    let mut calls = automation.subscribe("hc/call/#").await.unwrap();
    let mut presses = automation.subscribe("hc/event/button/#").await.unwrap();
    let mut lamp_events = automation.subscribe("hc/event/lamp/#").await.unwrap();
    let button = h.tcp("button").await;
    let press = button.publish_event("pressed", json!({})).await.unwrap();
    let seen = presses.next().await.unwrap().envelope.unwrap();
    let opts = hcore_client::CallOptions {
        timeout: None,
        parent: Some(seen.id.clone()),
    };
    automation
        .call_with("lamp.turn_on", json!({}), opts)
        .await
        .unwrap();
    let change = changes.next().await.unwrap().envelope.unwrap();
    let turn_on = calls.next().await.unwrap();
    assert_eq!(turn_on.topic, "hc/call/automation/lamp/turn_on");
    let turn_on = turn_on.json().unwrap();
    let set = calls.next().await.unwrap();
    assert_eq!(set.topic, "hc/call/lamp/state/set");
    let set = set.json().unwrap();
    // press -> lamp.turn_on -> state.set -> state change, each naming its cause.
    assert_eq!(seen.id, press.id);
    assert_eq!(turn_on["parent"], json!(press.id));
    assert_eq!(set["parent"], turn_on["id"]);
    assert_eq!(change.parent.as_deref(), set["id"].as_str());
    assert_eq!(
        change.source, "kernel",
        "the kernel publishes state_changed"
    );
    assert_eq!(change.data["source"], "lamp", "the writer");
    let turned_on = lamp_events.next().await.unwrap().envelope.unwrap();
    assert_eq!(
        turned_on.parent.as_ref(),
        turn_on["id"].as_str().map(str::to_string).as_ref()
    );
    let rec = automation.state().get("lamp/power").await.unwrap().unwrap();
    assert_eq!(rec.context.id, change.id);
    h.stop().await;
}
