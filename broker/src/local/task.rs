//! The task of one in-process client: it makes the deliveries nested too deeply to make
//! in line, and cleans up when the client goes (disconnect, every handle dropped,
//! takeover, shutdown): the will when it was dropped, its session, its claim.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::endpoint::{Endpoint, Outlet};
use crate::hooks::ClientInfo;
use crate::metrics::Metrics;
use crate::router::publication::Delivery;
use crate::sessions::{Session, SessionClaim};
use crate::state::BrokerState;
use crate::types::Message;

pub(super) enum Control {
    Disconnect(oneshot::Sender<()>),
}

#[derive(Debug)]
enum End {
    Disconnect(oneshot::Sender<()>),
    Dropped,
    TakenOver,
    Shutdown,
}

pub(super) struct LocalTask {
    pub st: Arc<BrokerState>,
    pub info: ClientInfo,
    pub session: Arc<Session>,
    pub endpoint: Arc<Endpoint>,
    pub will: Option<Message>,
    pub guard: crate::tasks::TaskGuard,
}

impl LocalTask {
    pub async fn run(
        self,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut deferred: mpsc::Receiver<Delivery>,
        mut claim: SessionClaim,
    ) {
        let mut kill = claim.take_kill();
        let mut shutdown = self.st.shutdown.clone();
        let end = loop {
            tokio::select! {
                biased;
                c = control.recv() => match c {
                    Some(Control::Disconnect(ack)) => break End::Disconnect(ack),
                    None => break End::Dropped,
                },
                Some(d) = deferred.recv() => {
                    if let Outlet::Local(l) = &self.endpoint.outlet {
                        l.deliver(d);
                    }
                }
                _ = &mut kill => break End::TakenOver,
                _ = shutdown.changed() => break End::Shutdown,
            }
        };
        tracing::debug!(client_id = %self.info.client_id, reason = ?end, "in-process client closed");
        self.endpoint.close();
        if let (End::Dropped, Some(will)) = (&end, self.will) {
            crate::wills::publish_will(&self.st, &self.info, self.session.id, will, 0);
        }
        self.st.close_session(&self.session);
        self.st.sessions.release(&claim);
        Metrics::dec(&self.st.metrics.clients_connected);
        drop(claim);
        if let End::Disconnect(ack) = end {
            let _ = ack.send(());
        }
        drop(self.guard);
    }
}
