//! A NATS cluster on loopback for system tests: `n` nats-server nodes with routes
//! between them, JetStream (each its own store directory) and an MQTT listener each,
//! started by the test and killed when dropped. Debian's nats-server 2.9 speaks MQTT
//! 3.1.1 only.

use std::path::Path;
use std::time::Duration;

use hcore_client::{Client, ClientOptions};
use tokio::process::Child;

use crate::{free_port, WAIT};

pub struct Node {
    /// `mqtt://127.0.0.1:<port>` of its MQTT listener.
    pub url: String,
    conf: std::path::PathBuf,
    process: Option<Child>,
    probe: Option<(String, String)>,
}

pub struct NatsCluster {
    pub nodes: Vec<Node>,
}

impl NatsCluster {
    /// Starts `n` nodes under `dir` and waits until each one's MQTT listener serves.
    pub async fn start(n: usize, dir: &Path) -> NatsCluster {
        NatsCluster::start_with(n, dir, "", None).await
    }

    /// `start`, with `extra` added to every node's configuration (an `include`), and
    /// `probe` the (user, password) its readiness probe logs in with.
    pub async fn start_with(
        n: usize,
        dir: &Path,
        extra: &str,
        probe: Option<(&str, &str)>,
    ) -> NatsCluster {
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let route_list = routes
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let (client, mqtt) = (free_port(), free_port());
            let conf = dir.join(format!("nats{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "server_name: hc{i}\nlisten: 127.0.0.1:{client}\n\
                     cluster {{ name: hcore, listen: 127.0.0.1:{route}, routes: [{route_list}] }}\n\
                     jetstream {{ store_dir: \"{}\" }}\n\
                     mqtt {{ listen: 127.0.0.1:{mqtt} }}\n{extra}\n",
                    dir.join(format!("js{i}")).display()
                ),
            )
            .unwrap();
            let process = Some(crate::daemon("nats-server", &conf));
            nodes.push(Node {
                url: format!("mqtt://127.0.0.1:{mqtt}"),
                conf,
                process,
                probe: probe.map(|(u, p)| (u.to_string(), p.to_string())),
            });
        }
        let cluster = NatsCluster { nodes };
        for node in &cluster.nodes {
            node.until_serving().await;
        }
        cluster
    }

    /// Every node's URL, comma-separated (what a client that may fail over is given).
    pub fn urls(&self, which: &[usize]) -> String {
        which
            .iter()
            .map(|i| self.nodes[*i].url.clone())
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Node {
    /// Kills the node (SIGKILL: its clients' connections just drop).
    pub async fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let _ = p.start_kill();
            let _ = p.wait().await;
        }
    }

    /// Starts it again with the same configuration and store.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.process = Some(crate::daemon("nats-server", &self.conf));
        self.until_serving().await;
    }

    /// Waits until an MQTT client can connect (JetStream must be ready, which in a
    /// cluster takes a meta leader).
    async fn until_serving(&self) {
        let deadline = tokio::time::Instant::now() + WAIT * 3;
        loop {
            let mut options = ClientOptions::new("probe").quiet();
            if let Some((user, password)) = &self.probe {
                options.username = Some(user.clone());
                options.password = Some(password.clone());
            }
            match Client::connect(&self.url, options).await {
                Ok(c) => {
                    let _ = c.shutdown().await;
                    return;
                }
                Err(e) => assert!(tokio::time::Instant::now() < deadline, "{}: {e}", self.url),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
