//! In-process clients: the kernel and in-process plugins publish, subscribe and receive
//! through the router without TCP, with the same rules as network clients (validation,
//! authorization hooks, retained messages, wills, takeover by client id).
//!
//! rumqttd's local links have no flow control of their own: when a link's buffer holds 200
//! notifications the router pauses it until it is woken, and a dropped link is never
//! disconnected (its will is lost). A drain task per client handles both: it moves
//! notifications into an unbounded queue as fast as they arrive and wakes the router, and
//! when every handle is gone it publishes the will and disconnects the link. A receiver
//! that falls more than `local_queue_limit` messages behind loses the newest ones, counted
//! in `dropped_slow_subscriber`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::{Packet, Unsubscribe};
use rumqttd::Notification;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::connection::subscribe::router_subscribe;
use crate::error::BrokerError;
use crate::hooks::ClientInfo;
use crate::metrics::Metrics;
use crate::pressure::PressureFlag;
use crate::retained::RetainedMessage;
use crate::router::{notification_packet, try_next};
use crate::sessions::{router_id, SessionClaim};
use crate::state::{routed_item, BrokerState, Effect, Item};
use crate::subs::{router_filter, SubOpts};
use crate::topic::{parse_shared, validate_filter, validate_topic};
use crate::types::{Message, Properties, Protocol, QoS};

/// Receives an in-process client's messages on the broker's own task, instead of the
/// `LocalReceiver` queue. It must not block: it is called in line, in order.
pub type LocalSink = Arc<dyn Fn(Message) + Send + Sync>;

/// Options for an in-process client.
#[derive(Clone, Default)]
pub struct LocalOptions {
    /// Published if the client goes away without `disconnect()`.
    pub will: Option<Message>,
    /// Identity given to the authorization hooks (none by default).
    pub username: Option<String>,
    /// Deliver messages to this callback instead of the receiver (saves a task hop;
    /// the receiver then only reports the end of the client).
    pub sink: Option<LocalSink>,
}

impl std::fmt::Debug for LocalOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalOptions")
            .field("will", &self.will)
            .field("username", &self.username)
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

enum Control {
    Subscribe {
        pkid: u16,
        snapshot: oneshot::Receiver<Vec<RetainedMessage>>,
        done: oneshot::Sender<u8>,
    },
    Disconnect(oneshot::Sender<()>),
}

struct Shared {
    st: Arc<BrokerState>,
    info: ClientInfo,
    tx: Arc<Mutex<LinkTx>>,
    control: mpsc::UnboundedSender<Control>,
    next_pkid: std::sync::Mutex<u16>,
    /// Client filter -> router filter (they differ for shared subscriptions).
    filters: std::sync::Mutex<HashMap<String, String>>,
}

/// Publishes and subscribes for one in-process client. Cheap to clone; the client
/// disconnects (publishing its will) when the last clone and its receiver's task see it go.
#[derive(Clone)]
pub struct LocalClient {
    shared: Arc<Shared>,
}

/// The messages delivered to an in-process client, in order.
pub struct LocalReceiver {
    rx: mpsc::UnboundedReceiver<Message>,
    queued: Arc<AtomicUsize>,
}

impl LocalReceiver {
    /// The next message; `None` once the client is closed (disconnect, takeover, shutdown).
    pub async fn recv(&mut self) -> Option<Message> {
        let m = self.rx.recv().await;
        if m.is_some() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        m
    }

    /// A message if one is waiting.
    pub fn try_recv(&mut self) -> Option<Message> {
        let m = self.rx.try_recv().ok();
        if m.is_some() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        m
    }
}

