//! In-process clients: the kernel and in-process plugins publish, subscribe and receive
//! without TCP, with the same rules as network clients (validation, limits, authorization
//! hooks, retained messages, wills, takeover by client id) and through the same router:
//! a publish is routed on the caller's task, and the client receives in line (a sink) or
//! through a bounded queue (`LocalReceiver`).
//!
//! A task per client (`task`) makes the deliveries nested too deeply to make in line, and
//! cleans up when the client goes: a client dropped without `disconnect` publishes its
//! will, like a network client whose socket dies.

mod task;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::endpoint::local::{LocalOutlet, LocalSink};
use crate::endpoint::{Endpoint, Outlet, Touched};
use crate::error::BrokerError;
use crate::hooks::ClientInfo;
use crate::metrics::Metrics;
use crate::router::publication::Publication;
use crate::router::subscription::SubOptions;
use crate::sessions::{QueueLimits, Session};
use crate::state::BrokerState;
use crate::topic::{parse_filter, validate_topic};
use crate::types::{Message, Protocol, QoS};

use task::{Control, LocalTask};

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
    session: Arc<Session>,
    endpoint: Arc<Endpoint>,
    control: mpsc::UnboundedSender<Control>,
    /// One subscription opens at a time (see `Endpoint::hold`).
    subscribing: Mutex<()>,
}

/// Publishes and subscribes for one in-process client. Cheap to clone; the client
/// disconnects (publishing its will) when the last clone is dropped.
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

fn invalid(what: &'static str, reason: impl ToString) -> BrokerError {
    BrokerError::Invalid {
        what,
        reason: reason.to_string(),
    }
}

/// Connects an in-process client (called through `Broker::local_client`).
pub(crate) async fn connect(
    st: Arc<BrokerState>,
    client_id: &str,
    options: LocalOptions,
) -> Result<(LocalClient, LocalReceiver), BrokerError> {
    if client_id.is_empty() {
        return Err(invalid("client id", "empty"));
    }
    let info = ClientInfo {
        client_id: client_id.to_string(),
        username: options.username.clone(),
        anonymous_role: None,
        peer: None,
        protocol: Protocol::Local,
    };
    if let Some(will) = &options.will {
        validate_topic(&will.topic, &st.config).map_err(|e| invalid("will topic", e))?;
        if !st.may_publish_message(&info, will) {
            return Err(BrokerError::NotAuthorized(format!(
                "will topic {}",
                will.topic
            )));
        }
    }
    let key = info.session_key();
    let (claim, took_over) = st.sessions.claim(&key).await;
    if took_over {
        Metrics::inc(&st.metrics.takeovers);
    }
    st.sessions.cancel_delayed_will(&key);
    let limits = QueueLimits {
        messages: st.config.max_queued_messages,
        bytes: st.config.max_queued_bytes,
    };
    let opened = st.sessions.open(&key, true, || {
        Session::new(
            st.next_session_id(),
            info.clone(),
            false,
            Duration::ZERO,
            limits,
        )
    });
    if let Some(old) = &opened.replaced {
        st.end_session(old);
    }
    let session = opened.session;
    let (msg_tx, msg_rx) = mpsc::unbounded_channel();
    let (deferred_tx, deferred_rx) = mpsc::channel(st.config.local_queue_limit);
    let queued = Arc::new(AtomicUsize::new(0));
    let outlet = LocalOutlet::new(
        client_id,
        options.sink,
        msg_tx,
        queued.clone(),
        st.config.local_queue_limit,
        deferred_tx,
        st.metrics.clone(),
    );
    let endpoint = Arc::new(Endpoint::new(Outlet::Local(outlet)));
    session.lock().endpoint = Some(endpoint.clone());
    Metrics::inc(&st.metrics.clients_connected);
    tracing::debug!(client_id, "in-process client connected");
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let task = LocalTask {
        st: st.clone(),
        info: info.clone(),
        session: session.clone(),
        endpoint: endpoint.clone(),
        will: options.will,
        guard: st.tasks.enter(),
    };
    tokio::spawn(task.run(control_rx, deferred_rx, claim));
    let shared = Arc::new(Shared {
        st,
        info,
        session,
        endpoint,
        control: control_tx,
        subscribing: Mutex::new(()),
    });
    Ok((LocalClient { shared }, LocalReceiver { rx: msg_rx, queued }))
}

impl LocalClient {
    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.shared.info.client_id
    }

    /// Publishes a message (retain and MQTT 5 properties included), routed to every
    /// subscriber before this returns (after giving congested subscribers a moment, as a
    /// network publisher does).
    pub async fn publish(&self, message: Message) -> Result<(), BrokerError> {
        let mut touched = Touched::default();
        let routed = self.route(message, &mut touched);
        touched.flush_and_pace(Duration::from_millis(20)).await;
        routed
    }

    /// Publishes without waiting, for callers that must not block (a sink). Routing never
    /// waits, so this always takes the message (`Err` gives it back only for the API's
    /// sake, when the client is closed).
    pub fn try_publish(&self, message: Message) -> Result<(), Box<Message>> {
        if self.shared.endpoint.is_closed() {
            return Err(Box::new(message));
        }
        let _ = self.route(message, &mut Touched::default());
        Ok(())
    }

    fn route(&self, mut message: Message, touched: &mut Touched) -> Result<(), BrokerError> {
        let sh = &self.shared;
        if sh.endpoint.is_closed() {
            return Err(BrokerError::Closed);
        }
        validate_topic(&message.topic, &sh.st.config).map_err(|e| invalid("topic", e))?;
        Metrics::inc(&sh.st.metrics.publishes_received);
        if !sh.st.may_publish_message(&sh.info, &message) {
            Metrics::inc(&sh.st.metrics.not_authorized);
            return Err(BrokerError::NotAuthorized(format!(
                "publish to {}",
                message.topic
            )));
        }
        sh.st.stamp_message(&sh.info, &mut message);
        let p = Publication::new(message, sh.session.id);
        if sh.st.publish(p, &sh.info.client_id, touched).is_err() {
            tracing::warn!(client_id = %sh.info.client_id, "retained message not stored: over a retained-message limit");
        }
        Ok(())
    }

    /// Subscribes; returns the granted QoS once the filter is registered and the matching
    /// retained messages are delivered (before any live message).
    pub async fn subscribe(&self, filter: &str, qos: QoS) -> Result<QoS, BrokerError> {
        let sh = &self.shared;
        let parsed = parse_filter(filter, &sh.st.config).map_err(|e| invalid("topic filter", e))?;
        if !sh.st.hooks.authorize_subscribe(&sh.info, &parsed.inner) {
            Metrics::inc(&sh.st.metrics.not_authorized);
            return Err(BrokerError::NotAuthorized(format!("subscribe to {filter}")));
        }
        let _one_at_a_time = sh.subscribing.lock().await;
        if sh.endpoint.is_closed() {
            return Err(BrokerError::Closed);
        }
        sh.endpoint.hold();
        let (_, retained) = sh.st.subscribe(&sh.session, &parsed, SubOptions::at(qos));
        sh.endpoint.release(retained, &mut Touched::default());
        Ok(qos)
    }

    /// Removes a subscription.
    pub async fn unsubscribe(&self, filter: &str) -> Result<(), BrokerError> {
        self.shared.st.unsubscribe(&self.shared.session, filter);
        Ok(())
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
}
