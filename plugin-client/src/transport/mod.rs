//! How a client reaches the broker: over TCP (rumqttc, MQTT 5) or in-process (the embedded
//! broker's local clients). Both deliver the same `Event`s and accept the same `Outgoing`
//! messages, so everything above this module is transport-agnostic. Public as a low-level
//! API for the kernel, which speaks the protocol itself.

#[cfg(feature = "in-process")]
mod local;
mod mqtt;
mod options;
mod tcp;
mod tls;

pub use mqtt::MqttVersion;
pub use options::{split_urls, TcpOptions, MAX_BROKERS};
pub use tls::TlsOptions;

use bytes::Bytes;

use crate::error::ClientError;

/// A message received from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    pub retain: bool,
    /// MQTT 5 Response Topic.
    pub response_topic: Option<String>,
    /// MQTT 5 Correlation Data.
    pub correlation: Option<Bytes>,
    pub user_properties: Vec<(String, String)>,
}

impl Message {
    /// The first user property named `key`.
    pub fn user_property(&self, key: &str) -> Option<&str> {
        self.user_properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A message to publish.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    pub correlation: Option<Bytes>,
}

/// What the transport reports to the client.
#[derive(Debug)]
pub enum Event {
    /// Connected (again): subscriptions must be renewed and the plugin re-announced.
    /// `session` is the number used in this connection's will.
    Connected {
        session: u64,
    },
    Message(Message),
    /// The connection was lost; the transport is reconnecting (`Connected` follows).
    Lost,
    /// The connection is gone for good (taken over, shut down).
    Closed,
}

/// Where a connection delivers its events: called in line, so it must not block. Over
/// TCP on the connection's task, in order; in-process on the publisher's task (possibly
/// several at once, in order per publisher).
pub type Sink = std::sync::Arc<dyn Fn(Event) + Send + Sync>;

/// A sink for a consumer that does not exist yet when the connection is made: events
/// wait, in order, until `attach`, and then flow straight through. The target is never
/// called with a lock held, so it may be re-entered (an in-process publish made inside
/// the target can be delivered back to it in line) and called from several tasks at once.
#[derive(Default)]
pub struct LateSink {
    state: std::sync::Mutex<LateState>,
}

#[derive(Default)]
struct LateState {
    target: Option<Sink>,
    /// Events not yet handed to the target: before `attach`, and while `attach` replays.
    waiting: std::collections::VecDeque<Event>,
    replaying: bool,
}

impl LateSink {
    pub fn new() -> std::sync::Arc<LateSink> {
        std::sync::Arc::new(LateSink::default())
    }

