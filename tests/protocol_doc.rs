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

/// A kernel method as PROTOCOL.md documents it.
#[derive(Debug)]
struct Documented {
    name: String,
    required: Vec<String>,
    optional: Vec<String>,
    errors: Vec<String>,
}

/// The method tables of the "Kernel services" section.
fn documented_methods() -> Vec<Documented> {
    let doc = include_str!("../docs/PROTOCOL.md");
    let start = doc
        .find("## Kernel services")
        .expect("a Kernel services section");
    let end = start
        + doc[start..]
            .find("\n## Liveness")
            .expect("a Liveness section");
    let quoted = |cell: &str, quote: char| -> Vec<String> {
        cell.split(quote)
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    };
    let mut out = Vec::new();
    for line in doc[start..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 6 || !cells[1].starts_with('`') || cells[1].contains(' ') {
            continue;
        }
        let name = cells[1].trim_matches('`').to_string();
        let params = cells[2];
        let mut required = Vec::new();
        let mut optional = Vec::new();
        for (i, p) in quoted(params, '"').into_iter().enumerate() {
            // `"name"?` is optional.
            let after = params
                .split('"')
                .nth(2 * i + 2)
                .unwrap_or_default()
                .trim_start();
            if after.starts_with('?') {
                optional.push(p);
            } else {
                required.push(p);
            }
        }
        out.push(Documented {
            name,
            required,
            optional,
            errors: quoted(cells[4], '`'),
        });
    }
    out
}

/// The parameter names a kernel error message lists as accepted (serde's "unknown field
/// `x`, expected one of `a`, `b`").
fn accepted(message: &str) -> Vec<String> {
    match message.split_once("expected") {
        Some((_, list)) => list
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
        None => Vec::new(), // "there are no fields"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_method_exists_with_its_parameters_and_errors() {
    use hcore_client::protocol::KERNEL_METHODS;
    init_tracing();
    let documented = documented_methods();
    let mut names: Vec<&str> = documented.iter().map(|d| d.name.as_str()).collect();
    names.sort_unstable();
    let mut in_code: Vec<&str> = KERNEL_METHODS.iter().map(|(n, _)| *n).collect();
    in_code.sort_unstable();
    assert_eq!(
        names, in_code,
        "PROTOCOL.md and protocol::commands list other methods"
    );

    let dir = TempDir::new();
    let (mut hcore, url) = spawn_hcore(&dir.0).await;
    let client =
        hcore_client::Client::connect(&url, hcore_client::ClientOptions::new("doc").quiet())
            .await
            .unwrap();
    for d in &documented {
        let (_, errors) = KERNEL_METHODS.iter().find(|(n, _)| *n == d.name).unwrap();
        let mut in_code: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        in_code.sort();
        let mut in_doc = d.errors.clone();
        in_doc.sort();
        assert_eq!(in_doc, in_code, "errors of {}", d.name);

        // The kernel names the parameters it accepts when given one it does not.
        let e = client
            .call(&d.name, serde_json::json!({"no_such_parameter": 1}))
            .await
            .unwrap_err();
        let message = match &e {
            hcore_client::ClientError::Rpc(r) => r.message.clone(),
            other => panic!("{}: {other}", d.name),
        };
        let mut accepted = accepted(&message);
        accepted.sort();
        let mut listed: Vec<String> = d.required.iter().chain(&d.optional).cloned().collect();
        listed.sort();
        assert_eq!(accepted, listed, "parameters of {}: {message}", d.name);
        // Without parameters, a method with required ones names a missing one.
        let e = client.call(&d.name, serde_json::json!({})).await;
        let missing = match &e {
            Err(hcore_client::ClientError::Rpc(r)) if r.message.contains("missing field") => {
                Some(r.message.clone())
            }
            _ => None,
        };
        match (&missing, d.required.is_empty()) {
            (Some(m), true) => panic!("{} documents no required parameter: {m}", d.name),
            (None, false) => panic!("{} documents required {:?}: {e:?}", d.name, d.required),
            (Some(m), false) => assert!(
                d.required.iter().any(|r| m.contains(&format!("`{r}`"))),
                "{}: {m}",
                d.name
            ),
            (None, true) => {}
        }
    }
    let _ = hcore.kill().await;
}
