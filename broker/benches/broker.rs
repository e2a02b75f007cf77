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

#[path = "mqtt_client.rs"]
mod mqtt_client;
#[path = "support.rs"]
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqtt_client::{connect, puback, publish};
use support::{free_port, rss_mb, wait_port};
use tokio::sync::Semaphore;

const PING_PONGS: usize = 2000;
const FANOUT: [(usize, usize); 3] = [(1, 100_000), (10, 30_000), (50, 10_000)];
const WINDOW: usize = 100;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        let port: u16 = args[3].parse().expect("port");
        match args[2].as_str() {
            "hcore" => serve_hcore(port),
            "rumqttd" => serve_rumqttd(port),
            other => panic!("unknown broker {other}"),
        }
        return;
    }
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
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

fn serve_hcore(port: u16) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let config =
            hcore_broker::BrokerConfig::with_listener(SocketAddr::from(([127, 0, 0, 1], port)));
        let _broker = hcore_broker::Broker::start(config)
            .await
            .expect("start hcore broker");
        std::future::pending::<()>().await;
    });
}

fn serve_rumqttd(port: u16) {
    // rumqttd's shipped rumqttd.toml, v4 listener only.
    let text = format!(
        r#"
id = 0
[router]
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 20480
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&text).expect("rumqttd config");
    rumqttd::Broker::new(config).start().expect("rumqttd");
}

fn spawn_broker(kind: &str, port: u16) -> (Child, Option<tempfile_path::TempPath>) {
    match kind {
        "mosquitto" => {
            let conf = tempfile_path::TempPath::new(format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\npersistence false\n"
            ));
            let child = Command::new("mosquitto")
                .args(["-c", conf.path()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("mosquitto on PATH");
            (child, Some(conf))
        }
        _ => {
            let exe = std::env::current_exe().unwrap();
            let child = Command::new(exe)
                .args(["--serve", kind, &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            (child, None)
        }
    }
}

/// A file that is removed when dropped.
mod tempfile_path {
    pub struct TempPath(String);
    impl TempPath {
        pub fn new(content: String) -> TempPath {
            let path = std::env::temp_dir().join(format!(
                "hcore-bench-{}.conf",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::write(&path, content).unwrap();
            TempPath(path.to_string_lossy().into_owned())
        }
        pub fn path(&self) -> &str {
            &self.0
        }
    }
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
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
    let (mut child, _conf) = spawn_broker(kind, port);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_port(addr).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = child.id();
    let idle_rss = rss_mb(pid);
    let qos0 = percentiles(ping_pong(addr, 0).await);
    let qos1 = percentiles(ping_pong(addr, 1).await);
    let mut fanout = Vec::new();
    for (subs, msgs) in FANOUT {
        let (rate, ratio) = fan_out(addr, subs, msgs).await;
        fanout.push((subs, rate, ratio));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_rss = rss_mb(pid);
    let _ = child.kill();
    let _ = child.wait();
    Run {
        idle_rss,
        after_rss,
        qos0,
        qos1,
        fanout,
    }
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

fn next_pkid(p: &mut u16) -> u16 {
    *p = if *p == u16::MAX { 1 } else { *p + 1 };
    *p
}

/// Request/response through the broker: ping -> responder -> pong.
async fn ping_pong(addr: SocketAddr, qos: u8) -> Vec<Duration> {
    let (mut rr, mut rw) = connect(addr, "responder").await.unwrap();
    rw.subscribe(&mut rr, "bench/ping", qos).await.unwrap();
    let (mut qr, mut qw) = connect(addr, "requester").await.unwrap();
    qw.subscribe(&mut qr, "bench/pong", qos).await.unwrap();
    let responder = tokio::spawn(async move {
        let mut pkid = 0;
        let mut out = BytesMut::new();
        while let Ok(p) = rr.next().await {
            if p.kind() != 3 {
                continue;
            }
            let (in_pkid, payload) = p.publish_parts();
            if p.qos() > 0 {
                puback(&mut out, in_pkid);
            }
            publish(&mut out, "bench/pong", &payload, qos, next_pkid(&mut pkid));
            if rw.send(&out).await.is_err() {
                break;
            }
            out.clear();
        }
    });
    let mut rtts = Vec::with_capacity(PING_PONGS);
    let mut pkid = 0;
    let mut out = BytesMut::new();
    for i in 0..PING_PONGS + 200 {
        out.clear();
        let start = Instant::now();
        publish(
            &mut out,
            "bench/ping",
            &(i as u64).to_be_bytes(),
            qos,
            next_pkid(&mut pkid),
        );
        qw.send(&out).await.unwrap();
        loop {
            let p = qr.next().await.unwrap();
            if p.kind() == 3 {
                if p.qos() > 0 {
                    let mut ack = BytesMut::new();
                    puback(&mut ack, p.publish_parts().0);
                    qw.send(&ack).await.unwrap();
                }
                break;
            }
        }
        if i >= 200 {
            rtts.push(start.elapsed());
        }
    }
    responder.abort();
    rtts
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
