//! Accept loops: one per configured listener, on the caller's runtime.
//!
//! Every accepted socket gets TCP_NODELAY before anything else (Nagle plus delayed ACKs
//! turn a QoS 1 round trip into ~40 ms). Connection limits (in all, per listener, per
//! source address, and the connect rate per address) are checked at accept time: a
//! connection over a limit is closed at once, counted, and logged (rate-limited).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::ListenerConfig;
use crate::connection::{self, Entry};
use crate::limits::{AddressLimits, Refusal};
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
    entry: Arc<Entry>,
    open: Arc<OpenConnections>,
    per_address: Arc<AddressLimits>,
) {
    let local: Option<SocketAddr> = listener.local_addr().ok();
    let config = &entry.config;
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
            Metrics::inc(&st.metrics.limit_connections);
            refused(&st, peer, "connection limit reached (max_connections)");
            continue;
        }
        let exempt = peer.ip().is_loopback() && !st.config.limit_loopback;
        let addr_slot = if exempt {
            None
        } else {
            match per_address.admit(peer.ip()) {
                Ok(s) => Some(s),
                Err(Refusal::TooMany) => {
                    Metrics::inc(&st.metrics.limit_connections);
                    refused(
                        &st,
                        peer,
                        "too many connections from this address (max_connections_per_address)",
                    );
                    continue;
                }
                Err(Refusal::TooFast) => {
                    Metrics::inc(&st.metrics.limit_connect_rate);
                    refused(
                        &st,
                        peer,
                        "this address connects too fast (max_connects_per_second)",
                    );
                    continue;
                }
            }
        };
        let st = st.clone();
        let entry = entry.clone();
        tokio::spawn(async move {
            connection::serve(st, stream, peer, entry).await;
            drop(addr_slot);
            drop(slot);
        });
    }
    tracing::info!(listener = %config.name, addr = ?local, "listener stopped");
}

/// Logs a refused connection: the first of every 1,000 (a flood must not flood the log).
fn refused(st: &BrokerState, peer: SocketAddr, why: &str) {
    let n = st
        .metrics
        .limit_connections
        .load(std::sync::atomic::Ordering::Relaxed)
        + st.metrics
            .limit_connect_rate
            .load(std::sync::atomic::Ordering::Relaxed);
    if n % 1000 == 1 {
        tracing::warn!(%peer, refused = n, "closing new connection: {why}");
    }
}
