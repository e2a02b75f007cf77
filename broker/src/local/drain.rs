//! The task that owns an in-process client's link to the router: it drains the router as
//! fast as notifications arrive (messages of shared subscriptions, SUBACKs), wakes the
//! router when it paused the link, makes the deliveries too deeply nested to make in line,
//! and cleans up (will, disconnect, direct subscriptions) when the client goes away.

use std::collections::HashMap;
use std::sync::Arc;

use rumqttd::local::{LinkRx, LinkTx};
use rumqttd::protocol::Packet;
use rumqttd::Notification;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::direct::Delivery;
use crate::metrics::Metrics;
use crate::pressure::PressureFlag;
use crate::router::{notification_packet, try_next};
use crate::sessions::SessionClaim;
use crate::state::BrokerState;
use crate::types::Message;

pub(super) enum Control {
    /// A shared subscription is on its way to the router: report its SUBACK code.
    Subscribe {
        pkid: u16,
        done: oneshot::Sender<u8>,
    },
    Disconnect(oneshot::Sender<()>),
}

/// The task that owns a local link's receiving side.
pub(super) struct Drain {
    pub(super) st: Arc<BrokerState>,
    pub(super) client_id: String,
    pub(super) tx: Arc<Mutex<LinkTx>>,
    pub(super) delivery: Arc<Delivery>,
    /// SUBACK waiters by packet id.
    pub(super) pending: HashMap<u16, oneshot::Sender<u8>>,
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
        mut deferred: mpsc::UnboundedReceiver<Message>,
        mut claim: SessionClaim,
    ) {
        let mut kill = claim.take_kill();
        let mut shutdown = self.st.shutdown.clone();
        let end = loop {
            tokio::select! {
                biased;
                c = control.recv() => match c {
                    Some(Control::Subscribe { pkid, done }) => {
                        self.pending.insert(pkid, done);
                    }
                    Some(Control::Disconnect(ack)) => break End::Disconnect(Some(ack)),
                    None => break End::Dropped,
                },
                Some(m) = deferred.recv() => self.delivery.offer(m),
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
        self.delivery.close();
        self.st.direct.remove_all(&self.delivery);
        if matches!(end, End::Dropped | End::RouterGone) {
            if let Some(will) = self.will.take() {
                crate::wills::publish_will(&self.st, self.delivery.info(), will, 0).await;
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
                    let message =
                        Message::delivered(&f.publish.topic, f.publish.payload, f.properties);
                    self.delivery.offer(message);
                }
                Notification::Unschedule => wake = true,
                other => {
                    if let Some(Packet::SubAck(ack, _)) = notification_packet(other) {
                        // The subscriber registered its SUBSCRIBE before handing it to the
                        // router, so the registration is in the channel by now.
                        while let Ok(c) = control.try_recv() {
                            match c {
                                Control::Subscribe { pkid, done } => {
                                    self.pending.insert(pkid, done);
                                }
                                Control::Disconnect(ack) => self.disconnect_requested = Some(ack),
                            }
                        }
                        self.on_suback(ack.pkid, ack.return_codes.first().copied());
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

    fn on_suback(&mut self, pkid: u16, code: Option<rumqttd::protocol::SubscribeReasonCode>) {
        use rumqttd::protocol::SubscribeReasonCode as C;
        let Some(done) = self.pending.remove(&pkid) else {
            return;
        };
        let code = match code {
            Some(C::QoS0) => 0,
            Some(C::QoS1) => 1,
            Some(C::QoS2) => 2,
            Some(C::Success(q)) => q as u8,
            _ => 0x80,
        };
        let _ = done.send(code);
    }
}
