//! Accept loops: one per configured listener, on the caller's runtime.
//!
//! Every accepted socket gets TCP_NODELAY before anything else (rumqttd never sets it, and
//! Nagle plus delayed ACKs turn a QoS 1 round trip into ~40 ms). Connection limits are
//! checked at accept time: a connection over the limit is closed at once with a log line.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::ListenerConfig;
use crate::connection;
use crate::metrics::Metrics;
use crate::state::BrokerState;

/// Connections open across all listeners (accepted, not yet closed).
#[derive(Default)]
pub(crate) struct OpenConnections(AtomicUsize);

struct Slot(Arc<OpenConnections>, Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::SeqCst);
        self.1.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Binds a listener; errors name the address.
pub(crate) async fn bind(config: &ListenerConfig) -> Result<TcpListener, crate::BrokerError> {
    TcpListener::bind(config.bind)
        .await
        .map_err(|source| crate::BrokerError::Bind {
            addr: config.bind,
            source,
        })
}

/// Accepts connections until shutdown.
pub(crate) async fn accept_loop(
    st: Arc<BrokerState>,
    listener: TcpListener,
    config: ListenerConfig,
    open: Arc<OpenConnections>,
) {
    let local: Option<SocketAddr> = listener.local_addr().ok();
    let mine = Arc::new(AtomicUsize::new(0));
    let mut shutdown = st.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(listener = %config.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        Metrics::inc(&st.metrics.connections_accepted);
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let total = open.0.fetch_add(1, Ordering::SeqCst) + 1;
        let here = mine.fetch_add(1, Ordering::SeqCst) + 1;
        let slot = Slot(open.clone(), mine.clone());
        let over_listener = config.max_connections.is_some_and(|m| here > m);
        if total > st.config.max_connections || over_listener {
            Metrics::inc(&st.metrics.connections_refused);
            tracing::warn!(%peer, listener = %config.name, open = total, "connection limit reached; closing new connection");
            drop(stream);
            drop(slot);
            continue;
        }
        let st = st.clone();
        tokio::spawn(async move {
            connection::serve(st, stream, peer).await;
            drop(slot);
        });
    }
    tracing::info!(listener = %config.name, addr = ?local, "listener stopped");
}