/// Connects an in-process client (called through `Broker::local_client`).
pub(crate) async fn connect(
    st: Arc<BrokerState>,
    client_id: &str,
    options: LocalOptions,
) -> Result<(LocalClient, LocalReceiver), BrokerError> {
    if client_id.is_empty() {
        return Err(BrokerError::Invalid {
            what: "client id",
            reason: "empty".into(),
        });
    }
    let info = ClientInfo {
        client_id: client_id.to_string(),
        username: options.username.clone(),
        peer: None,
        protocol: Protocol::Local,
    };
    if let Some(will) = &options.will {
        validate_topic(&will.topic).map_err(|e| invalid("will topic", e))?;
        if !st.hooks.authorize_publish(&info, &will.topic) {
            return Err(BrokerError::NotAuthorized(format!(
                "will topic {}",
                will.topic
            )));
        }
    }
    let (claim, took_over) = st.sessions.claim(client_id).await;
    if took_over {
        Metrics::inc(&st.metrics.takeovers);
    }
    st.sessions.cancel_delayed_will(client_id);
    let link = match st.router.link(router_id(client_id), true).await {
        Ok(l) => l,
        Err(e) => {
            st.sessions.release(&claim);
            return Err(e);
        }
    };
    let tx = Arc::new(Mutex::new(link.tx));
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (msg_tx, msg_rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    Metrics::inc(&st.metrics.clients_connected);
    tracing::debug!(client_id, "in-process client connected");
    let drain = Drain {
        st: st.clone(),
        client_id: client_id.to_string(),
        info: info.clone(),
        tx: tx.clone(),
        messages: msg_tx,
        queued: queued.clone(),
        sink: options.sink,
        pending: HashMap::new(),
        will: options.will,
        pressure: PressureFlag::new(st.pressure.clone()),
        disconnect_requested: None,
        task: st.tasks.enter(),
    };
    tokio::spawn(drain.run(link.rx, control_rx, claim));
    let shared = Arc::new(Shared {
        st,
        info,
        tx,
        control: control_tx,
        next_pkid: std::sync::Mutex::new(0),
        filters: std::sync::Mutex::new(HashMap::new()),
    });
    Ok((LocalClient { shared }, LocalReceiver { rx: msg_rx, queued }))
}

fn invalid(what: &'static str, reason: &str) -> BrokerError {
    BrokerError::Invalid {
        what,
        reason: reason.to_string(),
    }
}

impl LocalClient {
    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.shared.info.client_id
    }

    /// Publishes a message (retain and MQTT 5 properties included). Returns once the router
    /// has it.
    pub async fn publish(&self, mut message: Message) -> Result<(), BrokerError> {
        validate_topic(&message.topic).map_err(|e| invalid("topic", e))?;
        let st = &self.shared.st;
        Metrics::inc(&st.metrics.publishes_received);
        if message.topic.starts_with('$')
            || !st
                .hooks
                .authorize_publish(&self.shared.info, &message.topic)
        {
            Metrics::inc(&st.metrics.not_authorized);
            return Err(BrokerError::NotAuthorized(format!(
                "publish to {}",
                message.topic
            )));
        }
        st.stamp_message(&self.shared.info.client_id, &mut message);
        let mut tx = self.shared.tx.lock().await;
        st.submit(&mut tx, vec![routed_item(message)], false)
            .await
            .map(|_| ())
    }

    /// Publishes without waiting: for callers on a task that must not block (a sink).
    /// Gives the message back when it cannot be handed over at once (the link is busy or
    /// the router's queue is full); the caller then publishes it with `publish`.
    pub fn try_publish(&self, mut message: Message) -> Result<(), Box<Message>> {
        if validate_topic(&message.topic).is_err() {
            return Err(Box::new(message));
        }
        let st = &self.shared.st;
        if message.topic.starts_with('$')
            || !st
                .hooks
                .authorize_publish(&self.shared.info, &message.topic)
        {
            Metrics::inc(&st.metrics.not_authorized);
            return Ok(()); // refused, as `publish` would; nothing to retry
        }
        let Ok(mut tx) = self.shared.tx.try_lock() else {
            return Err(Box::new(message));
        };
        st.stamp_message(&self.shared.info.client_id, &mut message);
        Metrics::inc(&st.metrics.publishes_received);
        st.try_submit(&mut tx, routed_item(message))
            .map_err(|item| Box::new(item.into_message()))
    }

    /// Subscribes; returns the granted QoS once the router has registered the filter and
    /// the matching retained messages are queued (before any live message).
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<QoS, BrokerError> {
        let (group, inner) = match parse_shared(filter) {
            Some(Ok((group, inner))) => (Some(group), inner),
            Some(Err(e)) => return Err(invalid("topic filter", e)),
            None => (None, filter),
        };
        validate_filter(inner).map_err(|e| invalid("topic filter", e))?;
        if inner.starts_with('$') {
            return Err(invalid("topic filter", "'$' topics are reserved"));
        }
        let st = &self.shared.st;
        if !st.hooks.authorize_subscribe(&self.shared.info, inner) {
            Metrics::inc(&st.metrics.not_authorized);
            return Err(BrokerError::NotAuthorized(format!("subscribe to {filter}")));
        }
        let pkid = self.next_pkid();
        let (snap_tx, snap_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        self.shared
            .control
            .send(Control::Subscribe {
                pkid,
                snapshot: snap_rx,
                done: done_tx,
            })
            .map_err(|_| BrokerError::Closed)?;
        let opts = SubOpts {
            qos,
            shared: group.map(str::to_string),
            inner: inner.to_string(),
            router_filter: router_filter(group, inner),
            subscription_id: None,
        };
        let packet = router_subscribe(pkid, &opts);
        let effect = if group.is_some() {
            Effect::None
        } else {
            Effect::Snapshot(inner.to_string())
        };
        self.shared
            .filters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(filter.to_string(), opts.router_filter.clone());
        let snapshot = {
            let mut tx = self.shared.tx.lock().await;
            st.submit(&mut tx, vec![Item { packet, effect }], false)
                .await?
        };
        let _ = snap_tx.send(snapshot.into_iter().next().unwrap_or_default());
        let code = done_rx.await.map_err(|_| BrokerError::Closed)?;
        if code >= 0x80 {
            return Err(BrokerError::Link(format!(
                "router refused subscription (code {code:#x})"
            )));
        }
        Ok(qos)
    }

    /// Removes a subscription.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), BrokerError> {
        let router_filter = self
            .shared
            .filters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(filter);
        let Some(router_filter) = router_filter else {
            return Ok(());
        };
        let packet = Packet::Unsubscribe(
            Unsubscribe {
                pkid: self.next_pkid(),
                filters: vec![router_filter],
            },
            None,
        );
        let mut tx = self.shared.tx.lock().await;
        self.shared
            .st
            .submit(&mut tx, vec![Item::plain(packet)], false)
            .await
            .map(|_| ())
    }

    /// Disconnects cleanly: the will is discarded.
    pub async fn disconnect(&self) -> Result<(), BrokerError> {
        let (tx, rx) = oneshot::channel();
        self.shared
            .control
            .send(Control::Disconnect(tx))
            .map_err(|_| BrokerError::Closed)?;
        rx.await.map_err(|_| BrokerError::Closed)
    }

    fn next_pkid(&self) -> u16 {
        let mut p = self
            .shared
            .next_pkid
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *p = if *p == u16::MAX { 1 } else { *p + 1 };
        *p
    }
}

