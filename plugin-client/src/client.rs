//! The client: one connection to the broker (TCP or in-process) and its lifecycle.
//!
//! Every incoming message is routed in line, on the transport's own task, to a waiting
//! call (`pending`), a provided method (`handlers`) or the subscriptions (`routes`): no
//! task hop per message. On every (re)connect a task renews the subscriptions and provided
//! methods (after the `on_connect` hook), and announces the client (manifest and `online`
//! status with the connection's session number, whose `offline` will is already set).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::ClientError;
use crate::handlers::Handlers;
use crate::pending::Pending;
use crate::protocol::{Manifest, PluginStatus, Topics, DEFAULT_ROOT, DEFAULT_TIMEOUT_MS};
use crate::routes::{InlineHandler, Routes};
use crate::routing::Routing;
use crate::transport::{
    Event, LateSink, Link, Liveness, Message, Outgoing, TcpOptions, TlsOptions,
};

/// How a client announces itself on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announce {
    /// A plain client (a CLI, a script): no status, no will, no manifest.
    Quiet,
    /// A plugin: retained manifest and status on `<root>/plugin/<id>/...`, `offline` will.
    Plugin,
    /// The kernel: retained status on `<root>/kernel/status`, `offline` will.
    Kernel,
}

/// Runs first on every (re)connect, before subscriptions are renewed and the client
/// announces itself `online`; gets the client and the connection's session number.
pub type OnConnect =
    Arc<dyn Fn(Client, u64) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Times a refused renewal of subscriptions is tried again (0.5 s, 1 s, 2 s, 4 s apart).
const RENEW_RETRIES: usize = 4;

/// How a client identifies itself and behaves.
#[derive(Clone)]
pub struct ClientOptions {
    /// The MQTT client id: the connection's name. The identity in every topic (see
    /// PROTOCOL.md) is the user name when one is given (the broker checks it), otherwise
    /// this id; replicas of a plugin log in as one user with different client ids.
    pub id: String,
    /// The protocol root (default `hc`).
    pub root: String,
    /// Published retained on connect by a plugin; provided methods are added.
    pub manifest: Manifest,
    pub announce: Announce,
    /// Default timeout of `call` (it sets the request's deadline).
    pub timeout: Duration,
    /// Credentials for a broker that requires them.
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS files for an `mqtts://` broker (CA, client certificate).
    pub tls: TlsOptions,
    /// Messages one `Subscription` holds before new ones are dropped (counted).
    pub subscription_queue: usize,
    pub on_connect: Option<OnConnect>,
    /// In-line handlers subscribed from the first connection on (see `inline`).
    pub inline: Vec<(String, InlineHandler)>,
    /// The kernel's only: its status says it hands calls to providers itself (for
    /// brokers without shared subscriptions; see PROTOCOL.md).
    pub calls_via_kernel: bool,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("id", &self.id)
            .field("root", &self.root)
            .field("announce", &self.announce)
            .field("timeout", &self.timeout)
            .field("username", &self.username)
            .field("on_connect", &self.on_connect.is_some())
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    pub fn new(id: impl Into<String>) -> ClientOptions {
        ClientOptions {
            id: id.into(),
            root: DEFAULT_ROOT.to_string(),
            manifest: Manifest::default(),
            announce: Announce::Plugin,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            username: None,
            password: None,
            tls: TlsOptions::default(),
            subscription_queue: 10_000,
            on_connect: None,
            inline: Vec::new(),
            calls_via_kernel: false,
        }
    }

    /// Subscribes `filter` with an in-line handler (see `Client::subscribe_inline`) from
    /// the first connection on, before the client announces itself.
    pub fn inline(mut self, filter: impl Into<String>, handler: InlineHandler) -> ClientOptions {
        self.inline.push((filter.into(), handler));
        self
    }

    pub fn manifest(mut self, manifest: Manifest) -> ClientOptions {
        self.manifest = manifest;
        self
    }

    /// A plain client (a CLI, a script): no status, no will, no manifest.
    pub fn quiet(mut self) -> ClientOptions {
        self.announce = Announce::Quiet;
        self
    }

    fn liveness(&self, identity: &str) -> Option<Liveness> {
        let topics = Topics::new(&self.root);
        let status_topic = match self.announce {
            Announce::Quiet => return None,
            Announce::Plugin => topics.connection_status(identity, &self.id),
            Announce::Kernel => topics.kernel_status(),
        };
        Some(Liveness { status_topic })
    }
}