    /// The sink to give the connection.
    pub fn sink(self: &std::sync::Arc<Self>) -> Sink {
        let me = self.clone();
        std::sync::Arc::new(move |e| me.deliver(e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deliver(&self, e: Event) {
        let target = {
            let mut state = self.lock();
            match &state.target {
                Some(t) if !state.replaying => t.clone(),
                _ => return state.waiting.push_back(e),
            }
        };
        target(e);
    }

    /// Delivers the waiting events to `target`, then everything that follows.
    pub fn attach(&self, target: Sink) {
        {
            let mut state = self.lock();
            state.target = Some(target.clone());
            state.replaying = true;
        }
        loop {
            let next = {
                let mut state = self.lock();
                let next = state.waiting.pop_front();
                if next.is_none() {
                    state.replaying = false;
                }
                next
            };
            match next {
                Some(e) => target(e),
                None => return,
            }
        }
    }
}

/// Events delivered through a channel, for a consumer that handles them asynchronously.
pub struct Events(tokio::sync::mpsc::UnboundedReceiver<Event>);

impl Events {
    pub async fn recv(&mut self) -> Option<Event> {
        self.0.recv().await
    }
}

/// A sink that queues events for `Events::recv`.
pub fn channel() -> (Sink, Events) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let sink: Sink = std::sync::Arc::new(move |e| {
        let _ = tx.send(e);
    });
    (sink, Events(rx))
}

/// What a connection needs to know about the plugin's liveness topics.
#[derive(Debug, Clone)]
pub struct Liveness {
    /// Retained status topic; the will publishes `offline` there.
    pub status_topic: String,
}

/// A connection to the broker.
pub struct Link(LinkKind);

enum LinkKind {
    Tcp(tcp::TcpLink),
    #[cfg(feature = "in-process")]
    Local(local::LocalLink),
}

impl Link {
    /// Connects over TCP; fails if the first connection fails, reconnects afterwards.
    /// Connects to the first of `nodes` that takes the connection (the nodes of one
    /// cluster); later losses fail over between them.
    pub async fn connect_tcp(
        id: &str,
        nodes: Vec<TcpOptions>,
        liveness: Option<Liveness>,
        sink: Sink,
    ) -> Result<Link, ClientError> {
        let link = tcp::TcpLink::connect(id, nodes, liveness, sink).await?;
        Ok(Link(LinkKind::Tcp(link)))
    }

    /// The MQTT version of a TCP link (`None` in-process).
    pub fn mqtt_version(&self) -> Option<MqttVersion> {
        match &self.0 {
            LinkKind::Tcp(t) => Some(t.version),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Connects to the embedded broker in-process.
    #[cfg(feature = "in-process")]
    pub async fn connect_in_process(
        broker: &hcore_broker::BrokerHandle,
        id: &str,
        liveness: Option<Liveness>,
        sink: Sink,
    ) -> Result<Link, ClientError> {
        let link = local::LocalLink::connect(broker, id, liveness, sink).await?;
        Ok(Link(LinkKind::Local(link)))
    }

    pub async fn publish(&self, out: Outgoing) -> Result<(), ClientError> {
        match &self.0 {
            LinkKind::Tcp(l) => l.publish(out).await,
            #[cfg(feature = "in-process")]
            LinkKind::Local(l) => l.publish(out).await,
        }
    }

    /// Publishes without waiting (for use inside a sink); gives the message back when it
    /// cannot be handed over at once.
    pub fn try_publish(&self, out: Outgoing) -> Result<(), Outgoing> {
        match &self.0 {
            LinkKind::Tcp(l) => l.try_publish(out),
            #[cfg(feature = "in-process")]
            LinkKind::Local(l) => l.try_publish(out),
        }
    }

    /// Subscribes at QoS 1.
    pub async fn subscribe(&self, filter: &str) -> Result<(), ClientError> {
        self.subscribe_qos(filter, 1).await
    }

    /// Subscribes at `qos` (0, 1 or 2; in-process delivery has no QoS).
    pub async fn subscribe_qos(&self, filter: &str, qos: u8) -> Result<(), ClientError> {
        match &self.0 {
            LinkKind::Tcp(l) => l.subscribe(filter, qos).await,
            #[cfg(feature = "in-process")]
            LinkKind::Local(l) => l.subscribe(filter).await,
        }
    }

    pub async fn unsubscribe(&self, filter: &str) -> Result<(), ClientError> {
        match &self.0 {
            LinkKind::Tcp(l) => l.unsubscribe(filter).await,
            #[cfg(feature = "in-process")]
            LinkKind::Local(l) => l.unsubscribe(filter).await,
        }
    }

    /// Disconnects cleanly (the will is discarded).
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        match &self.0 {
            LinkKind::Tcp(l) => l.disconnect().await,
            #[cfg(feature = "in-process")]
            LinkKind::Local(l) => l.disconnect().await,
        }
    }
}

/// A session number larger than any earlier one from this process (and, with a working
/// clock, from earlier runs): milliseconds since the epoch, bumped if the clock stalls.
pub fn next_session(previous: u64) -> u64 {
    crate::protocol::now_ms().max(previous + 1)
}
