//! The client: one connection to the broker (TCP or in-process). Every incoming message is
//! routed in line, on the transport's own task, to a pending call, a provided method or a
//! subscription: no task hop per message. On every (re)connect a task renews the
//! subscriptions and, for a plugin, re-announces its manifest and `online` status with the
//! connection's session number.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::error::ClientError;
use crate::events::{EventSender, Subscription};
use crate::protocol::{Manifest, PluginStatus, Reply, Topics, DEFAULT_ROOT, DEFAULT_TIMEOUT_MS};
use crate::rpc::Handler;
use crate::transport::{Event, LateSink, Link, Liveness, Message, Outgoing, TcpOptions};

/// How a client identifies itself and behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The client id, which is also the identity in every topic (see PROTOCOL.md).
    pub id: String,
    /// The protocol root (default `hc`).
    pub root: String,
    /// Published retained on connect when `announce` is set; provided methods are added.
    pub manifest: Manifest,
    /// Announce this client as a plugin: retained status with a will, and a manifest.
    pub announce: bool,
    /// Default timeout of `call`.
    pub timeout: Duration,
    /// Credentials for a broker that requires them.
    pub username: Option<String>,
    pub password: Option<String>,
}

impl ClientOptions {
    pub fn new(id: impl Into<String>) -> ClientOptions {
        ClientOptions {
            id: id.into(),
            root: DEFAULT_ROOT.to_string(),
            manifest: Manifest::default(),
            announce: true,
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            username: None,
            password: None,
        }
    }

    pub fn manifest(mut self, manifest: Manifest) -> ClientOptions {
        self.manifest = manifest;
        self
    }

    /// A plain client (a CLI, a script): no status, no will, no manifest.
    pub fn quiet(mut self) -> ClientOptions {
        self.announce = false;
        self
    }
}

pub(crate) struct Inner {
    pub id: String,
    pub topics: Topics,
    pub reply_topic: String,
    pub link: Link,
    pub announce: bool,
    pub timeout: Duration,
    pub pending: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    pub handlers: Mutex<HashMap<String, Handler>>,
    pub subs: Mutex<Vec<EventSender>>,
    pub manifest: Mutex<Manifest>,
    pub session: AtomicU64,
    pub closed: AtomicBool,
    ready: Mutex<Option<oneshot::Sender<Result<(), ClientError>>>>,
}

/// A connection to hcore. Cheap to clone; every clone is the same client.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl Client {
    /// Connects over TCP to `url` (`mqtt://host:port`), MQTT 5 with TCP_NODELAY.
    /// Reconnects with backoff after a connection loss, renewing subscriptions, provided
    /// methods and the plugin announcement.
    pub async fn connect(url: &str, options: ClientOptions) -> Result<Client, ClientError> {
        crate::protocol::validate_id(&options.id)?;
        let mut tcp = TcpOptions::from_url(url)?;
        tcp.username = options.username.clone();
        tcp.password = options.password.clone();
        let liveness = liveness(&options);
        let late = LateSink::new();
        let link = Link::connect_tcp(&options.id, &tcp, liveness, late.sink()).await?;
        Client::start(link, late, options).await
    }

    /// Connects in-process to the embedded broker: same API, no TCP.
    #[cfg(feature = "in-process")]
    pub async fn connect_in_process(
        broker: &hcore_broker::BrokerHandle,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        crate::protocol::validate_id(&options.id)?;
        let liveness = liveness(&options);
        let late = LateSink::new();
        let link = Link::connect_in_process(broker, &options.id, liveness, late.sink()).await?;
        Client::start(link, late, options).await
    }

    async fn start(
        link: Link,
        late: Arc<LateSink>,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let topics = Topics::new(&options.root);
        let (ready_tx, ready_rx) = oneshot::channel();
        let inner = Arc::new(Inner {
            reply_topic: topics.reply(&options.id),
            id: options.id,
            topics,
            link,
            announce: options.announce,
            timeout: options.timeout,
            pending: Mutex::new(HashMap::new()),
            handlers: Mutex::new(HashMap::new()),
            subs: Mutex::new(Vec::new()),
            manifest: Mutex::new(options.manifest),
            session: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            ready: Mutex::new(Some(ready_tx)),
        });
        let weak = Arc::downgrade(&inner);
        late.attach(Arc::new(move |e| {
            if let Some(inner) = weak.upgrade() {
                inner.on_event(e);
            }
        }));
        ready_rx
            .await
            .map_err(|_| ClientError::Connect("connection closed during setup".into()))??;
        Ok(Client { inner })
    }

    /// The client id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The protocol topics for this client's root.
    pub fn topics(&self) -> &Topics {
        &self.inner.topics
    }

    /// The session number of the current connection.
    pub fn session(&self) -> u64 {
        self.inner.session.load(Ordering::Relaxed)
    }

    /// Publishes raw bytes (for device topics and other non-protocol messages).
    pub async fn publish_raw(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
        retain: bool,
    ) -> Result<(), ClientError> {
        self.inner
            .send(Outgoing {
                topic: topic.to_string(),
                payload: payload.into(),
                qos: 1,
                retain,
                correlation: None,
            })
            .await
    }

    /// Subscribes to a topic filter; messages arrive on the returned subscription.
    pub async fn subscribe(&self, filter: &str) -> Result<Subscription, ClientError> {
        let (sender, subscription) = crate::events::subscription(filter, &self.inner.topics);
        self.inner
            .subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sender);
        self.inner.link.subscribe(filter).await?;
        Ok(subscription)
    }

    /// Stops delivering `filter` to subscriptions made with it and unsubscribes.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), ClientError> {
        self.inner
            .subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| s.filter != filter);
        self.inner.link.unsubscribe(filter).await
    }

    /// Publishes `offline` (for a plugin) and disconnects cleanly.
    pub async fn shutdown(&self) -> Result<(), ClientError> {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if self.inner.announce {
            let status = PluginStatus::offline(self.session());
            let _ = self
                .inner
                .link
                .publish(Outgoing {
                    topic: self.inner.topics.plugin_status(&self.inner.id),
                    payload: status.to_bytes().into(),
                    qos: 1,
                    retain: true,
                    correlation: None,
                })
                .await;
        }
        self.inner.link.disconnect().await
    }
}

