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

use crate::state::BrokerState;

/// Serves one accepted socket until it closes.
pub(crate) async fn serve(st: Arc<BrokerState>, mut stream: TcpStream, peer: SocketAddr) {
    let _task = st.tasks.enter();
    let mut buf = BytesMut::with_capacity(512);
    let connect = tokio::select! {
        c = handshake::read_connect(&st, &mut stream, &mut buf, peer) => c,
        _ = shutdown_signal(&st) => None,
    };
    let Some(connect) = connect else {
        return;
    };
    let Some(admitted) = admit::admit(&st, &mut stream, connect, peer).await else {
        return;
    };
    run::run(st, stream, buf, admitted).await;
}

async fn shutdown_signal(st: &BrokerState) {
    let mut rx = st.shutdown.clone();
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}
