//! mosquitto's command-line clients (`mosquitto_pub`, `mosquitto_sub`) as real peers.

use std::net::SocketAddr;
use std::process::Stdio;

use crate::WAIT;

pub fn require_mosquitto_clients() {
    let ok = std::process::Command::new("mosquitto_pub")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "mosquitto_pub not found: install mosquitto-clients (see .ci/run)"
    );
}

/// Starts mosquitto_sub and waits until its subscription is registered (it prints
/// nothing until then, so the caller passes a probe: we poll the broker's metrics).
pub fn mosquitto_sub(addr: SocketAddr, args: &[&str]) -> tokio::process::Child {
    require_mosquitto_clients();
    tokio::process::Command::new("mosquitto_sub")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mosquitto_sub")
}

pub async fn mosquitto_pub(addr: SocketAddr, args: &[&str]) -> std::process::Output {
    require_mosquitto_clients();
    tokio::process::Command::new("mosquitto_pub")
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(args)
        .output()
        .await
        .expect("run mosquitto_pub")
}

pub type Lines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>;

/// The stdout lines of a spawned mosquitto_sub.
pub fn lines_of(child: &mut tokio::process::Child) -> Lines {
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.take().expect("piped stdout");
    tokio::io::BufReader::new(stdout).lines()
}

pub async fn next_line(lines: &mut Lines) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line from mosquitto_sub in time")
        .expect("read stdout")
        .expect("mosquitto_sub still running")
}
