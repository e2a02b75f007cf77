//! Clients coming and going must not leave memory behind: 500 clients churn against the
//! real `hcore` binary (MQTT 3.1.1 and 5, clean and persistent, wills, clean and abrupt
//! exits), and once they are gone its RSS comes back to within 10 MB of where it started.
//! (The benchmark `cargo bench -p hcore-broker --bench churn` runs it for 10 minutes
//! against mosquitto too.)

use std::time::Duration;

use hcore_client::{Client, ClientOptions};
use hcore_tests::binary::*;
use hcore_tests::churn::churn;
use hcore_tests::{init_tracing, TempDir};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_comes_back_after_client_churn() {
    init_tracing();
    let dir = TempDir::new();
    let (mut hcore, url) = spawn_hcore(&dir.0).await;
    let pid = hcore.id().unwrap();
    let addr = url.trim_start_matches("mqtt://").parse().unwrap();
    // Where it starts: after a first short wave, whose persistent sessions (500 fixed
    // ids) stay by design, as do the allocator's per-thread arenas.
    churn(addr, 500, Duration::from_secs(2)).await;
    let start = proc_status_kb(pid, "VmRSS:");
    let report = churn(addr, 500, Duration::from_secs(20)).await;
    assert!(report.connects > 1000, "{report:?}");
    let peak = proc_status_kb(pid, "VmHWM:");
    // Freed memory goes back to the OS within the broker's next upkeep tick (1 s).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let end = loop {
        let now = proc_status_kb(pid, "VmRSS:");
        if now <= start + 10 * 1024 || tokio::time::Instant::now() > deadline {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "churn: {} connects, {} publishes, {} failed; RSS start {} MB, peak {} MB, end {} MB",
        report.connects,
        report.publishes,
        report.failures,
        start / 1024,
        peak / 1024,
        end / 1024
    );
    assert!(end <= start + 10 * 1024, "RSS {start} KB -> {end} KB");
    let c = Client::connect(&url, ClientOptions::new("after").quiet())
        .await
        .unwrap();
    c.state().set("after/churn", json!(true)).await.unwrap();
    assert!(hcore.try_wait().unwrap().is_none());
}