pub(crate) struct Inner {
    /// The identity.
    pub id: String,
    /// The MQTT client id: this connection's name within the identity.
    pub client_id: String,
    pub routing: Routing,
    pub calls_via_kernel: bool,
    pub topics: Topics,
    pub reply_topic: String,
    pub link: Arc<Link>,
    pub announce: Announce,
    pub timeout: Duration,
    pub subscription_queue: usize,
    pub pending: Pending,
    pub handlers: Handlers,
    pub routes: Routes,
    pub manifest: Mutex<Manifest>,
    pub session: AtomicU64,
    pub closed: AtomicBool,
    on_connect: Option<OnConnect>,
    ready: Mutex<Option<oneshot::Sender<Result<(), ClientError>>>>,
}

/// A connection to hcore. Cheap to clone; every clone is the same client.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl Client {
    /// Connects over TCP to `url` (`mqtt://[user:password@]host:port`), MQTT 5 with
    /// TCP_NODELAY; or to the first reachable of several comma-separated URLs (the nodes
    /// of a cluster).
    /// Reconnects with backoff after a connection loss, renewing subscriptions, provided
    /// methods and the announcement; with several URLs, each failed attempt tries the
    /// next node.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
        crate::protocol::validate_id(&options.id)?;
        let urls = crate::transport::split_urls(url);
        if urls.len() > crate::transport::MAX_BROKERS {
            return Err(ClientError::Connect(format!(
                "{} broker URLs; at most {}",
                urls.len(),
                crate::transport::MAX_BROKERS
            )));
        }
        let nodes = urls
            .into_iter()
            .map(|u| {
                Ok(TcpOptions::from_url(u)?.with_login(
                    options.username.as_deref(),
                    options.password.as_deref(),
                    &options.tls,
                    &options.id,
                ))
            })
            .collect::<Result<Vec<_>, ClientError>>()?;
        let identity = nodes[0]
            .username
            .clone()
            .unwrap_or_else(|| options.id.clone());
        if nodes
            .iter()
            .any(|n| n.username.as_ref().unwrap_or(&options.id) != &identity)
        {
            return Err(ClientError::Connect(
                "every broker URL must log in as the same user (the client's identity)".into(),
            ));
        }
        crate::protocol::validate_id(&identity)?;
        let late = LateSink::new();
        let liveness = options.liveness(&identity);
        let link = Link::connect_tcp(&options.id, nodes, liveness, late.sink()).await?;
        Client::start(link, late, identity, options).await
    }

    /// Connects in-process to the embedded broker: same API, no TCP.
    #[cfg(feature = "in-process")]
    pub async fn connect_in_process(
        broker: &hcore_broker::BrokerHandle,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        crate::protocol::validate_id(&options.id)?;
        let late = LateSink::new();
        let liveness = options.liveness(&options.id);
        let link = Link::connect_in_process(broker, &options.id, liveness, late.sink()).await?;
        let identity = options.id.clone();
        Client::start(link, late, identity, options).await
    }

    async fn start(
        link: Link,
        late: Arc<LateSink>,
        identity: String,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let topics = Topics::new(&options.root);
        let (ready_tx, ready_rx) = oneshot::channel();
        let routes = Routes::new(topics.root());
        for (filter, handler) in options.inline {
            routes.inline(&filter, handler)?;
        }
        let inner = Arc::new(Inner {
            // Replicas of one identity each get their own reply topic.
            reply_topic: match identity == options.id {
                true => topics.reply(&identity),
                false => format!("{}/{}", topics.reply(&identity), options.id),
            },
            routes,
            id: identity,
            client_id: options.id,
            routing: Routing::default(),
            calls_via_kernel: options.calls_via_kernel,
            topics,
            link: Arc::new(link),
            announce: options.announce,
            timeout: options.timeout,
            subscription_queue: options.subscription_queue,
            pending: Pending::default(),
            handlers: Handlers::default(),
            manifest: Mutex::new(options.manifest),
            session: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            on_connect: options.on_connect,
            ready: Mutex::new(Some(ready_tx)),
        });
        let weak = Arc::downgrade(&inner);
        late.attach(Arc::new(move |e| {
            if let Some(inner) = weak.upgrade() {
                Client { inner }.on_event(e);
            }
        }));
        ready_rx
            .await
            .map_err(|_| ClientError::Connect("connection closed during setup".into()))??;
        Ok(Client { inner })
    }

    /// The identity: the user name it logged in with, otherwise its client id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The MQTT version of a TCP connection (`None` in-process).
    pub fn mqtt_version(&self) -> Option<crate::MqttVersion> {
        self.inner.link.mqtt_version()
    }

    /// The protocol topics for this client's root.
    pub fn topics(&self) -> &Topics {
        &self.inner.topics
    }

    /// The session number of the current connection.
    pub fn session(&self) -> u64 {
        self.inner.session.load(Ordering::Relaxed)
    }

    /// Publishes raw bytes at QoS 1 (device topics and other non-protocol messages).
    pub async fn publish_raw(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        retain: bool,
    ) -> Result<(), ClientError> {
        self.publish_message(Outgoing {
            topic: topic.to_string(),
            payload: payload.into(),
            qos: 1,
            retain,
            correlation: None,
        })
        .await
    }

    /// Publishes a message with every option.
    pub async fn publish_message(&self, out: Outgoing) -> Result<(), ClientError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(ClientError::Closed);
        }
        self.inner.link.publish(out).await
    }

    /// Publishes without waiting, for in-line handlers; gives the message back when the
    /// connection cannot take it at once.
    pub fn try_publish_message(&self, out: Outgoing) -> Result<(), Outgoing> {
        self.inner.link.try_publish(out)
    }

    /// Publishes `offline` (for an announced client) and disconnects cleanly.
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Ok(());
        }
        let _ = self.announce_offline().await;
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.link.disconnect().await
    }

    pub(crate) fn lock_manifest(&self) -> std::sync::MutexGuard<'_, Manifest> {
        self.inner
            .manifest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Renews subscriptions and re-announces after a (re)connect.
    async fn on_connected(&self, session: u64) -> Result<(), ClientError> {
        let inner = &self.inner;
        inner.session.store(session, Ordering::Relaxed);
        if let Some(hook) = &inner.on_connect {
            hook(self.clone(), session).await;
        }
        // Replies at QoS 0: a reply matters only to a caller waiting on this live, clean
        // session, and QoS 1 would cost an acknowledgement per call.
        inner.link.subscribe_qos(&inner.reply_topic, 0).await?;
        if inner.announce != Announce::Kernel {
            self.subscribe_routing().await?;
        }
        for m in inner.handlers.methods() {
            self.subscribe_method(&m).await?;
        }
        for f in inner.routes.filters() {
            inner.link.subscribe(&f).await?;
        }
        if inner.announce == Announce::Plugin {
            self.publish_manifest().await?;
        }
        if inner.announce != Announce::Quiet {
            inner
                .link
                .publish(self.status(PluginStatus::online(session)))
                .await?;
        }
        Ok(())
    }

    /// `on_connected`, again after a refused subscription: a clustered broker refuses
    /// them for a while after losing a node (NATS while JetStream elects new leaders),
    /// and MQTT 3.1.1's SUBACK cannot say why. Gives up when a newer connection exists.
    async fn renew(&self, session: u64) -> Result<(), ClientError> {
        let mut wait = Duration::from_millis(500);
        for _ in 0..RENEW_RETRIES {
            match self.on_connected(session).await {
                Err(ClientError::Refused { filter, reason }) if self.session() == session => {
                    tracing::warn!(
                        filter,
                        reason,
                        "subscription refused after connecting; trying again in {wait:?}"
                    );
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                other => return other,
            }
        }
        self.on_connected(session).await
    }

    fn on_event(self, e: Event) {
        match e {
            Event::Connected { session } => {
                tokio::spawn(async move {
                    let result = self.renew(session).await;
                    if let Err(e) = &result {
                        tracing::warn!(error = %e, "cannot renew subscriptions after connecting");
                    }
                    let ready = self
                        .inner
                        .ready
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .take();
                    match ready {
                        Some(tx) => {
                            let _ = tx.send(result);
                        }
                        None => self.announce_again_later(session).await,
                    }
                });
            }
            Event::Message(m) => self.on_message(&m),
            // Replies to calls made on the lost connection can never arrive (clean session,
            // replies at QoS 0): fail them now rather than at their timeout.
            Event::Lost => self.inner.pending.fail_all(),
            Event::Closed => {
                // Fail every pending call now rather than at its timeout.
                self.inner.closed.store(true, Ordering::SeqCst);
                self.inner.pending.fail_all();
            }
        }
    }

    fn on_message(&self, m: &Message) {
        let inner = &self.inner;
        if inner.topics.is_reply_space(&inner.id, &m.topic) {
            inner.pending.complete(m);
            return;
        }
        if inner.announce != Announce::Kernel && m.topic == inner.topics.kernel_status() {
            self.on_kernel_status(m);
        }
        let me = (inner.id.as_str(), inner.client_id.as_str());
        let via_kernel = inner.routing.via_kernel();
        inner
            .handlers
            .serve(&inner.topics, &inner.link, me, via_kernel, m);
        inner.routes.offer(m);
    }
}
