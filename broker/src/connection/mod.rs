//! The network edge for one TCP connection: handshake, admission, then the connection's
//! loop.

mod admit;
mod conn;
mod handshake;
mod inbound;
mod run;
mod subscribe;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::net::TcpStream;

use crate::config::ListenerConfig;
use crate::state::BrokerState;

/// Serves one accepted socket until it closes.
/// `listener`: the configuration of the listener that accepted it.
pub(crate) async fn serve(
    st: Arc<BrokerState>,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerConfig>,
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
    mut stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerConfig>,
) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
    let mut buf = BytesMut::with_capacity(512);
    let connect = tokio::select! {
        c = handshake::read_connect(&st, &mut stream, &mut buf, peer) => c,
        _ = shutdown_signal(&st) => None,
    }?;
    let admitted = admit::admit(&st, &mut stream, connect, peer, &listener).await?;
    Some(Box::pin(run::run(st, stream, buf, admitted)))
}

async fn shutdown_signal(st: &BrokerState) {
    let mut rx = st.shutdown.clone();
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}
