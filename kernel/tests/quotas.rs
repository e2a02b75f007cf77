//! Storage and state cannot be flooded: a namespace, all of storage and state each have a
//! byte (and key) bound, writes past it are answered `quota_exceeded` without changing
//! anything, the bound holds across a restart, and others keep working.

use hcore_client::ErrorCode;
use hcore_tests::hub::*;
use hcore_tests::TempDir;
use serde_json::json;

fn limited(dir: &TempDir) -> hcore_kernel::settings::Settings {
    let mut s = settings(dir);
    s.kernel.max_storage_bytes_per_namespace = 10_000;
    s.kernel.max_storage_bytes = 15_000;
    s.kernel.max_state_keys = 20;
    s.kernel.max_state_bytes = 5_000;
    s
}

async fn start_limited(dir: TempDir) -> Harness {
    let s = limited(&dir);
    start_settings(dir, &s, vec![]).await
}

/// Stores `value` under k0, k1, ... until refused: how many were stored, and the refusal.
async fn fill(
    c: &hcore_client::Client,
    value: &serde_json::Value,
) -> (usize, hcore_client::ClientError) {
    for stored in 0..100 {
        if let Err(e) = c.storage().set(&format!("k{stored}"), value.clone()).await {
            return (stored, e);
        }
    }
    panic!("100 values of 1 KB stored: no quota");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_quotas_hold_per_namespace_in_total_and_across_restarts() {
    let h = start_limited(TempDir::new()).await;
    let flood = h.tcp("flood").await;
    let value = json!("x".repeat(1000));
    let (stored, refusal) = fill(&flood, &value).await;
    assert_eq!(refusal.code(), Some(ErrorCode::QuotaExceeded));
    assert!(refusal
        .to_string()
        .contains("max_storage_bytes_per_namespace"));
    assert_eq!(stored, 9, "9 entries of ~1 KB fit in 10,000 bytes");
    assert_eq!(
        flood.storage().get(&format!("k{stored}")).await.unwrap(),
        None
    );
    // Smaller replacements and deletes always work.
    flood.storage().set("k0", json!(1)).await.unwrap();
    assert!(flood.storage().delete("k1").await.unwrap());
    // Another namespace has its own share until the total is reached.
    let other = h.local("other").await;
    let (other_stored, refusal) = fill(&other, &value).await;
    assert!(
        refusal.to_string().contains("max_storage_bytes"),
        "{refusal}"
    );
    assert!((6..9).contains(&other_stored), "{other_stored}");
    // The counts are rebuilt from the database after a restart.
    let dir = h.stop().await;
    let h = start_limited(dir).await;
    let flood = h.tcp("flood").await;
    let e = flood.storage().set("new", value.clone()).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::QuotaExceeded));
    assert_eq!(flood.storage().get("k2").await.unwrap(), Some(value));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_bounded_in_keys_and_bytes() {
    let h = start_limited(TempDir::new()).await;
    let c = h.tcp("writer").await;
    for i in 0..20 {
        c.state().set(&format!("k/{i}"), json!(i)).await.unwrap();
    }
    let e = c.state().set("k/20", json!(20)).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::QuotaExceeded));
    assert!(e.to_string().contains("max_state_keys"), "{e}");
    assert_eq!(c.state().get("k/20").await.unwrap(), None);
    // Existing keys still change; a deletion makes room.
    c.state().set("k/0", json!("changed")).await.unwrap();
    c.state().delete("k/1").await.unwrap();
    c.state().set("k/20", json!(20)).await.unwrap();
    // Bytes: a value that would take state past 5,000 bytes is refused.
    let e = c
        .state()
        .set("k/0", json!("x".repeat(5_000)))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("max_state_bytes"), "{e}");
    assert_eq!(
        c.state().get("k/0").await.unwrap().unwrap().value,
        json!("changed")
    );
    h.stop().await;
}
