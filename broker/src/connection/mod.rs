//! The network edge for one TCP connection: TLS (on a TLS listener), the MQTT handshake,
//! admission, then the connection's loop.

mod admit;
mod conn;
mod handshake;
mod inbound;
mod run;
mod subscribe;

use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::config::ListenerConfig;
use crate::metrics::Metrics;
use crate::state::BrokerState;
use crate::transport::Stream;

/// What a connection knows of the listener that accepted it: its configuration and,
/// for a TLS listener, its acceptor (built when the
/// broker binds, so bad certificate files stop the start).
pub(crate) struct Entry {
    pub config: ListenerConfig,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Entry {
    pub fn new(config: &ListenerConfig) -> Result<Entry, crate::BrokerError> {
        let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
        Ok(Entry {
            config: config.clone(),
            tls,
        })
    }
}

/// Serves one accepted socket until it closes.
/// `listener`: the configuration of the listener that accepted it.
pub(crate) async fn serve(
    st: Arc<BrokerState>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<Entry>,
) {
    let _task = st.tasks.enter();
    // The handshake and admission run once, at the start: boxed, their state is freed
    // when they finish. The connection's loop is boxed too, so it is stored once (an
    // unboxed future returned from an await would take room twice in this one).
    if let Some(running) = Box::pin(start(st.clone(), stream, peer, listener)).await {
        running.await;
    }
}

/// Handshake and admission; the connection's loop, ready to run, if it was admitted.
async fn start(
    st: Arc<BrokerState>,
    tcp: TcpStream,
    peer: SocketAddr,
    listener: Arc<Entry>,
) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
    let mut stream = tokio::select! {
        s = secure(&st, tcp, peer, &listener) => s,
        _ = shutdown_signal(&st) => None,
    }?;
    let certified = stream.peer_identity();
    let mut buf = BytesMut::with_capacity(512);
    let connect = tokio::select! {
        c = handshake::read_connect(&st, &mut stream, &mut buf, peer) => c,
        _ = shutdown_signal(&st) => None,
    }?;
    let admitted =
        admit::admit(&st, &mut stream, connect, peer, &listener.config, certified).await?;
    Some(Box::pin(run::run(st, stream, buf, admitted)))
}

/// The TLS handshake on a TLS listener (within `connect_timeout_ms`); the plain stream
/// otherwise.
async fn secure(st: &BrokerState, tcp: TcpStream, peer: SocketAddr, l: &Entry) -> Option<Stream> {
    let Some(acceptor) = &l.tls else {
        return Some(Stream::Plain(tcp));
    };
    let timeout = Duration::from_millis(st.config.connect_timeout_ms);
    let why = match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => return Some(Stream::Tls(Box::new(tls))),
        Ok(Err(e)) => format!("TLS handshake failed: {e}"),
        Err(_) => format!("no TLS handshake within {} ms", timeout.as_millis()),
    };
    Metrics::inc(&st.metrics.connections_refused);
    tracing::info!(%peer, listener = %l.config.name, "closing connection: {why}");
    None
}

async fn shutdown_signal(st: &BrokerState) {
    let mut rx = st.shutdown.clone();
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}
