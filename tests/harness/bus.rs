//! The broker a distributed test runs on: a 3-node NATS cluster (MQTT 3.1.1, no shared
//! subscriptions), or mosquitto as the control, where every "node" is the one broker.
//! Also the kernel as an external-broker process (`hcore run --broker`).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Child;

use crate::binary::hcore;
use crate::nats::NatsCluster;

pub enum Bus {
    Nats(NatsCluster),
    Mosquitto { url: String, _daemon: Child },
}

impl Bus {
    pub async fn nats(dir: &Path) -> Bus {
        Bus::Nats(NatsCluster::start(3, dir).await)
    }

    /// mosquitto on a free port, anonymous, with `set_tcp_nodelay true`.
    pub async fn mosquitto(dir: &Path) -> Bus {
        let port = crate::free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n\
                 max_queued_messages 10000\nuser root\n"
            ),
        )
        .unwrap();
        let daemon = crate::daemon("mosquitto", &conf);
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Bus::Mosquitto {
                    url: format!("mqtt://127.0.0.1:{port}"),
                    _daemon: daemon,
                };
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("mosquitto did not start");
    }

    pub fn name(&self) -> &'static str {
        match self {
            Bus::Nats(_) => "NATS cluster",
            Bus::Mosquitto { .. } => "mosquitto",
        }
    }

    /// Node `i`'s URL.
    pub fn url(&self, i: usize) -> String {
        match self {
            Bus::Nats(c) => c.nodes[i].url.clone(),
            Bus::Mosquitto { url, .. } => url.clone(),
        }
    }

    /// The URLs of several nodes, comma-separated (a client that may fail over).
    pub fn urls(&self, which: &[usize]) -> String {
        match self {
            Bus::Nats(c) => c.urls(which),
            Bus::Mosquitto { url, .. } => url.clone(),
        }
    }

    /// The NATS cluster, for what only a cluster can do (losing a node).
    pub fn cluster(&mut self) -> Option<&mut NatsCluster> {
        match self {
            Bus::Nats(c) => Some(c),
            Bus::Mosquitto { .. } => None,
        }
    }
}

/// `hcore run --broker <url>` with its data in `data` (logs shown with `HCORE_TEST_LOG`).
pub fn spawn_kernel(url: &str, data: &Path) -> Child {
    hcore()
        .args(["run", "--broker", url, "--data-dir"])
        .arg(data)
        .stdout(Stdio::null())
        .stderr(crate::test_log())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}
