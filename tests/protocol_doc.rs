//! The examples in docs/PROTOCOL.md work as written: each command of the "Examples"
//! section runs against the real `hcore` binary (on a free port instead of 1883), and its
//! output contains the JSON shown after it.

use std::time::Duration;

use hcore_tests::binary::*;
use hcore_tests::hub::*;
use serde_json::Value;

/// `expected` is contained in `actual`: every key with a matching value, recursively.
fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains(av, v))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(x, y)| contains(x, y))
        }
        _ => actual == expected,
    }
}

/// (command, expected JSON) pairs from the ```sh blocks of the Examples section.
fn examples() -> Vec<(String, Option<Value>)> {
    let doc = include_str!("../docs/PROTOCOL.md");
    let section = &doc[doc.find("## Examples").expect("an Examples section")..];
    let mut out: Vec<(String, Option<Value>)> = Vec::new();
    let mut in_sh = false;
    for line in section.lines() {
        if line.starts_with("```sh") {
            in_sh = true;
        } else if line.starts_with("```") {
            in_sh = false;
        } else if in_sh {
            if let Some(json) = line.strip_prefix("# ") {
                let v: Value = serde_json::from_str(json).expect("expected output is JSON");
                out.last_mut().expect("output follows a command").1 = Some(v);
            } else if !line.trim().is_empty() {
                out.push((line.to_string(), None));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_examples_run_as_documented() {
    init_tracing();
    let examples = examples();
    assert!(examples.len() >= 6, "found {} examples", examples.len());
    let dir = TempDir::new();
    let (mut hcore, url) = spawn_hcore(&dir.0).await;
    let port = url.rsplit(':').next().unwrap().to_string();
    for (command, expected) in examples {
        let command = command.replace("-p 1883", &format!("-p {port}"));
        let out = tokio::time::timeout(
            Duration::from_secs(15),
            tokio::process::Command::new("sh")
                .args(["-c", &command])
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("timed out: {command}"))
        .unwrap();
        assert!(
            out.status.success(),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(expected) = expected {
            let text = String::from_utf8_lossy(&out.stdout);
            let actual: Value = serde_json::from_str(text.trim())
                .unwrap_or_else(|e| panic!("{command} printed {text:?}: {e}"));
            assert!(
                contains(&actual, &expected),
                "{command}\n  printed  {actual}\n  expected {expected}"
            );
        }
    }
    let _ = hcore.kill().await;
}
