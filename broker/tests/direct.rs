//! Direct delivery to in-process clients (matched at the edge, handed over on the
//! publisher's task): retained-before-live (forced and under racing publishers), per-publisher order
//! with several network publishers at once, sinks that publish in line (bounded
//! recursion), sinks that panic, subscriptions that end, and queue receivers that never
//! read.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use hcore_broker::{LocalClient, LocalOptions, LocalSink, Message, QoS};
use hcore_tests::broker::*;

fn seq(m: &Message) -> u32 {
    u32::from_be_bytes(m.payload[..4].try_into().unwrap())
}

/// A sink that records every message it gets.
fn recording() -> (LocalSink, Arc<Mutex<Vec<Message>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    (Arc::new(move |m| g.lock().unwrap().push(m)), got)
}

/// An in-process client that receives through `sink`.
async fn sink_client(
    broker: &hcore_broker::Broker,
    id: &str,
    sink: LocalSink,
) -> (LocalClient, hcore_broker::LocalReceiver) {
    let options = LocalOptions {
        sink: Some(sink),
        ..Default::default()
    };
    broker.local_client(id, options).await.unwrap()
}

async fn until(mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_subscriber_sees_the_retained_value_before_newer_live_ones() {
    let broker = start().await;
    let addr = addr(&broker);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A network publisher and an in-process one keep replacing a retained value each with
    // a growing number, while subscribers keep arriving.
    let publisher = v4(addr, "counter").await;
    let client = publisher.client.clone();
    let s = stop.clone();
    let tcp_pump = tokio::spawn(async move {
        let mut i = 0u32;
        while !s.load(Ordering::Relaxed) {
            i += 1;
            let payload = i.to_be_bytes().to_vec();
            let sent = client.publish("race/tcp", rumqttc::QoS::AtMostOnce, true, payload);
            sent.await.unwrap();
            if i.is_multiple_of(64) {
                tokio::task::yield_now().await;
            }
        }
    });
    let (local, _lrx) = broker
        .local_client("local-counter", LocalOptions::default())
        .await
        .unwrap();
    let s = stop.clone();
    let local_pump = tokio::spawn(async move {
        let mut i = 0u32;
        while !s.load(Ordering::Relaxed) {
            i += 1;
            let m = Message::new("race/local", i.to_be_bytes().to_vec()).retained(true);
            local.publish(m).await.unwrap();
            if i.is_multiple_of(16) {
                tokio::task::yield_now().await;
            }
        }
    });
    let handle = broker.handle();
    until(|| handle.retained_count() == 2).await;
    let mut subscribers = Vec::new();
    for n in 0..400 {
        let (sink, got) = recording();
        let (sub, rx) = sink_client(&broker, &format!("late-{n}"), sink).await;
        sub.subscribe("race/#", QoS::AtMostOnce).await.unwrap();
        subscribers.push((sub, rx, got));
    }
    stop.store(true, Ordering::Relaxed);
    tcp_pump.await.unwrap();
    local_pump.await.unwrap();
    for (_, _, got) in &subscribers {
        until(|| got.lock().unwrap().len() >= 2).await;
        let got = got.lock().unwrap().clone();
        for topic in ["race/tcp", "race/local"] {
            let on_topic: Vec<&Message> = got.iter().filter(|m| m.topic == topic).collect();
            assert!(
                on_topic[0].retain,
                "the retained value comes first on {topic}"
            );
            assert!(
                on_topic[1..].iter().all(|m| !m.retain),
                "then only live ones"
            );
            let numbers: Vec<u32> = on_topic.iter().map(|m| seq(m)).collect();
            assert!(
                numbers.windows(2).all(|w| w[0] < w[1]),
                "never older than what was seen on {topic}: {numbers:?}"
            );
        }
    }
    broker.shutdown().await;
}

/// Runs `trigger` (once) when the retained message of a new subscription is about to be
/// delivered: the moment a live message could overtake it.
#[derive(Default)]
struct AtSnapshot {
    trigger: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl hcore_broker::Hooks for AtSnapshot {
    fn authorize_delivery(&self, client: &hcore_broker::ClientInfo, _topic: &str) -> bool {
        if client.client_id == "late" {
            let trigger = self.trigger.lock().unwrap().take();
            if let Some(trigger) = trigger {
                trigger();
            }
        }
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_message_published_while_a_subscription_opens_waits_for_the_retained_one() {
    let hooks = Arc::new(AtSnapshot::default());
    let broker = start_with(test_config(), Some(hooks.clone())).await;
    let (publisher, _prx) = broker
        .local_client("publisher", LocalOptions::default())
        .await
        .unwrap();
    publisher
        .publish(Message::new("gate/x", 1u32.to_be_bytes().to_vec()).retained(true))
        .await
        .unwrap();
    // While the snapshot is being handed over, another thread publishes a live message
    // and waits until its publish (and any in-line delivery) is done.
    *hooks.trigger.lock().unwrap() = Some(Box::new(move || {
        std::thread::spawn(move || {
            let live = Message::new("gate/x", 2u32.to_be_bytes().to_vec());
            assert!(publisher.try_publish(live).is_ok(), "publish taken at once");
        })
        .join()
        .unwrap();
    }));
    let (sink, got) = recording();
    let (late, _rx) = sink_client(&broker, "late", sink).await;
    late.subscribe("gate/#", QoS::AtMostOnce).await.unwrap();
    until(|| got.lock().unwrap().len() >= 2).await;
    let got = got.lock().unwrap().clone();
    let order: Vec<(u32, bool)> = got.iter().map(|m| (seq(m), m.retain)).collect();
    assert_eq!(order, [(1, true), (2, false)], "retained first, then live");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_publishers_messages_arrive_in_order_and_complete() {
    let broker = start().await;
    let addr = addr(&broker);
    let (sink, got) = recording();
    let (sub, _rx) = sink_client(&broker, "collector", sink).await;
    sub.subscribe("load/+", QoS::AtLeastOnce).await.unwrap();
    const N: u32 = 5_000;
    let mut tasks = Vec::new();
    let mut publishers = Vec::new();
    for p in 0..4 {
        let mut o = v4_options(addr, &format!("pub-{p}"));
        o.set_inflight(100);
        let publisher = v4_with(o).await.unwrap();
        let client = publisher.client.clone();
        publishers.push(publisher);
        tasks.push(tokio::spawn(async move {
            for i in 0..N {
                client
                    .publish(
                        format!("load/{p}"),
                        rumqttc::QoS::AtLeastOnce,
                        false,
                        i.to_be_bytes().to_vec(),
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    // Plus an in-process publisher.
    let (local, _lrx) = broker
        .local_client("pub-local", LocalOptions::default())
        .await
        .unwrap();
    for i in 0..N {
        local
            .publish(Message::new("load/local", i.to_be_bytes().to_vec()))
            .await
            .unwrap();
    }
    for t in tasks {
        t.await.unwrap();
    }
    until(|| got.lock().unwrap().len() >= 5 * N as usize).await;
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 5 * N as usize, "nothing lost, nothing doubled");
    for topic in ["load/0", "load/1", "load/2", "load/3", "load/local"] {
        let numbers: Vec<u32> = got.iter().filter(|m| m.topic == topic).map(seq).collect();
        assert_eq!(numbers, (0..N).collect::<Vec<_>>(), "{topic} in order");
    }
    drop(publishers);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_publishes_in_line_recurses_without_exhausting_the_stack() {
    let broker = start().await;
    // Each message `ping` n makes the sink publish n + 1 to itself, in line, 20,000 times:
    // far deeper than a stack allows if every delivery nested.
    const LAST: u32 = 20_000;
    let me: Arc<OnceLock<LocalClient>> = Arc::new(OnceLock::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (m2, s2) = (me.clone(), seen.clone());
    let sink: LocalSink = Arc::new(move |m: Message| {
        let n = seq(&m);
        s2.lock().unwrap().push(n);
        if n < LAST {
            let next = Message::new("ping", (n + 1).to_be_bytes().to_vec());
            let client = m2.get().unwrap();
            if let Err(next) = client.try_publish(next) {
                let client = client.clone();
                tokio::spawn(async move { client.publish(*next).await.unwrap() });
            }
        }
    });
    let (client, _rx) = sink_client(&broker, "echo", sink).await;
    let _ = me.set(client.clone());
    client.subscribe("ping", QoS::AtMostOnce).await.unwrap();
    client
        .publish(Message::new("ping", 0u32.to_be_bytes().to_vec()))
        .await
        .unwrap();
    until(|| seen.lock().unwrap().len() > LAST as usize).await;
    assert_eq!(*seen.lock().unwrap(), (0..=LAST).collect::<Vec<_>>());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sink_loses_one_message_and_the_publisher_is_unaffected() {
    let broker = start().await;
    let addr = addr(&broker);
    let (record, got) = recording();
    let sink: LocalSink = Arc::new(move |m: Message| {
        if m.payload_str() == Some("boom") {
            panic!("plugin bug");
        }
        record(m);
    });
    let (sub, _rx) = sink_client(&broker, "fragile", sink).await;
    sub.subscribe("t/#", QoS::AtMostOnce).await.unwrap();
    let mut witness = v4(addr, "witness").await;
    witness.subscribe("t/#", rumqttc::QoS::AtLeastOnce).await;
    let publisher = v4(addr, "publisher").await;
    for payload in ["a", "boom", "b"] {
        publisher
            .client
            .publish("t/x", rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }
    for expected in ["a", "boom", "b"] {
        let p = witness.next_publish().await.expect("witness gets all");
        assert_eq!(&p.payload[..], expected.as_bytes());
    }
    until(|| got.lock().unwrap().len() >= 2).await;
    let payloads: Vec<_> = got
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.payload_str().unwrap().to_string())
        .collect();
    assert_eq!(payloads, ["a", "b"]);
    // The publisher's connection still works: one more message arrives everywhere.
    publisher
        .client
        .publish("t/x", rumqttc::QoS::AtLeastOnce, false, "c")
        .await
        .unwrap();
    assert_eq!(&witness.next_publish().await.unwrap().payload[..], b"c");
    until(|| got.lock().unwrap().len() >= 3).await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribed_closed_and_taken_over_clients_get_nothing_more() {
    let broker = start().await;
    let (witness, mut wrx) = broker
        .local_client("witness", LocalOptions::default())
        .await
        .unwrap();
    witness.subscribe("x/#", QoS::AtMostOnce).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counting = |c: &Arc<AtomicUsize>| -> LocalSink {
        let c = c.clone();
        Arc::new(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
        })
    };
    let (a, _arx) = sink_client(&broker, "a", counting(&calls)).await;
    a.subscribe("x/#", QoS::AtMostOnce).await.unwrap();
    a.subscribe("x/+", QoS::AtMostOnce).await.unwrap();
    let publish = |n: u32| {
        let w = witness.clone();
        async move {
            w.publish(Message::new("x/y", n.to_be_bytes().to_vec()))
                .await
                .unwrap()
        }
    };
    publish(1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "overlapping filters: once");
    a.unsubscribe("x/#").await.unwrap();
    publish(2).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "still subscribed to x/+");
    a.unsubscribe("x/+").await.unwrap();
    publish(3).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "unsubscribed");

    // Taken over: the old client's subscriptions end with it.
    let old_calls = Arc::new(AtomicUsize::new(0));
    let (old, mut old_rx) = sink_client(&broker, "b", counting(&old_calls)).await;
    old.subscribe("x/#", QoS::AtMostOnce).await.unwrap();
    let new_calls = Arc::new(AtomicUsize::new(0));
    let (new, _nrx) = sink_client(&broker, "b", counting(&new_calls)).await;
    assert!(tokio::time::timeout(WAIT, old_rx.recv())
        .await
        .unwrap()
        .is_none());
    assert!(old.subscribe("x/#", QoS::AtMostOnce).await.is_err());
    new.subscribe("x/#", QoS::AtMostOnce).await.unwrap();
    publish(4).await;
    assert_eq!(old_calls.load(Ordering::SeqCst), 0);
    assert_eq!(new_calls.load(Ordering::SeqCst), 1);

    // Disconnected: nothing more either.
    new.disconnect().await.unwrap();
    publish(5).await;
    assert_eq!(new_calls.load(Ordering::SeqCst), 1);
    for n in 1..=5u32 {
        assert_eq!(seq(&wrx.recv().await.unwrap()), n, "the witness saw all");
    }
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_receiver_that_never_reads_loses_the_newest_and_counts_them() {
    let mut config = test_config();
    config.local_queue_limit = 500;
    let broker = start_with(config, None).await;
    let (idle, mut idle_rx) = broker
        .local_client("idle", LocalOptions::default())
        .await
        .unwrap();
    idle.subscribe("flood/#", QoS::AtMostOnce).await.unwrap();
    let (sink, got) = recording();
    let (busy, _brx) = sink_client(&broker, "busy", sink).await;
    busy.subscribe("flood/#", QoS::AtMostOnce).await.unwrap();
    let (publisher, _prx) = broker
        .local_client("flooder", LocalOptions::default())
        .await
        .unwrap();
    for i in 0..2_000u32 {
        publisher
            .publish(Message::new("flood/x", i.to_be_bytes().to_vec()))
            .await
            .unwrap();
    }
    // The sink client got everything; the idle queue kept the oldest 500.
    assert_eq!(got.lock().unwrap().len(), 2_000);
    assert_eq!(broker.metrics().dropped_slow_subscriber, 1_500);
    for expected in 0..500u32 {
        assert_eq!(seq(&idle_rx.try_recv().expect("kept")), expected);
    }
    assert!(idle_rx.try_recv().is_none());
    broker.shutdown().await;
}
