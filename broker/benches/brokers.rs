//! The brokers a benchmark compares, each in its own process so its RSS can be read from
//! /proc: hcore's (this benchmark binary re-executed with `--serve`), raw rumqttd (its
//! shipped defaults) and mosquitto (`set_tcp_nodelay true`).
//!
//! Every benchmark's `main` first calls `serve_if_asked`. A broker is stopped gracefully
//! (`stop`: hcore on stdin EOF, mosquitto on SIGTERM, so both save what they persist) or
//! killed when dropped.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub struct BrokerProcess {
    child: Child,
    conf: Option<PathBuf>,
}

impl BrokerProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the broker the way an operator would, and waits for it to exit.
    pub fn stop(mut self) {
        match self.child.stdin.take() {
            Some(stdin) => drop(stdin),
            None => {
                let _ = Command::new("kill")
                    .args(["-TERM", &self.child.id().to_string()])
                    .status();
            }
        }
        let _ = self.child.wait();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(conf) = &self.conf {
            let _ = std::fs::remove_file(conf);
        }
    }
}

/// Starts `kind` ("hcore", "mosquitto" or "rumqttd") on `port`; with `data`, hcore and
/// mosquitto persist retained messages there.
pub fn spawn_broker(kind: &str, port: u16, data: Option<&Path>) -> BrokerProcess {
    if kind == "mosquitto" {
        let mut text =
            format!("listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n");
        match data {
            Some(dir) => {
                // mosquitto started as root writes as user `mosquitto`.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
                text.push_str(&format!(
                    "persistence true\npersistence_location {}/\n",
                    dir.display()
                ))
            }
            None => text.push_str("persistence false\n"),
        }
        let conf = std::env::temp_dir().join(format!(
            "hcore-bench-{}.conf",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto on PATH");
        return BrokerProcess {
            child,
            conf: Some(conf),
        };
    }
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--serve", kind, &port.to_string()]);
    if let Some(dir) = data {
        c.arg(dir);
    }
    let logs = std::env::var_os("HCORE_BENCH_LOG").is_some();
    let child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(if logs {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    BrokerProcess { child, conf: None }
}

/// In a re-executed benchmark (`--serve <kind> <port> [dir]`): serves, returns true.
pub fn serve_if_asked() -> bool {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some("--serve") {
        return false;
    }
    let port: u16 = args[3].parse().expect("port");
    match args[2].as_str() {
        "hcore" => serve_hcore(port, args.get(4).map(PathBuf::from)),
        "rumqttd" => serve_rumqttd(port),
        other => panic!("unknown broker {other}"),
    }
    true
}

fn serve_hcore(port: u16, data: Option<PathBuf>) {
    if let Ok(filter) = std::env::var("HCORE_BENCH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut config =
            hcore_broker::BrokerConfig::with_listener(SocketAddr::from(([127, 0, 0, 1], port)));
        config.persistence_dir = data;
        // The benchmarks measure the broker, not its abuse limits.
        config.max_connections_per_address = 100_000;
        config.max_connects_per_second = 100_000;
        config.max_subscriptions_per_client = 100_000;
        let broker = hcore_broker::Broker::start(config)
            .await
            .expect("start hcore broker");
        // Serve until stdin closes, then shut down cleanly.
        let _ = tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await;
        broker.shutdown().await;
    });
}

fn serve_rumqttd(port: u16) {
    // rumqttd's shipped rumqttd.toml, v4 listener only.
    let text = format!(
        r#"
id = 0
[router]
max_connections = 10010
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10
[v4.1]
name = "v4-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 20480
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let config: rumqttd::Config = toml::from_str(&text).expect("rumqttd config");
    rumqttd::Broker::new(config).start().expect("rumqttd");
}
