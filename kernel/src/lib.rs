//! The hcore kernel: the seed's CoreRuntime, EventBus, ServiceRegistry, StateEngine,
//! Storage and PluginManager, reachable over MQTT as described in `docs/PROTOCOL.md`.
//!
//! The kernel is small and dumb on purpose: it coordinates (routes calls, keeps state and
//! storage, tracks plugins) and holds no business logic. It is itself an MQTT client with
//! the id `kernel`, connected through the SDK (`hcore_client`): of the embedded broker
//! (in-process, no TCP), or of any external broker. `Hub` builds broker, policy and kernel
//! from one configuration.

mod calls;
mod config;
mod connection;
mod dispatch;
mod error;
pub mod export;
mod hub;
mod manager;
mod out;
mod persist;
pub mod plugin_logs;
mod policy;
mod quota;
mod ratelog;
mod replier;
mod services;
pub mod settings;
mod state;
mod storage;
pub mod users;

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use hcore_client::protocol::{Manifest, Topics};
use hcore_client::{Announce, Client, ClientOptions, InlineHandler, OnConnect};

pub use config::KernelConfig;
pub use connection::Connection;
pub use error::KernelError;
pub use hub::Hub;
pub use manager::{PluginFactory, PluginManager};
pub use policy::{KernelPolicy, KERNEL_ID};

use calls::Calls;
use dispatch::Core;
use out::KernelLink;
use persist::{Persist, Stores};
use replier::Replier;
use services::Services;

/// A running kernel.
pub struct Kernel {
    core: Arc<Core>,
    client: Client,
    manager: PluginManager,
    db: sled::Db,
}

/// Opens the database with a bounded page cache and no background flusher (every write
/// is flushed by the persistence writer).
fn open_db(config: &KernelConfig) -> Result<sled::Db, KernelError> {
    let storage_error = |e: &dyn std::fmt::Display| KernelError::Storage {
        path: config.data_dir.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&config.data_dir).map_err(|e| storage_error(&e))?;
    sled::Config::new()
        .path(config.data_dir.join("db"))
        .cache_capacity(config.cache_bytes)
        .flush_every_ms(None)
        .open()
        .map_err(|e| storage_error(&e))
}

impl Kernel {
    /// Opens the database, connects, republishes state, announces itself, and loads the
    /// given in-process plugins.
    pub async fn start(
        config: KernelConfig,
        connection: Connection,
        plugins: Vec<(String, PluginFactory)>,
    ) -> Result<Kernel, KernelError> {
        config.validate()?;
        if let Some(policy) = connection.policy() {
            if policy.root() != Topics::new(&config.root).root() {
                return Err(KernelError::Config(format!(
                    "the broker's policy protects the root {:?} but the kernel uses {:?}",
                    policy.root(),
                    config.root
                )));
            }
        }
        let db = open_db(&config)?;
        let storage_error = |e: sled::Error| KernelError::Storage {
            path: config.data_dir.clone(),
            message: e.to_string(),
        };
        let state =
            Arc::new(state::StateStore::open(&db, config.state_limits()).map_err(storage_error)?);
        let storage =
            Arc::new(storage::Storage::open(&db, config.storage_quota()).map_err(storage_error)?);
        let topics = Topics::new(&config.root);
        let link = KernelLink::default();
        let calls = Arc::new(Calls::new(
            config.max_pending_calls_per_caller,
            config.max_call_ms,
        ));
        if let Some(policy) = connection.policy() {
            let watch: Weak<dyn policy::CallWatch> = Arc::downgrade(&calls) as _;
            policy.watch_with(watch);
        }
        let stores = Stores {
            db: db.clone(),
            state: state.clone(),
            storage: storage.clone(),
            topics: topics.clone(),
        };
        let persist = Persist::start(stores, Arc::new(link.clone()), config.write_queue);
        let services = Services {
            policy: connection.policy().cloned(),
            state,
            storage,
            persist: persist.clone(),
            calls: calls.clone(),
            replier: Replier::start(link.clone(), config.reply_queue),
            manager: OnceLock::new(),
            link: link.clone(),
            root: topics.root().to_string(),
            started: Instant::now(),
            max_value_bytes: config.max_value_bytes,
            max_page_bytes: config.max_page_bytes,
        };
        // An external broker may have no shared subscriptions (NATS), and cannot tell the
        // kernel who took a call: the kernel hands calls to providers itself.
        let hands_out_calls = connection.policy().is_none();
        if hands_out_calls {
            tracing::info!("the kernel hands each call to one provider connection (external broker; see PROTOCOL.md)");
        }
        let core = Arc::new(Core::new(topics.clone(), services, hands_out_calls));
        let client = connection
            .client(kernel_options(&config, &core))
            .await
            .map_err(|e| KernelError::Connect(e.to_string()))?;
        tokio::spawn(sweep(Arc::downgrade(&core)));
        let manager = PluginManager::new(connection, calls, &config);
        let _ = core.services.manager.set(manager.clone());
        for (id, factory) in plugins {
            manager.load(&id, factory, true);
        }
        tracing::info!(root = %config.root, data = %config.data_dir.display(), "kernel running");
        Ok(Kernel {
            core,
            client,
            manager,
            db,
        })
    }

