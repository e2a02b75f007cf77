//! Starting and stopping the broker on the caller's tokio runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::hooks::{AllowAll, Hooks};
use crate::limits::AddressLimits;
use crate::listener::{self, OpenConnections};
use crate::local::{self, LocalClient, LocalOptions, LocalReceiver};
use crate::metrics::MetricsSnapshot;
use crate::persist::{self, Store, Writer};
use crate::state::BrokerState;

/// A running broker.
pub struct Broker {
    handle: BrokerHandle,
    addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    /// Bound listeners not yet accepting (see `bind`).
    idle: Vec<(tokio::net::TcpListener, Arc<crate::connection::Entry>)>,
    open: Arc<OpenConnections>,
    per_address: Arc<AddressLimits>,
    accept_tasks: Vec<JoinHandle<()>>,
    /// Saves retained messages and sessions (with `persistence_dir`).
    writer: Option<Writer>,
}

/// A cheap, cloneable handle for creating in-process clients and reading metrics.
#[derive(Clone)]
pub struct BrokerHandle {
    st: Arc<BrokerState>,
}

impl Broker {
    /// Starts with the default policy (every client may do everything).
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        Broker::start_with_hooks(config, Arc::new(AllowAll)).await
    }

    /// Binds every listener, starts the router and begins accepting.
    pub async fn start_with_hooks(
        config: BrokerConfig,
        hooks: Arc<dyn Hooks>,
    ) -> Result<Broker, BrokerError> {
        let mut broker = Broker::bind(config, hooks).await?;
        broker.accept();
        Ok(broker)
    }

    /// Binds every listener and starts the router, without accepting connections yet:
    /// in-process clients work at once, network clients wait in the listen backlog until
    /// `accept` (so an embedder can finish starting before anyone talks to it).
    pub async fn bind(config: BrokerConfig, hooks: Arc<dyn Hooks>) -> Result<Broker, BrokerError> {
        config.validate()?;
        let mut idle = Vec::new();
        let mut addrs = Vec::new();
        for l in &config.listeners {
            let listener = listener::bind(l).await?;
            let addr = listener.local_addr().map_err(|source| BrokerError::Bind {
                addr: l.bind,
                source,
            })?;
            addrs.push(addr);
            idle.push((listener, Arc::new(crate::connection::Entry::new(l)?)));
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let per_address = AddressLimits::new(
            config.max_connections_per_address,
            config.max_connects_per_second,
        );
        let dir = config.persistence_dir.clone();
        let interval = Duration::from_millis(config.persistence_interval_ms);
        let st = Arc::new(BrokerState::new(config, hooks, shutdown_rx));
        let writer = match dir {
            // The listeners are bound already: clients that connect meanwhile wait in the
            // backlog, and the runtime's workers are not blocked by the disk.
            Some(dir) => {
                let st = st.clone();
                let load =
                    tokio::task::spawn_blocking(move || start_persistence(&dir, &st, interval));
                Some(load.await.map_err(|e| BrokerError::Link(e.to_string()))??)
            }
            None => None,
        };
        crate::upkeep::start(&st);
        Ok(Broker {
            handle: BrokerHandle { st },
            addrs,
            shutdown,
            idle,
            open: Arc::new(OpenConnections::default()),
            per_address,
            accept_tasks: Vec::new(),
            writer,
        })
    }

    /// Starts accepting connections on every bound listener.
    pub fn accept(&mut self) {
        for ((listener, entry), addr) in self.idle.drain(..).zip(&self.addrs) {
            let lc = &entry.config;
            tracing::info!(
                listener = %lc.name,
                %addr,
                anonymous = lc.anonymous_allowed(),
                tls = entry.tls.is_some(),
                "MQTT 3.1.1 + 5 listener ready"
            );
            if lc.anonymous_allowed() && !lc.bind.ip().is_loopback() {
                tracing::warn!(
                    listener = %lc.name,
                    %addr,
                    "anyone who can reach this listener may connect without a user name (allow_anonymous = true)"
                );
            }
            self.accept_tasks.push(tokio::spawn(listener::accept_loop(
                self.handle.st.clone(),
                listener,
                entry.clone(),
                self.open.clone(),
                self.per_address.clone(),
            )));
        }
    }

    /// The bound address of each listener, in config order (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn handle(&self) -> BrokerHandle {
        self.handle.clone()
    }

    /// Connects an in-process client.
    pub async fn local_client(
        &self,
        client_id: &str,
        options: LocalOptions,
    ) -> Result<(LocalClient, LocalReceiver), BrokerError> {
        self.handle.local_client(client_id, options).await
    }

    pub fn metrics(&self) -> MetricsSnapshot {
        self.handle.metrics()
    }

    /// Stops accepting, closes every connection and in-process client, and returns when
    /// they are gone (or after 5 s).
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.accept_tasks {
            let _ = t.await;
        }
        let st = self.handle.st;
        if tokio::time::timeout(Duration::from_secs(5), st.tasks.wait_idle())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within 5 s of shutdown");
        }
        if let Some(writer) = self.writer {
            writer.stop().await;
        }
        tracing::info!("broker stopped");
    }
}

/// Loads what the store holds, then starts saving changes.
fn start_persistence(
    dir: &std::path::Path,
    st: &Arc<BrokerState>,
    interval: Duration,
) -> Result<Writer, BrokerError> {
    let started = std::time::Instant::now();
    let store = Store::open(dir)?;
    let loaded = persist::load(&store, st)?;
    st.retained().track_changes();
    tracing::info!(
        retained = loaded.retained,
        sessions = loaded.sessions,
        ms = started.elapsed().as_millis() as u64,
        "retained messages and persistent sessions loaded"
    );
    Ok(Writer::start(store, st.clone(), interval, loaded.saved))
}

impl BrokerHandle {
    /// Connects an in-process client with this client id.
    pub async fn local_client(
        &self,
        client_id: &str,
        options: LocalOptions,
    ) -> Result<(LocalClient, LocalReceiver), BrokerError> {
        if *self.st.shutdown.borrow() {
            return Err(BrokerError::Closed);
        }
        local::connect(self.st.clone(), client_id, options).await
    }

    /// A snapshot of the broker's counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.st.metrics.snapshot()
    }

    /// Number of retained messages held.
    pub fn retained_count(&self) -> usize {
        self.st.retained_count()
    }

    /// Is a client with this session key connected now (network or in-process)? The key of
    /// an in-process or anonymous client is its client id (`ClientInfo::session_key`).
    pub fn is_connected(&self, client_id: &str) -> bool {
        self.st.sessions.is_live(client_id)
    }
}
