//! The abuses an anonymous client on the LAN can try, each against the real `hcore`
//! binary with every limit at its default: the process stays under 64 MB (its peak RSS,
//! not just where it ends) and another client's kernel call is still answered.

use std::net::SocketAddr;

use hcore_client::{Client, ClientOptions, ErrorCode};
use hcore_tests::binary::*;
use hcore_tests::broker::{
    connect_v5, publish_packet, publish_v5, raw_connected, raw_packet, subscribe_packet,
    v4_options, v4_with, without_clean_start, Wire,
};
use hcore_tests::hub::raw_provider_with;
use hcore_tests::{init_tracing, TempDir};
use rumqttc::QoS;
use serde_json::json;

const LIMIT_KB: u64 = 64 * 1024;

/// A running `hcore` with a way to read its memory.
struct Target {
    child: tokio::process::Child,
    url: String,
    addr: SocketAddr,
    _dir: TempDir,
}

async fn target() -> Target {
    init_tracing();
    let dir = TempDir::new();
    let (child, url) = spawn_hcore(&dir.0).await;
    let addr = url.trim_start_matches("mqtt://").parse().unwrap();
    Target {
        child,
        url,
        addr,
        _dir: dir,
    }
}

impl Target {
    fn status_kb(&self, field: &str) -> u64 {
        proc_status_kb(self.child.id().expect("hcore running"), field)
    }

    /// Peak RSS is under the limit, and another client is served.
    async fn survived(mut self, what: &str) {
        let peak = self.status_kb("VmHWM:");
        let now = self.status_kb("VmRSS:");
        println!("{what}: peak RSS {} MB, now {} MB", peak / 1024, now / 1024);
        assert!(peak < LIMIT_KB, "{what}: peak RSS {peak} KB");
        let c = Client::connect(&self.url, ClientOptions::new("bystander").quiet())
            .await
            .unwrap();
        let info = c.call("kernel.info", json!({})).await.unwrap();
        assert!(info.is_object());
        assert!(self.child.try_wait().unwrap().is_none(), "hcore still runs");
    }
}

/// A 3.1.1 client that takes large packets.
async fn big_client(addr: SocketAddr, id: &str) -> hcore_tests::broker::V4 {
    let mut o = v4_options(addr, id);
    o.set_max_packet_size(1 << 20, 1 << 20);
    v4_with(o).await.unwrap()
}

