//! The hcore kernel: the seed's CoreRuntime, EventBus, ServiceRegistry, StateEngine,
//! Storage and PluginManager, reachable over MQTT as described in `docs/PROTOCOL.md`.
//!
//! The kernel is small and dumb on purpose: it coordinates (routes calls, keeps state and
//! storage, tracks plugins) and holds no business logic. It is itself an MQTT client with
//! the id `kernel`: of the embedded broker (in-process, no TCP), or of any external broker.

mod config;
mod error;
mod manager;
mod pending;
mod persist;
mod policy;
mod ratelog;
mod registry;
mod runtime;
mod services;
pub mod settings;
mod state_engine;
mod storage;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use hcore_client::protocol::Topics;
use hcore_client::transport::{LateSink, Link, Liveness, Sink, TcpOptions};
use hcore_client::{Client, ClientError, ClientOptions};
use tokio::sync::oneshot;

pub use config::KernelConfig;
pub use error::KernelError;
pub use manager::{PluginFactory, PluginManager};
pub use policy::{KernelPolicy, KERNEL_ID};

/// How the kernel and its in-process plugins reach the broker.
#[derive(Clone)]
pub enum Connection {
    /// The embedded broker, in-process.
    Embedded(hcore_broker::BrokerHandle),
    /// An external broker (`mqtt://host:port`).
    External {
        url: String,
        username: Option<String>,
        password: Option<String>,
    },
}

impl Connection {
    /// Connects a client (an in-process plugin) the same way the kernel is connected.
    pub async fn client(&self, options: ClientOptions) -> Result<Client, ClientError> {
        match self {
            Connection::Embedded(b) => Client::connect_in_process(b, options).await,
            Connection::External {
                url,
                username,
                password,
            } => {
                let mut options = options;
                options.username = username.clone();
                options.password = password.clone();
                Client::connect(url, options).await
            }
        }
    }

    async fn link(&self, liveness: Liveness, sink: Sink) -> Result<Link, ClientError> {
        match self {
            Connection::Embedded(b) => {
                Link::connect_in_process(b, KERNEL_ID, Some(liveness), sink).await
            }
            Connection::External {
                url,
                username,
                password,
            } => {
                let mut tcp = TcpOptions::from_url(url)?;
                tcp.username = username.clone();
                tcp.password = password.clone();
                Link::connect_tcp(KERNEL_ID, &tcp, Some(liveness), sink).await
            }
        }
    }
}

/// A running kernel.
pub struct Kernel {
    shared: Arc<runtime::Shared>,
    manager: PluginManager,
}

impl Kernel {
    /// Opens the database, connects, republishes state, announces itself, and loads the
    /// given in-process plugins. `policy` must be the hooks the embedded broker was started
    /// with (for an external broker, a fresh `KernelPolicy`: its ACL does the enforcing).
    pub async fn start(
        config: KernelConfig,
        connection: Connection,
        policy: Arc<KernelPolicy>,
        plugins: Vec<(String, PluginFactory)>,
    ) -> Result<Kernel, KernelError> {
        config.validate()?;
        let storage_error = |e: &dyn std::fmt::Display| KernelError::Storage {
            path: config.data_dir.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(&config.data_dir).map_err(|e| storage_error(&e))?;
        // No background flusher: every write is flushed by the persistence writer.
        let db = sled::Config::new()
            .path(config.data_dir.join("db"))
            .cache_capacity(config.cache_bytes)
            .flush_every_ms(None)
            .open()
            .map_err(|e| storage_error(&e))?;
        let state = state_engine::StateEngine::open(&db).map_err(|e| storage_error(&e))?;
        let storage = storage::Storage::open(&db).map_err(|e| storage_error(&e))?;
        let topics = Topics::new(&config.root);
        let (ready_tx, ready_rx) = oneshot::channel();
        let liveness = Liveness {
            status_topic: topics.kernel_status(),
        };
        let late = LateSink::new();
        let link = connection
            .link(liveness, late.sink())
            .await
            .map_err(|e| KernelError::Connect(e.to_string()))?;
        let link = Arc::new(link);
        let persist = persist::Persist::start(db.clone(), link.clone());
        let registry = policy.registry.clone();
        let shared = Arc::new(runtime::Shared {
            topics,
            link,
            db,
            state: Mutex::new(state),
            storage,
            registry: registry.clone(),
            pending: policy.pending.clone(),
            persist,
            manager: OnceLock::new(),
            started: Instant::now(),
            session: AtomicU64::new(0),
            ratelog: Default::default(),
            config: config.clone(),
            stopped: Default::default(),
            ready: Mutex::new(Some(ready_tx)),
        });
        let weak = Arc::downgrade(&shared);
        late.attach(Arc::new(move |e| {
            if let Some(sh) = weak.upgrade() {
                sh.on_event(e);
            }
        }));
        tokio::spawn(runtime::sweep(Arc::downgrade(&shared)));
        ready_rx
            .await
            .map_err(|_| KernelError::Connect("connection closed during start".into()))?;
        let manager = PluginManager::new(connection, registry, policy, &config);
        let _ = shared.manager.set(manager.clone());
        for (id, factory) in plugins {
            manager.load(&id, factory, true);
        }
        tracing::info!(root = %config.root, data = %config.data_dir.display(), "kernel running");
        Ok(Kernel { shared, manager })
    }

    /// The in-process plugin manager.
    pub fn plugins(&self) -> &PluginManager {
        &self.manager
    }

    /// Calls the kernel still tracks for `unavailable` (for tests and metrics).
    pub fn pending_calls(&self) -> usize {
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Stops plugins (each within its time limit), finishes every durable write, publishes
    /// the kernel's `offline` status and disconnects.
    pub async fn shutdown(self) {
        self.manager.shutdown().await;
        self.shared
            .stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shared.persist.stop().await;
        if let Err(e) = self.shared.db.flush_async().await {
            tracing::error!(error = %e, "final database flush failed");
        }
        self.shared.publish(self.shared.status("offline")).await;
        let _ = self.shared.link.disconnect().await;
        tracing::info!("kernel stopped");
    }
}