impl Inner {
    pub async fn send(&self, out: Outgoing) -> Result<(), ClientError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(ClientError::Closed);
        }
        self.link.publish(out).await
    }

    /// Renews subscriptions and re-announces after a (re)connect.
    async fn on_connected(&self, session: u64) -> Result<(), ClientError> {
        self.session.store(session, Ordering::Relaxed);
        // Replies at QoS 0: a reply matters only to a caller waiting on this live, clean
        // session, and QoS 1 would cost an acknowledgement per call (~15% of the calls a
        // loaded kernel answers per second).
        self.link.subscribe_qos(&self.reply_topic, 0).await?;
        let methods: Vec<String> = self
            .handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for m in &methods {
            if let Some((service, method)) = m.split_once('.') {
                self.link
                    .subscribe(&self.topics.provider_filter(service, method))
                    .await?;
            }
        }
        let filters: Vec<String> = self
            .subs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| s.filter.clone())
            .collect();
        for f in &filters {
            self.link.subscribe(f).await?;
        }
        if self.announce {
            self.publish_manifest().await?;
            let status = PluginStatus::online(session);
            self.link
                .publish(Outgoing {
                    topic: self.topics.plugin_status(&self.id),
                    payload: status.to_bytes().into(),
                    qos: 1,
                    retain: true,
                    correlation: None,
                })
                .await?;
        }
        Ok(())
    }

    pub async fn publish_manifest(&self) -> Result<(), ClientError> {
        let manifest = self
            .manifest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let payload =
            serde_json::to_vec(&manifest).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.link
            .publish(Outgoing {
                topic: self.topics.plugin_manifest(&self.id),
                payload: payload.into(),
                qos: 1,
                retain: true,
                correlation: None,
            })
            .await
    }

    fn on_event(self: &Arc<Self>, e: Event) {
        match e {
            Event::Connected { session } => {
                let inner = self.clone();
                tokio::spawn(async move {
                    let result = inner.on_connected(session).await;
                    if let Err(e) = &result {
                        tracing::warn!(error = %e, "cannot renew subscriptions after connecting");
                    }
                    if let Some(tx) = inner.ready.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        let _ = tx.send(result);
                    }
                });
            }
            Event::Message(m) => self.on_message(m),
            Event::Closed => {
                // Fail every pending call now rather than at its timeout.
                self.closed.store(true, Ordering::SeqCst);
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
            }
        }
    }

    fn on_message(self: &Arc<Self>, m: Message) {
        if self.topics.is_reply_space(&self.id, &m.topic) {
            self.on_reply(&m);
            return;
        }
        crate::rpc::maybe_serve(self, &m);
        let subs = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        for s in subs.iter() {
            s.offer(&m);
        }
    }

    fn on_reply(&self, m: &Message) {
        let Ok(reply) = serde_json::from_slice::<Reply>(&m.payload) else {
            tracing::debug!(topic = %m.topic, "unreadable reply ignored");
            return;
        };
        let key = match (&reply.id, &m.correlation) {
            (Some(Value::String(s)), _) => s.clone(),
            (Some(other), _) => other.to_string(),
            (None, Some(c)) => String::from_utf8_lossy(c).into_owned(),
            (None, None) => return,
        };
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
        if let Some(tx) = waiter {
            let _ = tx.send(reply);
        }
    }
}

fn liveness(options: &ClientOptions) -> Option<Liveness> {
    options.announce.then(|| Liveness {
        status_topic: Topics::new(&options.root).plugin_status(&options.id),
    })
}
