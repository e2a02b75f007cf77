//! The `hcore` program as a separate process: started on a free port, killed, stopped.
//!
//! The binary belongs to the `hcore` package (`kernel/cli`); `cargo test --workspace`
//! builds it next to the test executables (`target/<profile>/hcore`), where it is found.

use std::path::PathBuf;
use std::process::Stdio;

use hcore_client::{Client, ClientOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::WAIT;

/// The `hcore` binary built with the tests.
pub fn hcore_bin() -> PathBuf {
    workspace_bin("hcore")
}

/// A binary of the workspace (`hcore`, the examples' `remote`) built with the tests.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build --workspace --bins` first)",
        bin.display()
    );
    bin
}

/// A command running the `hcore` binary, killed when dropped, with `RUST_LOG` unset.
pub fn hcore() -> Command {
    let mut c = Command::new(hcore_bin());
    c.env_remove("RUST_LOG").kill_on_drop(true);
    c
}

/// `hcore <args> --url <url>` run to its end: its output as JSON (`Null` when it printed
/// none), or what it wrote to stderr when it failed.
pub async fn cli_json(url: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let o = tokio::time::timeout(
        crate::WAIT * 2,
        hcore().args(args).args(["--url", url]).output(),
    )
    .await
    .expect("the CLI finished")
    .unwrap();
    if !o.status.success() {
        return Err(format!(
            "hcore {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    Ok(serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null))
}

/// Starts `hcore run` on a free port; returns the process and its MQTT URL.
pub async fn spawn_hcore(data: &std::path::Path) -> (Child, String) {
    let mut c = Command::new(hcore_bin());
    c.args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data);
    spawn_with(c).await
}

/// Starts `hcore run --config <config> --data-dir <data>`; returns the process and the
/// MQTT URL of its first listener.
pub async fn spawn_configured(config: &std::path::Path, data: &std::path::Path) -> (Child, String) {
    let mut run = hcore();
    run.args(["run", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data);
    spawn_with(run).await
}

/// Spawns a prepared `hcore run` command and waits until it serves.
pub async fn spawn_with(mut c: Command) -> (Child, String) {
    let mut child = c
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("hcore binary");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("listener ready") {
                let addr = line
                    .split("addr=")
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap();
                return format!("mqtt://{addr}");
            }
        }
        panic!("hcore exited before listening");
    })
    .await
    .expect("hcore listening in time");
    // Keep draining stderr so the process never blocks on a full pipe; with
    // HCORE_TEST_LOG set, show it (to debug a failing system test).
    let show = std::env::var_os("HCORE_TEST_LOG").is_some();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if show {
                eprintln!("hcore: {line}");
            }
        }
    });
    // The kernel announces itself once it serves; wait for it.
    let probe = Client::connect(&url, ClientOptions::new("probe").quiet())
        .await
        .unwrap();
    crate::hub::until_online(&mut probe.subscribe("hc/kernel/status").await.unwrap()).await;
    (child, url)
}

/// Adds a user through `hcore users add` (the password on stdin).
pub fn add_user(data: &std::path::Path, name: &str, role: &str, password: &str) {
    use std::io::Write;
    let mut c = std::process::Command::new(hcore_bin())
        .args(["users", "add", name, "--role", role, "--data-dir"])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
    drop(stdin);
    assert!(c.wait().unwrap().success(), "hcore users add {name}");
}

/// SIGKILL: no cleanup of any kind.
pub async fn kill9(child: &mut Child) {
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// Sends SIGTERM (through the shell's built-in `kill`, present on any system).
pub fn sigterm(pid: u32) {
    let status = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(status.success());
}

/// User + system CPU seconds a process has used (`/proc/<pid>/stat`).
pub fn proc_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces, in parentheses).
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
}

/// A memory field of `/proc/<pid>/status` in KB: `VmRSS:` (now) or `VmHWM:` (peak).
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"))
}