struct Pending {
    snapshot: oneshot::Receiver<Vec<RetainedMessage>>,
    done: oneshot::Sender<u8>,
}

/// The task that owns a local link's receiving side.
struct Drain {
    st: Arc<BrokerState>,
    client_id: String,
    info: ClientInfo,
    tx: Arc<Mutex<LinkTx>>,
    messages: mpsc::UnboundedSender<Message>,
    queued: Arc<AtomicUsize>,
    sink: Option<LocalSink>,
    pending: HashMap<u16, Pending>,
    will: Option<Message>,
    pressure: PressureFlag,
    /// A disconnect() seen while draining; acted on by the main loop.
    disconnect_requested: Option<oneshot::Sender<()>>,
    task: crate::tasks::TaskGuard,
}

#[derive(Debug)]
enum End {
    Disconnect(Option<oneshot::Sender<()>>),
    Dropped,
    TakenOver,
    Shutdown,
    RouterGone,
}

impl Drain {
    async fn run(
        mut self,
        mut rx: LinkRx,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut claim: SessionClaim,
    ) {
        let mut kill = claim.take_kill();
        let mut shutdown = self.st.shutdown.clone();
        let end = loop {
            tokio::select! {
                biased;
                c = control.recv() => match c {
                    Some(Control::Subscribe { pkid, snapshot, done }) => {
                        self.pending.insert(pkid, Pending { snapshot, done });
                    }
                    Some(Control::Disconnect(ack)) => break End::Disconnect(Some(ack)),
                    None => break End::Dropped,
                },
                n = rx.next() => match n {
                    Ok(Some(n)) => {
                        if !self.on_notifications(n, &mut rx, &mut control).await {
                            break End::RouterGone;
                        }
                        if let Some(ack) = self.disconnect_requested.take() {
                            break End::Disconnect(Some(ack));
                        }
                    }
                    Ok(None) => {}
                    Err(_) => break End::RouterGone,
                },
                _ = &mut kill => break End::TakenOver,
                _ = shutdown.changed() => break End::Shutdown,
            }
        };
        tracing::debug!(client_id = %self.client_id, reason = ?end, "in-process client closed");
        if matches!(end, End::Dropped | End::RouterGone) {
            if let Some(will) = self.will.take() {
                super::connection::session::publish_will(&self.st, &self.client_id, will, 0).await;
            }
        }
        if !matches!(end, End::RouterGone) {
            let disconnect = Packet::Disconnect(
                rumqttd::protocol::Disconnect {
                    reason_code: rumqttd::protocol::DisconnectReasonCode::NormalDisconnection,
                },
                None,
            );
            self.st.router.wait_drained().await;
            let mut tx = self.tx.lock().await;
            let _ = self.st.router.push(&mut tx, vec![disconnect]);
        }
        self.st.sessions.release(&claim);
        Metrics::dec(&self.st.metrics.clients_connected);
        drop(claim);
        if let End::Disconnect(Some(ack)) = end {
            let _ = ack.send(());
        }
        drop(self.task);
    }

