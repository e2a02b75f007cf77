//! Starting and stopping the real `hcore` binary under load: a client that connects while
//! hcore starts is answered (connections are accepted only once the kernel is ready), and
//! on SIGTERM every call in flight is answered (`unavailable` when it cannot be served)
//! before the connections close: no caller waits for its timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hcore_client::{CallOptions, Client, ClientError, ClientOptions, ErrorCode};
use hcore_tests::binary::*;
use hcore_tests::hub::*;
use hcore_tests::wire::{connect_packet, publish_packet, subscribe_packet, Wire};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_connects_while_hcore_starts_is_answered() {
    init_tracing();
    for trial in 0..8 {
        let dir = TempDir::new();
        let port = free_port();
        let mut run = hcore()
            .args([
                "run",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&dir.0)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // As early as the port exists: CONNECT, SUBSCRIBE to the reply topic and the
        // request, all in one write, with no wait for any answer in between.
        let mut wire = tokio::time::timeout(WAIT, async {
            loop {
                match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    Ok(s) => break Wire::from_stream(s),
                    Err(_) => tokio::time::sleep(Duration::from_millis(1)).await,
                }
            }
        })
        .await
        .expect("hcore listening");
        let mut burst = connect_packet(4, "early", 30, true);
        burst.extend(subscribe_packet(1, "hc/reply/early", 0));
        burst.extend(publish_packet(
            b"hc/call/early/kernel/info",
            br#"{"id":"first"}"#,
            0,
            0,
            false,
        ));
        wire.send(&burst).await;
        let reply = loop {
            match wire.read_packet().await {
                Some((b1, body)) if b1 >> 4 == 3 => break Some(body),
                Some(_) => continue,
                None => break None,
            }
        };
        let reply =
            reply.unwrap_or_else(|| panic!("trial {trial}: the first request was never answered"));
        let text = String::from_utf8_lossy(&reply);
        assert!(
            text.contains(r#""id":"first""#) && text.contains("result"),
            "{text}"
        );
        kill9(&mut run).await;
    }
}

/// What a busy caller saw when hcore stopped.
#[derive(Default)]
struct Outcomes {
    answered: AtomicUsize,
    unavailable: AtomicUsize,
    timed_out: AtomicUsize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_every_call_in_flight() {
    init_tracing();
    let dir = TempDir::new();
    let mut c = hcore();
    c.args([
        "run",
        "--listen",
        "127.0.0.1:0",
        "--plugin",
        "example",
        "--data-dir",
    ])
    .arg(&dir.0);
    let (run, url) = spawn_with(c).await;
    let addr = url.trim_start_matches("mqtt://").parse().unwrap();
    // A provider that takes calls and never answers: its callers are in flight at SIGTERM.
    let _slow = raw_provider_at(addr, "slow", &["slow.work"]).await;
    let admin = Client::connect(&url, ClientOptions::new("admin").quiet())
        .await
        .unwrap();
    wait_registered(&admin, "slow.work", "slow").await;
    wait_registered(&admin, "example.hello", "example").await;
    let stuck = tokio::spawn(async move {
        let options = CallOptions {
            timeout: Some(Duration::from_secs(30)),
            parent: None,
        };
        admin.call_with("slow.work", json!({}), options).await
    });

    let outcomes = Arc::new(Outcomes::default());
    let mut callers = Vec::new();
    for i in 0..10 {
        let client = Client::connect(&url, ClientOptions::new(format!("busy{i}")).quiet())
            .await
            .unwrap();
        let outcomes = outcomes.clone();
        callers.push(tokio::spawn(async move {
            let options = CallOptions {
                timeout: Some(Duration::from_secs(3)),
                parent: None,
            };
            for n in 0u64.. {
                let (method, params) = match n % 4 {
                    0 => ("state.set", json!({"key": format!("busy/{i}"), "value": n})),
                    1 => ("storage.set", json!({"key": "n", "value": n})),
                    2 => ("state.get", json!({"key": format!("busy/{i}")})),
                    _ => ("example.hello", json!({"name": "load"})),
                };
                match client.call_with(method, params, options.clone()).await {
                    Ok(_) => outcomes.answered.fetch_add(1, Ordering::Relaxed),
                    Err(ClientError::Rpc(e)) if e.code == ErrorCode::Timeout => {
                        outcomes.timed_out.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(ClientError::Rpc(e)) if e.code == ErrorCode::Unavailable => {
                        outcomes.unavailable.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(ClientError::Rpc(_)) => outcomes.answered.fetch_add(1, Ordering::Relaxed),
                    // The connection closed: nothing more to ask.
                    Err(_) => return,
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(run.id().unwrap());
    let stuck = tokio::time::timeout(Duration::from_secs(10), stuck)
        .await
        .expect("the call in flight is answered at shutdown, not at its timeout")
        .unwrap();
    assert_eq!(
        stuck.unwrap_err().code(),
        Some(ErrorCode::Unavailable),
        "a call waiting for a provider when hcore stops"
    );
    for c in callers {
        tokio::time::timeout(Duration::from_secs(15), c)
            .await
            .expect("every caller sees its connection close")
            .unwrap();
    }
    assert!(outcomes.answered.load(Ordering::Relaxed) > 0);
    assert_eq!(
        outcomes.timed_out.load(Ordering::Relaxed),
        0,
        "calls left to time out ({} answered, {} unavailable)",
        outcomes.answered.load(Ordering::Relaxed),
        outcomes.unavailable.load(Ordering::Relaxed)
    );
}
