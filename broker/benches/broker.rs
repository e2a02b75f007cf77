//! Broker benchmark: hcore's broker side by side with mosquitto (TCP_NODELAY on) and raw
//! rumqttd (its shipped defaults), alternating, in one run.
//!
//! Each broker runs in its own process (this binary re-executes itself for hcore and
//! rumqttd) so its RSS can be read from /proc. Measured: QoS 0 and QoS 1 ping-pong round
//! trips (p50/p99), fan-out from one QoS 1 publisher to 1/10/50 QoS 1 subscribers
//! (deliveries/s and delivered/expected), idle RSS and RSS after the run.
//!
//! Run: `cargo bench -p hcore-broker --bench broker` (needs `mosquitto` on PATH).
//! `BENCH_ROUNDS` (default 2) sets the number of alternating rounds.

#[path = "brokers.rs"]
#[allow(dead_code)] // shared with the scale benchmark, which stops brokers gracefully
mod brokers;
#[path = "echo.rs"]
mod echo;
#[path = "mqtt_client.rs"]
mod mqtt_client;
#[path = "support.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokers::{serve_if_asked, spawn_broker};
use bytes::BytesMut;
use echo::{percentiles, round_trips, Clients};
use mqtt_client::{connect, puback, publish};
use support::{free_port, rss_mb, wait_port};
use tokio::sync::Semaphore;

const PING_PONGS: usize = 2000;
const FANOUT: [(usize, usize); 3] = [(1, 100_000), (10, 30_000), (50, 10_000)];
const WINDOW: usize = 100;

fn main() {
    if serve_if_asked() {
        return;
    }
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rt = support::runtime();
    let mut results: BTreeMap<&'static str, Vec<Run>> = BTreeMap::new();
    for round in 0..rounds {
        for kind in ["hcore", "mosquitto", "rumqttd"] {
            eprintln!("round {}/{rounds}: {kind}", round + 1);
            let run = rt.block_on(bench_one(kind));
            eprintln!("  {}", run.line());
            results.entry(kind).or_default().push(run);
        }
    }
    report(&results);
}

struct Run {
    idle_rss: f64,
    after_rss: f64,
    qos0: (f64, f64),
    qos1: (f64, f64),
    fanout: Vec<(usize, f64, f64)>,
}

impl Run {
    fn line(&self) -> String {
        let fan: Vec<String> = self
            .fanout
            .iter()
            .map(|(n, rate, ratio)| format!("1->{n}: {:.0}/s ({:.3})", rate, ratio))
            .collect();
        format!(
            "qos0 p50/p99 {:.0}/{:.0} us, qos1 p50/p99 {:.0}/{:.0} us, {}, rss idle {:.1} MB after {:.1} MB",
            self.qos0.0, self.qos0.1, self.qos1.0, self.qos1.1, fan.join(", "), self.idle_rss, self.after_rss
        )
    }
}

