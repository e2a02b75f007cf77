//! The TCP transport: rumqttc's MQTT 5 client (or its 3.1.1 one, `mqtt.rs`) with
//! TCP_NODELAY, polled by its own task, reconnecting with a capped exponential backoff.
//! Every (re)connect gets a new session number and a matching `offline` will, and is
//! reported as `Event::Connected` so the client re-subscribes, re-provides and
//! re-announces (the broker starts a clean session).
//!
//! The version: the URL's `?version=5` or `?version=3.1.1`, or else MQTT 5, falling back
//! to 3.1.1 when the broker does not complete an MQTT 5 handshake (NATS closes the
//! connection; mosquitto 1.x answers in 3.1.1) but accepts a 3.1.1 one. A log line says
//! which version is in use and why.

use std::time::Duration;

use super::mqtt::{self, Mqtt, MqttVersion, Polled, Poller};
use super::{next_session, Event, Liveness, Outgoing, Sink, TcpOptions};
use crate::error::ClientError;
use crate::protocol::PluginStatus;

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

pub(super) struct TcpLink {
    client: Mqtt,
    /// The version in use.
    pub(super) version: MqttVersion,
    /// SUBACKs arrive in the order the SUBSCRIBEs were sent: a subscriber takes a ticket
    /// when it sends and waits until that many SUBACKs have arrived.
    subscribes: tokio::sync::Mutex<()>,
    sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    subacks: tokio::sync::watch::Receiver<u64>,
    /// Refusals by SUBACK number, taken by the subscriber waiting for that SUBACK.
    refusals: std::sync::Arc<std::sync::Mutex<Refusals>>,
    task: tokio::task::JoinHandle<()>,
    /// Set by `disconnect`: the event loop stops instead of reconnecting.
    closing: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// `mqtt[s]://host:port`, for log lines.
fn target(o: &TcpOptions) -> String {
    let scheme = if o.tls.is_some() { "mqtts" } else { "mqtt" };
    format!("{scheme}://{}:{}", o.host, o.port)
}

/// The first connection, to the first node that takes it: its client, event loop,
/// version and which node. A refused login is final; an unreachable node is skipped.
async fn first_connection(
    id: &str,
    nodes: &[TcpOptions],
    liveness: Option<&Liveness>,
    session: u64,
) -> Result<(Mqtt, Poller, MqttVersion, usize), ClientError> {
    let mut failures = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        match connect_node(id, node, liveness, session).await {
            Ok((client, poller, version)) => return Ok((client, poller, version, i)),
            Err(Unreachable(e)) if i + 1 < nodes.len() => {
                tracing::warn!("{e}; trying the next broker");
                failures.push(e);
            }
            Err(Unreachable(e)) => {
                failures.push(e);
                return Err(ClientError::Connect(failures.join("; ")));
            }
            Err(Refused(e)) => return Err(e),
        }
    }
    Err(ClientError::Connect("no broker URL".into()))
}

/// Why one node did not take the first connection.
enum NodeFailure {
    /// Not reached, or no MQTT version worked: another node may.
    Unreachable(String),
    /// The broker refused the login: final.
    Refused(ClientError),
}
use NodeFailure::{Refused, Unreachable};

async fn connect_node(
    id: &str,
    opts: &TcpOptions,
    liveness: Option<&Liveness>,
    session: u64,
) -> Result<(Mqtt, Poller, MqttVersion), NodeFailure> {
    let target = target(opts);
    let versions: &[MqttVersion] = match opts.version {
        Some(v) => &[v][..],
        None => &[MqttVersion::V5, MqttVersion::V311][..],
    };
    let mut failures = Vec::new();
    for &version in versions {
        let (client, mut poller) = mqtt::open(id, opts, version).map_err(Refused)?;
        set_will(&mut poller, liveness, session);
        let outcome = loop {
            match poller.poll().await {
                Ok(Polled::ConnAck) => break Ok(()),
                Ok(_) => continue,
                Err(e) => break Err(e),
            }
        };
        match outcome {
            Ok(()) => {
                match (opts.version, failures.first()) {
                    (Some(_), _) => {
                        tracing::info!(%version, "connected to {target} (set in the URL)")
                    }
                    (None, None) => tracing::debug!(%version, "connected to {target}"),
                    (None, Some(why)) => tracing::warn!(
                        %version,
                        "{target} did not complete an MQTT 5 handshake ({why}); using MQTT 3.1.1 (no MQTT 5 properties)"
                    ),
                }
                return Ok((client, poller, version));
            }
            // A refusal in the broker's own MQTT 5 CONNACK (bad password, ...) is final.
            Err(e)
                if version == MqttVersion::V5 && e.contains("Connection refused, return code") =>
            {
                return Err(Refused(ClientError::Connect(format!(
                    "cannot connect to {target}: {e}"
                ))));
            }
            Err(e) => failures.push(format!("{version}: {e}")),
        }
    }
    Err(Unreachable(format!(
        "cannot connect to {target}: {}",
        failures.join("; ")
    )))
}

