//! The harness every hcore test suite shares: brokers and kernels on free ports, real
//! clients (rumqttc MQTT 3.1.1 and 5, a raw TCP client for hostile input, mosquitto's
//! command-line clients and mosquitto itself), and the `hcore` binary.
//!
//! * `broker`: hcore's broker alone, with MQTT clients (the broker crate's tests).
//! * `hub`: broker + kernel + SDK clients (the kernel's and the SDK's tests).
//! * `binary`: the `hcore` program as a separate process (system tests).
//! * `mosquitto`: mosquitto and its clients, as peers and as a reference broker.
//!
//! The system tests (`tests/*.rs` next to this folder) drive the `hcore` binary and several
//! crates together; each crate keeps its own unit and crate-level tests.

pub mod binary;
pub mod broker;
pub mod bus;
pub mod churn;
pub mod clients;
pub mod hub;
pub mod mosquitto;
pub mod nats;
pub mod netns;
pub mod wire;

use std::path::PathBuf;
use std::sync::Once;
use std::time::Duration;

/// Starts a broker daemon (`mosquitto`, `nats-server`) with `-c conf`, its output
/// discarded, killed when dropped.
pub fn daemon(program: &str, conf: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(program)
        .arg("-c")
        .arg(conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e} (.ci/run installs it)"))
}

/// Where a spawned program's log goes: the test's output with `HCORE_TEST_LOG` set (to
/// debug a failing system test), nowhere otherwise.
pub fn test_log() -> std::process::Stdio {
    match std::env::var_os("HCORE_TEST_LOG") {
        Some(_) => std::process::Stdio::inherit(),
        None => std::process::Stdio::null(),
    }
}

/// How long a test waits for anything before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Logs to the test's output at `RUST_LOG` (default `warn`).
pub fn init_tracing() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("hcore-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Waits until `f` is true; fails the test after `WAIT`.
pub async fn eventually(mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A free TCP port on loopback (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