    /// Handles a notification and everything else already buffered. False: router gone.
    async fn on_notifications(
        &mut self,
        first: Notification,
        rx: &mut LinkRx,
        control: &mut mpsc::UnboundedReceiver<Control>,
    ) -> bool {
        let mut next = Some(first);
        let mut wake = false;
        let mut alive = true;
        while let Some(n) = next.take() {
            match n {
                Notification::Forward(f) => {
                    let topic = String::from_utf8_lossy(&f.publish.topic).into_owned();
                    let properties = f.properties.map(|mut p| {
                        p.subscription_identifiers.clear();
                        Properties::from_publish(p)
                    });
                    self.push(Message {
                        topic,
                        payload: f.publish.payload,
                        qos: QoS::AtMostOnce,
                        retain: false,
                        properties: properties.filter(|p| !p.is_empty()),
                    });
                }
                Notification::Unschedule => wake = true,
                other => {
                    if let Some(Packet::SubAck(ack, _)) = notification_packet(other) {
                        // The subscriber registered its SUBSCRIBE before handing it to the
                        // router, so the registration is in the channel by now.
                        while let Ok(c) = control.try_recv() {
                            match c {
                                Control::Subscribe {
                                    pkid,
                                    snapshot,
                                    done,
                                } => {
                                    self.pending.insert(pkid, Pending { snapshot, done });
                                }
                                Control::Disconnect(ack) => self.disconnect_requested = Some(ack),
                            }
                        }
                        self.on_suback(ack.pkid, ack.return_codes.first().copied())
                            .await;
                    }
                }
            }
            next = match try_next(rx) {
                Some(Ok(n)) => n,
                Some(Err(())) => {
                    alive = false;
                    None
                }
                None => None,
            };
        }
        self.pressure.set(wake);
        if wake && rx.wake().await.is_err() {
            return false;
        }
        alive
    }

    async fn on_suback(&mut self, pkid: u16, code: Option<rumqttd::protocol::SubscribeReasonCode>) {
        use rumqttd::protocol::SubscribeReasonCode as C;
        let Some(pending) = self.pending.remove(&pkid) else {
            return;
        };
        let code = match code {
            Some(C::QoS0) => 0,
            Some(C::QoS1) => 1,
            Some(C::QoS2) => 2,
            Some(C::Success(q)) => q as u8,
            _ => 0x80,
        };
        let snapshot = pending.snapshot.await.unwrap_or_default();
        if code < 0x80 {
            for r in snapshot {
                let mut message = r.message;
                if let (Some(p), Some(left)) = (message.properties.as_mut(), r.remaining_expiry) {
                    p.message_expiry_interval = Some(left);
                }
                self.push(message);
            }
        }
        let _ = pending.done.send(code);
    }

    fn push(&mut self, message: Message) {
        if !self.st.hooks.authorize_delivery(&self.info, &message.topic) {
            return;
        }
        let correlation = message
            .properties
            .as_ref()
            .and_then(|p| p.correlation_data.as_deref());
        self.st
            .hooks
            .observe_delivery(&self.info, &message.topic, &message.payload, correlation);
        if let Some(sink) = &self.sink {
            Metrics::inc(&self.st.metrics.publishes_sent);
            sink(message);
            return;
        }
        if self.queued.load(Ordering::Relaxed) >= self.st.config.local_queue_limit {
            Metrics::inc(&self.st.metrics.dropped_slow_subscriber);
            return;
        }
        if self.messages.send(message).is_ok() {
            self.queued.fetch_add(1, Ordering::Relaxed);
            Metrics::inc(&self.st.metrics.publishes_sent);
        }
    }
}