impl TcpLink {
    /// Connects and waits for the first CONNACK (a refusal or an unreachable broker is an
    /// error here; later disconnections are retried forever).
    pub async fn connect(
        id: &str,
        nodes: Vec<TcpOptions>,
        liveness: Option<Liveness>,
        sink: Sink,
    ) -> Result<TcpLink, ClientError> {
        let mut session = next_session(0);
        let (client, mut poller, version, mut node) =
            first_connection(id, &nodes, liveness.as_ref(), session).await?;
        let id = id.to_string();
        let mut moved = false;
        // Nodes tried since the last connection.
        let mut tried = 0usize;
        sink(Event::Connected { session });
        let (suback_tx, subacks) = tokio::sync::watch::channel(0u64);
        let refusals = std::sync::Arc::new(std::sync::Mutex::new(Refusals::default()));
        let refused = refusals.clone();
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sent_by_us = sent.clone();
        let closing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = closing.clone();
        let task = tokio::spawn(async move {
            let mut backoff = BACKOFF_FIRST;
            let mut connected = true;
            loop {
                match poller.poll().await {
                    // Messages are handed over in line: no task hop per message.
                    Ok(Polled::Message(m)) => sink(Event::Message(m)),
                    Ok(Polled::ConnAck) => {
                        backoff = BACKOFF_FIRST;
                        tried = 0;
                        connected = true;
                        if std::mem::take(&mut moved) {
                            tracing::info!("failed over to {}", target(&nodes[node]));
                        }
                        // SUBSCRIBEs lost with the old connection will never be acked;
                        // the client subscribes everything again now.
                        let sent = sent_by_us.load(std::sync::atomic::Ordering::SeqCst);
                        suback_tx.send_modify(|n| *n = (*n).max(sent));
                        sink(Event::Connected { session });
                    }
                    Ok(Polled::SubAck(refusal)) => {
                        suback_tx.send_modify(|n| {
                            *n += 1;
                            if let Some(code) = refusal {
                                refused
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .insert(*n, code);
                            }
                        });
                    }
                    Ok(Polled::Other) => {}
                    Err(_) if stop.load(std::sync::atomic::Ordering::SeqCst) => {
                        sink(Event::Closed);
                        break;
                    }
                    Err(e) => {
                        if std::mem::take(&mut connected) {
                            tracing::warn!(error = %e, "broker connection lost; reconnecting");
                            sink(Event::Lost);
                        } else {
                            tracing::debug!(error = %e, retry_in = ?backoff, "reconnect failed");
                        }
                        // With several nodes, every failed attempt tries the next one,
                        // at once; the backoff grows once every node has been tried.
                        let mut wait = backoff;
                        if nodes.len() > 1 {
                            node = (node + 1) % nodes.len();
                            moved = true;
                            tried += 1;
                            if let Err(e) = poller.retarget(&id, &nodes[node]) {
                                tracing::warn!("{}: {e}", target(&nodes[node]));
                            }
                            if !tried.is_multiple_of(nodes.len()) {
                                wait = BACKOFF_FIRST;
                            }
                        }
                        tokio::time::sleep(wait).await;
                        if wait == backoff {
                            backoff = (backoff * 2).min(BACKOFF_MAX);
                        }
                        session = next_session(session);
                        set_will(&mut poller, liveness.as_ref(), session);
                    }
                }
            }
        });
        Ok(TcpLink {
            client,
            version,
            subscribes: tokio::sync::Mutex::new(()),
            sent,
            subacks,
            refusals,
            task,
            closing,
        })
    }

    pub async fn publish(&self, out: Outgoing) -> Result<(), ClientError> {
        self.client.publish(out).await
    }

    pub fn try_publish(&self, out: Outgoing) -> Result<(), Outgoing> {
        self.client.try_publish(out)
    }

    /// Subscribes and waits (at most 10 s) for the broker's SUBACK, so that messages
    /// published after this returns are delivered.
    pub async fn subscribe(&self, filter: &str, q: u8) -> Result<(), ClientError> {
        let ticket = {
            let _order = self.subscribes.lock().await;
            self.client.subscribe(filter, q).await?;
            self.sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
        };
        let mut acks = self.subacks.clone();
        let acked =
            tokio::time::timeout(Duration::from_secs(10), acks.wait_for(|n| *n >= ticket)).await;
        if acked.is_err() {
            tracing::warn!(filter, "no SUBACK within 10 s; continuing");
        }
        let refused = self
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take(ticket);
        match refused {
            Some(reason) => Err(ClientError::Refused {
                filter: filter.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    pub async fn unsubscribe(&self, filter: &str) -> Result<(), ClientError> {
        self.client.unsubscribe(filter).await
    }

    pub async fn disconnect(&self) -> Result<(), ClientError> {
        self.closing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let result = self.client.disconnect().await;
        // Let the event loop send the DISCONNECT, then stop it.
        for _ in 0..50 {
            if self.task.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.task.abort();
        result
    }
}

impl Drop for TcpLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// SUBACK refusals not yet taken by their subscriber; bounded (a subscriber that gave up
/// waiting never takes its entry, so the oldest are forgotten).
#[derive(Default)]
struct Refusals(std::collections::BTreeMap<u64, String>);

impl Refusals {
    fn insert(&mut self, ticket: u64, reason: String) {
        self.0.insert(ticket, reason);
        while self.0.len() > 64 {
            self.0.pop_first();
        }
    }

    fn take(&mut self, ticket: u64) -> Option<String> {
        self.0.remove(&ticket)
    }
}

fn set_will(poller: &mut Poller, liveness: Option<&Liveness>, session: u64) {
    if let Some(l) = liveness {
        poller.set_will(
            &l.status_topic,
            PluginStatus::offline(session).to_bytes().into(),
        );
    }
}