/// Waits until everything `c` sent was handled: a QoS 1 round trip on its own topic.
async fn sync(c: &mut hcore_tests::broker::V4, topic: &str) {
    c.subscribe(topic, QoS::AtLeastOnce).await;
    c.client
        .publish(topic, QoS::AtLeastOnce, false, "sync")
        .await
        .unwrap();
    while c.next_publish().await.expect("sync").topic != topic {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_retained_200_kb_messages() {
    let t = target().await;
    let mut c = big_client(t.addr, "retainer").await;
    let payload = vec![b'r'; 200 * 1024];
    for i in 0..2000 {
        c.client
            .publish(format!("junk/{i}"), QoS::AtLeastOnce, true, payload.clone())
            .await
            .unwrap();
    }
    sync(&mut c, "junk/sync").await;
    t.survived("2,000 retained 200 KB messages").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_subscriptions_from_one_client() {
    let t = target().await;
    let mut raw = Wire::connect(t.addr).await;
    raw.send(&connect_v5("subscriber", 60, &[], None)).await;
    assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
    let mut refused = 0;
    for batch in 0..500u16 {
        let mut body = vec![((batch + 1) >> 8) as u8, (batch + 1) as u8, 0];
        for i in 0..100 {
            let f = format!("subs/{batch}/{i}/+/#");
            body.extend_from_slice(&(f.len() as u16).to_be_bytes());
            body.extend_from_slice(f.as_bytes());
            body.push(1);
        }
        raw.send(&raw_packet(0x82, &body)).await;
        let (b1, codes) = raw.read_packet().await.expect("SUBACK");
        assert_eq!(b1, 0x90);
        refused += codes[3..].iter().filter(|c| **c == 0x97).count();
    }
    assert_eq!(
        refused, 40_000,
        "10,000 subscriptions per client by default"
    );
    t.survived("50,000 subscriptions from one client").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_of_32000_levels() {
    let t = target().await;
    let deep = "a/".repeat(32_000);
    for i in 0..50 {
        let mut raw = Wire::connect(t.addr).await;
        raw.send(&connect_v5(&format!("deep{i}"), 30, &[], None))
            .await;
        assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
        raw.send(&publish_v5(&deep[..64_000], b"x", 0, 0, &[]))
            .await;
        raw.send(&subscribe_packet(1, &deep[..64_000], 0)).await;
        assert!(raw.closed().await, "refused");
    }
    t.survived("32,000-level topics").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_publishes_never_released() {
    let t = target().await;
    let payload = vec![b'q'; 100 * 1024];
    for round in 0..20 {
        let mut raw = Wire::connect(t.addr).await;
        raw.send(&connect_v5(&format!("q2-{round}"), 30, &[], None))
            .await;
        assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
        for pkid in 1..=150u16 {
            raw.send(&publish_v5("q2/x", &payload, 2, pkid, &[])).await;
        }
        assert!(raw.closed().await, "disconnected past the receive maximum");
    }
    t.survived("unreleased QoS 2 publishes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_nobody_answers_with_huge_ids_and_endless_deadlines() {
    let t = target().await;
    // A provider that takes the calls (large ones too) and never answers.
    let mut o = hcore_tests::broker::v5_options(t.addr, "silent");
    o.set_max_packet_size(Some(1 << 20));
    let mut silent = raw_provider_with(o, &["silent.wait"]).await;
    let caller = Client::connect(&t.url, ClientOptions::new("caller").quiet())
        .await
        .unwrap();
    hcore_tests::hub::wait_registered(&caller, "silent.wait", "silent").await;
    let mut attacker = big_client(t.addr, "attacker").await;
    attacker
        .subscribe("hc/reply/attacker/#", QoS::AtMostOnce)
        .await;
    let huge_id = "i".repeat(100 * 1024);
    for i in 0..8000 {
        let id = if i % 2 == 0 {
            format!("{huge_id}{i}")
        } else {
            format!("call-{i}")
        };
        let request = json!({
            "id": id,
            "reply_to": "hc/reply/attacker/r",
            "deadline": u64::MAX,
            "params": {},
        });
        attacker
            .client
            .publish(
                "hc/call/attacker/silent/wait",
                QoS::AtMostOnce,
                false,
                request.to_string(),
            )
            .await
            .unwrap();
    }
    // Every call reaches the provider: the kernel watches at most 1,000 of them (and
    // none with an id over 256 bytes), the rest are the provider's business.
    for _ in 0..8000 {
        silent.next().await;
    }
    let e = caller.call("nobody.there", json!({})).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::NoResponders));
    t.survived("8,000 unanswered calls with 100 KB ids").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_clients_flooding_kernel_reads() {
    let t = target().await;
    let mut floods = Vec::new();
    for f in 0..3 {
        let addr = t.addr;
        floods.push(tokio::spawn(async move {
            // Subscribed to its replies, never reading them: they pile up at the broker.
            let id = format!("reader{f}");
            let mut raw = raw_connected(addr, &id, 60).await;
            raw.send(&subscribe_packet(1, &format!("hc/reply/{id}/#"), 0))
                .await;
            assert_eq!(raw.read_packet().await.unwrap().0, 0x90);
            let topic = format!("hc/call/{id}/state/list");
            for i in 0..30_000 {
                let request = json!({"id": format!("{i}"), "reply_to": format!("hc/reply/{id}/x"), "params": {"prefix": ""}});
                raw.send(&publish_packet(topic.as_bytes(), request.to_string().as_bytes(), 0, 0, false))
                    .await;
            }
            raw
        }));
    }
    let bystander = Client::connect(&t.url, ClientOptions::new("during").quiet())
        .await
        .unwrap();
    for i in 0..20 {
        bystander
            .state()
            .set(&format!("during/{i}"), json!(i))
            .await
            .expect("answered during the flood");
    }
    for f in floods {
        drop(f.await.unwrap());
    }
    t.survived("three clients flooding kernel reads").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_thousand_abandoned_persistent_sessions() {
    let t = target().await;
    for i in 0..12_000 {
        let mut raw = Wire::connect(t.addr).await;
        // Session expiry one day, clean start off.
        let props = [0x11, 0, 0x01, 0x51, 0x80];
        let connect = connect_v5(&format!("abandon{i}"), 30, &props, None);
        raw.send(&without_clean_start(connect)).await;
        raw.send(&subscribe_packet_v5(&format!("abandoned/{i}/#")))
            .await;
        assert_eq!(raw.read_packet().await.unwrap().0, 0x20);
    }
    t.survived("12,000 abandoned persistent sessions").await;
}

fn subscribe_packet_v5(filter: &str) -> Vec<u8> {
    let mut body = vec![0, 1, 0];
    body.extend_from_slice(&(filter.len() as u16).to_be_bytes());
    body.extend_from_slice(filter.as_bytes());
    body.push(1);
    raw_packet(0x82, &body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_flood() {
    let t = target().await;
    let value = json!("s".repeat(60 * 1024));
    let mut writers = Vec::new();
    // More namespaces than the total allows: each fills its own quota or the total.
    for w in 0..10 {
        let url = t.url.clone();
        let value = value.clone();
        writers.push(tokio::spawn(async move {
            let c = Client::connect(&url, ClientOptions::new(format!("hoarder{w}")).quiet())
                .await
                .unwrap();
            for i in 0.. {
                match c.storage().set(&format!("k{i}"), value.clone()).await {
                    Ok(()) => {}
                    Err(e) => {
                        assert_eq!(e.code(), Some(ErrorCode::QuotaExceeded), "{e}");
                        return i;
                    }
                }
            }
            unreachable!()
        }));
    }
    for w in writers {
        let stored = w.await.unwrap();
        assert!(stored < 70, "4 MiB per namespace: {stored} values of 60 KB");
    }
    t.survived("a storage flood").await;
}
