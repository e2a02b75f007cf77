//! What trust costs: RPC round trips between two plugins through `hcore run`, with
//! anonymous loopback clients (administrators: no grants to check), with users (password
//! login, per-message policy: grants, reply binding, group checks), and with users over
//! TLS; plus a kernel method (`state.get`) each way. Rounds alternate so all three see
//! the same machine conditions.
//!
//! Run: `cargo bench -p hcore --bench trust`.

#[path = "../../../broker/benches/support.rs"]
mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hcore_client::{Client, ClientOptions};
use serde_json::json;
use support::{free_port, rss_mb, wait_port};

const ROUNDS: usize = 3000;
const WARMUP: usize = 200;

fn main() {
    support::runtime().block_on(bench());
}

fn hcore(args: &[&str], stdin: Option<&str>) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hcore"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut pipe = c.stdin.take().unwrap();
    if let Some(text) = stdin {
        pipe.write_all(text.as_bytes()).unwrap();
    }
    drop(pipe);
    assert!(c.wait().unwrap().success(), "hcore {args:?}");
}

fn p(v: &mut [Duration], q: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6
}

async fn connect(url: &str, id: &str) -> Client {
    Client::connect(url, ClientOptions::new(id).quiet())
        .await
        .unwrap()
}

/// A provider of `<service>.ping` and a caller, both at `url`.
async fn pair(url: &str, service: &str, ca: &Path) -> (Client, Client) {
    let mut o = ClientOptions::new(service);
    o.tls.ca = Some(ca.to_path_buf());
    let provider = Client::connect(url, o).await.unwrap();
    provider
        .provide(&format!("{service}.ping"), |c| async move { Ok(c.params) })
        .await
        .unwrap();
    let mut o = ClientOptions::new(format!("{service}-caller")).quiet();
    o.tls.ca = Some(ca.to_path_buf());
    o.username = url.contains('@').then(|| "caller".to_string());
    o.password = url.contains('@').then(|| "pw".to_string());
    let caller = Client::connect(&url.replace(&format!("{service}:pw@"), ""), o)
        .await
        .unwrap();
    (provider, caller)
}

async fn round_trips(c: &Client, method: &str, n: usize, out: &mut Vec<Duration>) {
    for i in 0..n + WARMUP {
        let start = Instant::now();
        let params = match method {
            "state.get" => json!({"key": "caller/x"}),
            _ => json!({"n": i}),
        };
        c.call(method, params).await.unwrap();
        if i >= WARMUP {
            out.push(start.elapsed());
        }
    }
}

async fn bench() {
    let dir = std::env::temp_dir().join(format!("hcore-trust-{}", free_port()));
    let data = dir.join("data");
    let certs = dir.join("certs");
    let d = data.to_str().unwrap();
    for user in ["caller", "echo", "echot"] {
        hcore(&["users", "add", user, "--data-dir", d], Some("pw\n"));
    }
    hcore(
        &[
            "certs",
            "--dir",
            certs.to_str().unwrap(),
            "server",
            "127.0.0.1",
        ],
        None,
    );
    let (plain, tls) = (free_port(), free_port());
    let config = dir.join("hcore.toml");
    std::fs::write(
        &config,
        format!(
            "[[broker.listeners]]\nname = \"plain\"\nbind = \"127.0.0.1:{plain}\"\n\n\
             [[broker.listeners]]\nname = \"tls\"\nbind = \"127.0.0.1:{tls}\"\n\
             [broker.listeners.tls]\ncert = \"{0}/server.pem\"\nkey = \"{0}/server.key\"\n",
            certs.display()
        ),
    )
    .unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_hcore"))
        .args(["run", "--log", "warn", "--config"])
        .arg(&config)
        .args(["--data-dir", d])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(SocketAddr::from(([127, 0, 0, 1], plain))).await;
    wait_port(SocketAddr::from(([127, 0, 0, 1], tls))).await;
    let ca = certs.join("ca.pem");
    let (_pa, anon) = pair(&format!("mqtt://127.0.0.1:{plain}"), "anon", &ca).await;
    let (_pu, user) = pair(&format!("mqtt://echo:pw@127.0.0.1:{plain}"), "echo", &ca).await;
    let (_pt, tlsu) = pair(&format!("mqtts://echot:pw@127.0.0.1:{tls}"), "echot", &ca).await;
    for c in [&anon, &user, &tlsu] {
        c.state().set("caller/x", json!(1)).await.ok();
    }
    let _ = connect(&format!("mqtt://127.0.0.1:{plain}"), "probe").await;
    let names = [
        (
            "plugin -> plugin, anonymous (admin, no grants)",
            &anon,
            "anon.ping",
        ),
        ("plugin -> plugin, users + policy", &user, "echo.ping"),
        ("plugin -> plugin, users + policy, TLS", &tlsu, "echot.ping"),
        ("state.get, anonymous", &anon, "state.get"),
        ("state.get, users + policy", &user, "state.get"),
        ("state.get, users + policy, TLS", &tlsu, "state.get"),
    ];
    let mut results: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for _ in 0..3 {
        for (i, (_, c, m)) in names.iter().enumerate() {
            round_trips(c, m, ROUNDS / 3, &mut results[i]).await;
        }
    }
    let rss = rss_mb(run.id());
    let _ = run.kill();
    let _ = run.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!("\ntrust benchmark ({ROUNDS} round trips each, loopback, SDK over TCP)");
    println!(
        "{:<52}{:>10}{:>10}{:>12}",
        "", "p50 us", "p99 us", "p50 ratio"
    );
    let mut base = [0.0, 0.0];
    for (i, ((name, _, _), r)) in names.iter().zip(results.iter_mut()).enumerate() {
        let (p50, p99) = (p(r, 0.5), p(r, 0.99));
        if i % 3 == 0 {
            base[i / 3] = p50;
        }
        println!(
            "{name:<52}{p50:>10.0}{p99:>10.0}{:>12.2}",
            p50 / base[i / 3]
        );
    }
    println!("hcore run RSS after the benchmark: {rss:.1} MB");
}
