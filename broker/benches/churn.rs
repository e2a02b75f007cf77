//! Churn benchmark: 500 clients connecting, subscribing, publishing and leaving (MQTT
//! 3.1.1 and 5, clean and persistent sessions with fixed ids, wills, clean and abrupt
//! exits) for `CHURN_SECS` (default 600), against hcore's broker and mosquitto
//! (TCP_NODELAY on) side by side. Prints the RSS curve every 30 s, the connects per
//! second, and RSS after the clients are gone, for each.
//!
//! Run: `cargo bench -p hcore-broker --bench churn` (needs `mosquitto` on PATH).

#[path = "brokers.rs"]
#[allow(dead_code)]
mod brokers;
#[path = "support.rs"]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use brokers::{serve_if_asked, spawn_broker};
use hcore_tests::churn::churn;
use support::{free_port, rss_mb, wait_port};

const CLIENTS: usize = 500;
const SAMPLE: Duration = Duration::from_secs(30);

fn main() {
    if serve_if_asked() {
        return;
    }
    let secs: u64 = std::env::var("CHURN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let rt = support::runtime();
    let mut rows = Vec::new();
    for kind in ["hcore", "mosquitto"] {
        rows.push((kind, rt.block_on(run(kind, Duration::from_secs(secs)))));
    }
    println!("\nchurn benchmark: {CLIENTS} clients for {secs} s (loopback, 2 cores)");
    println!(
        "{:<12}{:>12}{:>12}{:>12}{:>12}{:>14}",
        "", "RSS start", "RSS peak", "RSS end", "end-start", "connects/s"
    );
    for (kind, r) in &rows {
        println!(
            "{kind:<12}{:>10.1}MB{:>10.1}MB{:>10.1}MB{:>10.1}MB{:>14.0}",
            r.start,
            r.peak,
            r.end,
            r.end - r.start,
            r.connects_per_sec
        );
    }
}

struct Run {
    start: f64,
    peak: f64,
    end: f64,
    connects_per_sec: f64,
}

async fn run(kind: &'static str, duration: Duration) -> Run {
    let port = free_port();
    let broker = spawn_broker(kind, port, None);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_port(addr).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = broker.pid();
    let start = rss_mb(pid);
    let started = Instant::now();
    let peak_kb = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let peak_seen = peak_kb.clone();
    let sampler = tokio::spawn(async move {
        loop {
            tokio::time::sleep(SAMPLE).await;
            let now = rss_mb(pid);
            peak_seen.fetch_max((now * 1024.0) as u64, std::sync::atomic::Ordering::Relaxed);
            eprintln!(
                "{kind}: {:>4} s RSS {now:.1} MB",
                started.elapsed().as_secs()
            );
        }
    });
    let report = churn(addr, CLIENTS, duration).await;
    sampler.abort();
    let sampled = peak_kb.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0;
    let peak = rss_mb(pid).max(start).max(sampled);
    // Give the broker its upkeep tick to return freed memory.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = rss_mb(pid);
    eprintln!("{kind}: {report:?}; RSS {start:.1} -> {end:.1} MB");
    broker.stop();
    Run {
        start,
        peak: peak.max(end),
        end,
        connects_per_sec: report.connects as f64 / duration.as_secs_f64(),
    }
}
