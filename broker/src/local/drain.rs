//! The task that owns an in-process client's receiving side: it drains the router as fast
//! as notifications arrive, wakes the router when it paused the link, answers subscribes
//! with their retained messages, delivers to the queue or the sink, and cleans up (will,
//! disconnect) when the client goes away.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::Packet;
use rumqttd::Notification;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::LocalSink;
use crate::hooks::ClientInfo;
use crate::metrics::Metrics;
use crate::pressure::PressureFlag;
use crate::retained::RetainedMessage;
use crate::router::{notification_packet, try_next};
use crate::sessions::SessionClaim;
use crate::state::BrokerState;
use crate::types::{Message, Properties, QoS};

pub(super) enum Control {
    Subscribe {
        pkid: u16,
        snapshot: oneshot::Receiver<Vec<RetainedMessage>>,
        done: oneshot::Sender<u8>,
    },
    Disconnect(oneshot::Sender<()>),
}

pub(super) struct Pending {
    snapshot: oneshot::Receiver<Vec<RetainedMessage>>,
    done: oneshot::Sender<u8>,
}

/// The task that owns a local link's receiving side.
pub(super) struct Drain {
    pub(super) st: Arc<BrokerState>,
    pub(super) client_id: String,
    pub(super) info: ClientInfo,
    pub(super) tx: Arc<Mutex<LinkTx>>,
    pub(super) messages: mpsc::UnboundedSender<Message>,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) sink: Option<LocalSink>,
    pub(super) pending: HashMap<u16, Pending>,
    pub(super) will: Option<Message>,
    pub(super) pressure: PressureFlag,
    /// A disconnect() seen while draining; acted on by the main loop.
    pub(super) disconnect_requested: Option<oneshot::Sender<()>>,
    pub(super) task: crate::tasks::TaskGuard,
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
    pub(super) async fn run(
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
                crate::connection::session::publish_will(&self.st, &self.client_id, will, 0).await;
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
