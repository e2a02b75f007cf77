//! How a client announces itself on the bus: its retained status (`online` with the
//! connection's session number, `offline` when it winds down) and, for a plugin, its
//! manifest; after a reconnect, once more a while later (see PROTOCOL.md, liveness).

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::client::{Announce, Client};
use crate::error::ClientError;
use crate::protocol::PluginStatus;
use crate::transport::Outgoing;

/// When a client announces itself again after a reconnect (a NATS cluster stores
/// retained messages again once it has elected new leaders: 2 to 9 s measured).
const REANNOUNCE_AFTER: Duration = Duration::from_secs(10);

impl Client {
    /// Publishes the retained `offline` status (for an announced client) and stays
    /// connected: a client that keeps answering while it winds down says so first.
    pub async fn announce_offline(&self) -> Result<(), ClientError> {
        if self.inner.announce == Announce::Quiet {
            return Ok(());
        }
        self.publish_message(self.status(PluginStatus::offline(self.session())))
            .await
    }

    pub(crate) fn status(&self, mut status: PluginStatus) -> Outgoing {
        let inner = &self.inner;
        let topic = match inner.announce {
            Announce::Kernel => {
                if inner.calls_via_kernel {
                    status.calls = Some(crate::protocol::CALLS_VIA_KERNEL.into());
                }
                inner.topics.kernel_status()
            }
            _ => inner.topics.connection_status(&inner.id, &inner.client_id),
        };
        let version = self.lock_manifest().version.clone();
        status.version = (!version.is_empty()).then_some(version);
        Outgoing {
            topic,
            payload: status.to_bytes().into(),
            qos: 1,
            retain: true,
            correlation: None,
        }
    }

    /// Publishes the plugin's retained manifest.
    pub(crate) async fn publish_manifest(&self) -> Result<(), ClientError> {
        let manifest = self.lock_manifest().clone();
        let payload =
            serde_json::to_vec(&manifest).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.inner
            .link
            .publish(Outgoing {
                topic: self.inner.topics.plugin_manifest(&self.inner.id),
                payload: payload.into(),
                qos: 1,
                retain: true,
                correlation: None,
            })
            .await
    }

    /// After a reconnect, announces the same session once more `REANNOUNCE_AFTER` later:
    /// a clustered broker that lost a node drops retained writes while it elects new
    /// leaders (NATS), which would leave a stale status on every node.
    pub(crate) async fn announce_again_later(&self, session: u64) {
        if self.inner.announce == Announce::Quiet {
            return;
        }
        tokio::time::sleep(REANNOUNCE_AFTER).await;
        if self.session() != session || self.inner.closed.load(Ordering::Acquire) {
            return;
        }
        if self.inner.announce == Announce::Plugin {
            if let Err(e) = self.publish_manifest().await {
                tracing::debug!(error = %e, "manifest not announced again");
            }
        }
        let status = self.status(PluginStatus::online(session));
        if let Err(e) = self.inner.link.publish(status).await {
            tracing::debug!(error = %e, "status not announced again");
        }
    }
}