async fn bench_one(kind: &'static str) -> Run {
    let port = free_port();
    let broker = spawn_broker(kind, port, None);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_port(addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = broker.pid();
    let idle_rss = rss_mb(pid);
    let qos0 = percentiles(round_trips(addr, 0, PING_PONGS, Clients::Tuned).await);
    let qos1 = percentiles(round_trips(addr, 1, PING_PONGS, Clients::Tuned).await);
    let mut fanout = Vec::new();
    for (subs, msgs) in FANOUT {
        let (rate, ratio) = fan_out(addr, subs, msgs).await;
        fanout.push((subs, rate, ratio));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_rss = rss_mb(pid);
    drop(broker);
    Run {
        idle_rss,
        after_rss,
        qos0,
        qos1,
        fanout,
    }
}

fn next_pkid(p: &mut u16) -> u16 {
    *p = if *p == u16::MAX { 1 } else { *p + 1 };
    *p
}

/// One QoS 1 publisher (window of 100) to `subs` QoS 1 subscribers. Returns deliveries/s
/// and delivered / (msgs x subs).
async fn fan_out(addr: SocketAddr, subs: usize, msgs: usize) -> (f64, f64) {
    let topic = "bench/fan";
    let mut tasks = Vec::new();
    for i in 0..subs {
        let (mut r, mut w) = connect(addr, &format!("sub-{i}")).await.unwrap();
        w.subscribe(&mut r, topic, 1).await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut count = 0usize;
            let mut last = Instant::now();
            let mut acks = BytesMut::new();
            while count < msgs {
                match tokio::time::timeout(Duration::from_secs(3), r.fill()).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => break,
                }
                while let Some(p) = r.parse() {
                    if p.kind() == 3 {
                        count += 1;
                        if p.qos() > 0 {
                            puback(&mut acks, p.publish_parts().0);
                        }
                    }
                }
                last = Instant::now();
                if !acks.is_empty() {
                    if w.send(&acks).await.is_err() {
                        break;
                    }
                    acks.clear();
                }
            }
            (count, last)
        }));
    }
    let (mut pr, mut pw) = connect(addr, "publisher").await.unwrap();
    let window = Arc::new(Semaphore::new(WINDOW));
    let acks = window.clone();
    let ack_reader = tokio::spawn(async move {
        while let Ok(p) = pr.next().await {
            if p.kind() == 4 {
                acks.add_permits(1);
            }
        }
    });
    let payload = [0x42u8; 64];
    let start = Instant::now();
    let mut pkid = 0;
    let mut sent = 0;
    let mut out = BytesMut::new();
    while sent < msgs {
        let permit = window.acquire().await.unwrap();
        permit.forget();
        let mut n = 1;
        while n < 64 && sent + n < msgs {
            match window.try_acquire() {
                Ok(p) => {
                    p.forget();
                    n += 1;
                }
                Err(_) => break,
            }
        }
        for _ in 0..n {
            publish(&mut out, topic, &payload, 1, next_pkid(&mut pkid));
        }
        pw.send(&out).await.unwrap();
        out.clear();
        sent += n;
    }
    let mut delivered = 0;
    let mut end = start;
    for t in tasks {
        let (count, last) = t.await.unwrap();
        delivered += count;
        end = end.max(last);
    }
    ack_reader.abort();
    let secs = end.duration_since(start).as_secs_f64().max(1e-6);
    (
        delivered as f64 / secs,
        delivered as f64 / (msgs * subs) as f64,
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn report(results: &BTreeMap<&'static str, Vec<Run>>) {
    let m = |kind: &str, f: &dyn Fn(&Run) -> f64| median(results[kind].iter().map(f).collect());
    let kinds = ["hcore", "mosquitto", "rumqttd"];
    println!(
        "\nbroker benchmark (medians of {} alternating rounds, 64-byte payloads, loopback)",
        results["hcore"].len()
    );
    println!(
        "{:<34}{:>14}{:>14}{:>14}{:>12}{:>12}",
        "", "hcore", "mosquitto", "rumqttd", "hc/mosq", "hc/rumqttd"
    );
    type Metric<'a> = (&'a str, Box<dyn Fn(&Run) -> f64>, bool);
    let mut rows: Vec<Metric> = vec![
        (
            "QoS0 round trip p50 (us)",
            Box::new(|r: &Run| r.qos0.0),
            false,
        ),
        (
            "QoS0 round trip p99 (us)",
            Box::new(|r: &Run| r.qos0.1),
            false,
        ),
        (
            "QoS1 round trip p50 (us)",
            Box::new(|r: &Run| r.qos1.0),
            false,
        ),
        (
            "QoS1 round trip p99 (us)",
            Box::new(|r: &Run| r.qos1.1),
            false,
        ),
    ];
    for (i, (n, _)) in FANOUT.iter().enumerate() {
        rows.push((
            Box::leak(format!("fan-out 1->{n} QoS1 (deliveries/s)").into_boxed_str()),
            Box::new(move |r: &Run| r.fanout[i].1),
            true,
        ));
        rows.push((
            Box::leak(format!("fan-out 1->{n} delivered/expected").into_boxed_str()),
            Box::new(move |r: &Run| r.fanout[i].2),
            true,
        ));
    }
    rows.push(("RSS idle (MB)", Box::new(|r: &Run| r.idle_rss), false));
    rows.push(("RSS after run (MB)", Box::new(|r: &Run| r.after_rss), false));
    for (name, f, _higher_better) in &rows {
        let v: Vec<f64> = kinds.iter().map(|k| m(k, f.as_ref())).collect();
        let fmt = |x: f64| {
            if x >= 1000.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.3}")
            }
        };
        println!(
            "{:<34}{:>14}{:>14}{:>14}{:>12.2}{:>12.2}",
            name,
            fmt(v[0]),
            fmt(v[1]),
            fmt(v[2]),
            v[0] / v[1],
            v[0] / v[2]
        );
    }
}
