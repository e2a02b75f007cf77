//! In-process clients: the kernel and in-process plugins publish, subscribe and receive
//! without TCP, with the same rules as network clients (validation, authorization hooks,
//! retained messages, wills, takeover by client id). Their publishes go through the router
//! like anyone's; their plain subscriptions are matched at the edge and delivered on the
//! publisher's task (`direct`); shared subscriptions go through the router.
//!
//! rumqttd's local links have no flow control of their own: when a link's buffer holds 200
//! notifications the router pauses it until it is woken, and a dropped link is never
//! disconnected (its will is lost). A drain task per client handles both: it takes
//! notifications as fast as they arrive and wakes the router, and when every handle is
//! gone it publishes the will and disconnects the link. A queue-mode receiver that falls
//! more than `local_queue_limit` messages behind loses the newest ones, counted in
//! `dropped_slow_subscriber`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rumqttd::local::LinkTx;
use rumqttd::protocol::{Packet, Unsubscribe};
use tokio::sync::{mpsc, oneshot, Mutex};

mod drain;

use drain::{Control, Drain};

use crate::direct::{Delivery, LocalSink};
use crate::error::BrokerError;
use crate::hooks::ClientInfo;
use crate::metrics::Metrics;
use crate::pressure::PressureFlag;
use crate::retained::RetainedMessage;
use crate::router::router_subscribe;
use crate::sessions::router_id;
use crate::state::{routed_item, BrokerState, Item};
use crate::subs::{router_filter, SubOpts};
use crate::topic::{parse_shared, validate_filter, validate_topic};
use crate::types::{Message, Protocol, QoS};

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

struct Shared {
    st: Arc<BrokerState>,
    info: ClientInfo,
    tx: Arc<Mutex<LinkTx>>,
    control: mpsc::UnboundedSender<Control>,
    next_pkid: std::sync::Mutex<u16>,
    /// Where each of the client's filters is matched.
    filters: std::sync::Mutex<HashMap<String, Route>>,
    delivery: Arc<Delivery>,
    /// One subscription opens at a time (see `Delivery::hold`).
    subscribing: Mutex<()>,
}

/// Where a subscription is matched.
enum Route {
    /// At the edge (`direct`): the filter as given.
    Direct(String),
    /// By the router (shared subscriptions): the router's filter.
    Router(String),
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
    let (deferred_tx, deferred_rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let delivery = Arc::new(Delivery::new(
        st.delivery_rules.clone(),
        info.clone(),
        options.sink,
        msg_tx,
        queued.clone(),
        deferred_tx,
    ));
    Metrics::inc(&st.metrics.clients_connected);
    tracing::debug!(client_id, "in-process client connected");
    let drain = Drain {
        st: st.clone(),
        client_id: client_id.to_string(),
        tx: tx.clone(),
        delivery: delivery.clone(),
        pending: HashMap::new(),
        will: options.will,
        pressure: PressureFlag::new(st.pressure.clone()),
        disconnect_requested: None,
        task: st.tasks.enter(),
    };
    tokio::spawn(drain.run(link.rx, control_rx, deferred_rx, claim));
    let shared = Arc::new(Shared {
        st,
        info,
        tx,
        control: control_tx,
        next_pkid: std::sync::Mutex::new(0),
        filters: std::sync::Mutex::new(HashMap::new()),
        delivery,
        subscribing: Mutex::new(()),
    });
    Ok((LocalClient { shared }, LocalReceiver { rx: msg_rx, queued }))
}

/// Hands one control packet (no retained effect) to the router.
async fn submit_control(
    st: &BrokerState,
    tx: &mut LinkTx,
    packet: Packet,
) -> Result<(), BrokerError> {
    st.submit(tx, vec![Item::plain(packet)], false)
        .await
        .map(|_| ())
}

/// A retained message as a new subscriber gets it: with its remaining expiry.
fn retained_delivery(r: RetainedMessage) -> Message {
    let mut message = r.message;
    if let (Some(p), Some(left)) = (message.properties.as_mut(), r.remaining_expiry) {
        p.message_expiry_interval = Some(left);
    }
    message
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
        st.stamp_message(&self.shared.info, &mut message);
        let deliveries = {
            let mut tx = self.shared.tx.lock().await;
            st.submit_collect(&mut tx, vec![routed_item(message)], false)
                .await?
                .1
        };
        deliveries.deliver();
        Ok(())
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
        st.stamp_message(&self.shared.info, &mut message);
        Metrics::inc(&st.metrics.publishes_received);
        let deliveries = st
            .try_submit(&mut tx, routed_item(message))
            .map_err(|item| Box::new(item.into_message()))?;
        drop(tx);
        deliveries.deliver();
        Ok(())
    }

    /// Subscribes; returns the granted QoS once the filter is registered and the matching
    /// retained messages are delivered (before any live message). Plain filters are
    /// matched at the edge (`direct`); shared subscriptions go through the router, which
    /// balances each group across its members.
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
        match group {
            None => self.subscribe_direct(filter).await?,
            Some(group) => self.subscribe_routed(filter, group, inner, qos).await?,
        }
        Ok(qos)
    }

    async fn subscribe_direct(&self, filter: &str) -> Result<(), BrokerError> {
        let st = &self.shared.st;
        let delivery = &self.shared.delivery;
        let _one_at_a_time = self.shared.subscribing.lock().await;
        delivery.hold();
        let Ok(snapshot) = st.direct_subscribe(filter, delivery) else {
            delivery.release(Vec::new());
            return Err(BrokerError::Closed);
        };
        self.shared
            .filters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(filter.to_string(), Route::Direct(filter.to_string()));
        delivery.release(snapshot.into_iter().map(retained_delivery).collect());
        Ok(())
    }

    async fn subscribe_routed(
        &self,
        filter: &str,
        group: &str,
        inner: &str,
        qos: QoS,
    ) -> Result<(), BrokerError> {
        let pkid = self.next_pkid();
        let (done_tx, done_rx) = oneshot::channel();
        self.shared
            .control
            .send(Control::Subscribe {
                pkid,
                done: done_tx,
            })
            .map_err(|_| BrokerError::Closed)?;
        let opts = SubOpts {
            qos,
            shared: Some(group.to_string()),
            inner: inner.to_string(),
            router_filter: router_filter(Some(group), inner),
            subscription_id: None,
        };
        let packet = router_subscribe(pkid, &opts);
        self.shared
            .filters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                filter.to_string(),
                Route::Router(opts.router_filter.clone()),
            );
        {
            let mut tx = self.shared.tx.lock().await;
            submit_control(&self.shared.st, &mut tx, packet).await?;
        }
        let code = done_rx.await.map_err(|_| BrokerError::Closed)?;
        if code >= 0x80 {
            return Err(BrokerError::Link(format!(
                "router refused subscription (code {code:#x})"
            )));
        }
        Ok(())
    }

    /// Removes a subscription.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), BrokerError> {
        let route = self
            .shared
            .filters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(filter);
        match route {
            None => Ok(()),
            Some(Route::Direct(f)) => {
                self.shared.st.direct.remove(&f, &self.shared.delivery);
                Ok(())
            }
            Some(Route::Router(router_filter)) => {
                let packet = Packet::Unsubscribe(
                    Unsubscribe {
                        pkid: self.next_pkid(),
                        filters: vec![router_filter],
                    },
                    None,
                );
                let mut tx = self.shared.tx.lock().await;
                submit_control(&self.shared.st, &mut tx, packet).await
            }
        }
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