    /// The in-process plugin manager.
    pub fn plugins(&self) -> &PluginManager {
        &self.manager
    }

    /// Calls the kernel still watches for `unavailable` (for tests and metrics).
    pub fn pending_calls(&self) -> usize {
        self.core.services.calls.pending_len()
    }

    /// Stops in-process plugins (each within its time limit), then answers every call
    /// still waiting and every new one `unavailable`, finishes every durable write,
    /// publishes the kernel's `offline` status and disconnects.
    pub async fn shutdown(self) {
        self.wind_down().await;
        self.disconnect().await;
    }

    /// Everything of `shutdown` but the disconnect: the kernel says it is `offline` and
    /// keeps answering `unavailable` until its connection closes (the embedded broker
    /// closes it last, so no call sent before then goes unanswered).
    pub(crate) async fn wind_down(&self) {
        self.manager.shutdown().await;
        self.core.stop_answering();
        self.core.services.persist.stop().await;
        self.core.services.replier.flush().await;
        if let Err(e) = self.db.flush_async().await {
            tracing::error!(error = %e, "final database flush failed");
        }
        if let Err(e) = self.client.announce_offline().await {
            tracing::warn!(error = %e, "cannot publish the kernel's offline status");
        }
    }

    pub(crate) async fn disconnect(self) {
        if let Err(e) = self.client.shutdown().await {
            tracing::debug!(error = %e, "kernel disconnect");
        }
        tracing::info!("kernel stopped");
    }
}

/// The kernel's client: the kernel's status and will, in-line handlers for everything the
/// kernel watches, and state republished on every (re)connect before it says `online`
/// (after a reconnect once more, 10 s later: see `persist::AFTER_NODE_LOSS`).
///
/// The client holds only weak references to the kernel (the kernel holds the client).
fn kernel_options(config: &KernelConfig, core: &Arc<Core>) -> ClientOptions {
    let weak = Arc::downgrade(core);
    let handler: InlineHandler = Arc::new(move |m| {
        if let Some(core) = weak.upgrade() {
            core.on_message(m);
        }
    });
    let weak = Arc::downgrade(core);
    let connected_before = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let on_connect: OnConnect = Arc::new(move |client, _session| {
        let persist = weak.upgrade().map(|core| {
            core.services.link.set(&client);
            core.services.persist.clone()
        });
        // A reconnect may mean a broker node died (the kernel moved to another one).
        let reconnect = connected_before.swap(true, std::sync::atomic::Ordering::AcqRel);
        Box::pin(async move {
            if let Some(persist) = persist {
                persist.republish().await;
                if reconnect {
                    persist.republish_later(persist::AFTER_NODE_LOSS);
                }
            }
        })
    });
    let root = Topics::new(&config.root).root().to_string();
    let mut options = ClientOptions::new(KERNEL_ID).manifest(Manifest {
        version: env!("CARGO_PKG_VERSION").to_string(),
        ..Manifest::default()
    });
    options.announce = Announce::Kernel;
    options.calls_via_kernel = core.hands_out_calls;
    options.root = root.clone();
    options.on_connect = Some(on_connect);
    for filter in [
        "call/#",
        "reply/#",
        "state/#",
        "plugin/+/status",
        "plugin/+/replica/+",
        "plugin/+/manifest",
        "plugin/+/hosted",
    ] {
        options = options.inline(format!("{root}/{filter}"), handler.clone());
    }
    options
}

/// Once a second until the kernel is gone: forgets answered-or-expired calls, and reads
/// the users and policy files again if they changed.
async fn sweep(core: Weak<Core>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(core) = core.upgrade() else { break };
        core.services.calls.sweep();
        if let Some(policy) = &core.services.policy {
            policy.refresh();
        }
    }
}
