//! A connected network client: one task that reads the socket, handles what it reads
//! (routing publishes on this task), writes what other tasks could not, and watches
//! keep-alive, takeover and shutdown.
//!
//! Keep-alive counts *incoming* packets only: with keep-alive k, the connection closes
//! 1.5 k after the last packet from the client, and its will is published. Keep-alive 0
//! disables the timer. While more than `max_queued_bytes` wait to be written to this
//! client, its socket is not read: a client that floods requests without reading the
//! answers slows itself down, nobody else.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;
use tracing::Instrument;

use super::admit::Admitted;
use super::conn::{Close, Conn};
use crate::endpoint::outbox::{Limits, Outbox};
use crate::endpoint::{Endpoint, Outlet, Touched};
use crate::metrics::Metrics;
use crate::state::BrokerState;
use crate::transport::{Reader, Stream};
use crate::wire::encode::{self, reason, ConnAckProps};

/// Longest a publisher waits, per socket read, for congested subscribers to catch up.
const PACE: Duration = Duration::from_millis(20);

/// Runs an admitted connection to its end.
pub(crate) fn run(
    st: Arc<BrokerState>,
    stream: Stream,
    rbuf: BytesMut,
    adm: Admitted,
) -> impl std::future::Future<Output = ()> {
    let span = tracing::info_span!(
        "conn",
        client_id = %adm.info.client_id,
        peer = ?adm.info.peer,
        proto = %adm.info.protocol
    );
    // Opening happens here, before the loop's future exists: an async fn keeps its
    // arguments for its whole life, and the loop needs none of what opening uses.
    let opened = span.in_scope(|| open(&st, stream, adm));
    run_inner(st, opened, rbuf).instrument(span)
}

fn outbox_limits(st: &BrokerState, adm: &Admitted) -> Limits {
    let window = adm
        .client_receive_max
        .map_or(st.config.max_inflight, |r| r.min(st.config.max_inflight));
    Limits {
        max_bytes: st.config.max_queued_bytes,
        window: usize::from(window),
        max_messages: st.config.max_queued_messages,
        max_packet: adm.client_max_packet.map_or(usize::MAX, |m| m as usize),
        topic_aliases: adm.client_topic_aliases.min(st.config.topic_alias_maximum),
    }
}

async fn run_inner(st: Arc<BrokerState>, mut o: Opened, mut rbuf: BytesMut) {
    // Used in place: an async fn's arguments stay in its future, so copies would not.
    let close = serve(
        &mut o.conn,
        &mut o.reader,
        &mut rbuf,
        &mut o.kill,
        o.keep_alive,
    )
    .await;
    Box::pin(o.conn.finish(close)).await;
    st.sessions.release(&o.claim);
}

/// What a connection's loop runs with.
struct Opened {
    conn: Conn,
    reader: Reader,
    claim: crate::sessions::SessionClaim,
    kill: tokio::sync::oneshot::Receiver<()>,
    keep_alive: u16,
}

/// Sends the CONNACK, attaches the connection to its session and counts it connected.
fn open(st: &Arc<BrokerState>, stream: Stream, adm: Admitted) -> Opened {
    let proto = adm.info.protocol;
    let (reader, writer) = stream.split();
    let outbox = Arc::new(Outbox::new(
        proto,
        outbox_limits(st, &adm),
        st.metrics.clone(),
        writer,
    ));
    let session = adm.opened.session.clone();
    let session_present = adm.opened.resumed;
    let props = ConnAckProps {
        assigned_client_id: adm.assigned_id.then_some(adm.info.client_id.as_str()),
        receive_maximum: Some(st.config.receive_maximum),
        maximum_packet_size: u32::try_from(st.config.max_packet_size).ok(),
        topic_alias_maximum: Some(st.config.topic_alias_maximum),
        server_keep_alive: adm.server_keep_alive,
        reason_string: None,
    };
    outbox.control(|b| encode::connack(proto, session_present, reason::SUCCESS, &props, b));
    let endpoint = Arc::new(Endpoint::new(Outlet::Net(outbox.clone())));
    attach(&session, &endpoint, &outbox, &adm);
    let mut claim = adm.claim;
    let kill = claim.take_kill();
    let conn = Conn {
        st: st.clone(),
        proto,
        info: adm.info,
        session,
        endpoint,
        outbox,
        aliases: HashMap::new(),
        qos2_in: HashSet::new(),
        refused_logged: false,
        will: adm.will.map(Box::new),
        will_delay: adm.will_delay,
    };
    Metrics::inc(&st.metrics.clients_connected);
    tracing::info!(
        keep_alive = adm.keep_alive,
        persistent = conn.session.lock().persistent,
        "client connected"
    );
    Opened {
        conn,
        reader,
        claim,
        kill,
        keep_alive: adm.keep_alive,
    }
}

/// Connects the endpoint to its session; a resumed session's waiting messages go first.
fn attach(
    session: &Arc<crate::sessions::Session>,
    endpoint: &Arc<Endpoint>,
    outbox: &Outbox,
    adm: &Admitted,
) {
    endpoint.hold();
    let (in_flight, queued) = {
        let mut state = session.lock();
        state.endpoint = Some(endpoint.clone());
        state.info = adm.info.clone();
        state.take_waiting()
    };
    outbox.resume(in_flight, queued);
    endpoint.release(Vec::new(), &mut Touched::default());
}

/// What woke the connection's loop.
enum Event {
    Readable(std::io::Result<()>),
    Writable(std::io::Result<()>),
    KeepAliveTimer,
    Woken,
    End(Close),
}

/// The connection's loop, until it ends.
async fn serve(
    conn: &mut Conn,
    reader: &mut Reader,
    rbuf: &mut BytesMut,
    kill: &mut tokio::sync::oneshot::Receiver<()>,
    keep_alive: u16,
) -> Close {
    let st = conn.st.clone();
    let outbox = conn.outbox.clone();
    let mut touched = Touched::default();
    // Packets the client sent right behind its CONNECT (read with it) come first; with
    // TLS, more of them may wait decrypted in the TLS session, not in the socket.
    if !rbuf.is_empty() {
        if let Err(close) = conn.on_readable(rbuf, &mut touched) {
            return close;
        }
    }
    if let Err(close) = read(conn, reader, rbuf, &mut touched) {
        return close;
    }
    touched.flush_and_pace(PACE).await;
    let keep_alive = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
    let mut last_in = Instant::now();
    let far = Duration::from_secs(86_400 * 365);
    let ka_sleep = tokio::time::sleep(keep_alive.unwrap_or(far));
    let mut ka_sleep = std::pin::pin!(ka_sleep);
    let mut shutdown = st.shutdown.clone();
    if rbuf.is_empty() {
        *rbuf = BytesMut::new();
    }
    loop {
        let written = match outbox.flush() {
            Ok(done) => done,
            Err(e) => return Close::Io(e.to_string()),
        };
        // Read only while the client takes what it is sent.
        let may_read = outbox.pending_bytes() < st.config.max_queued_bytes;
        // The select only says what happened; handling it (which may wait for congested
        // subscribers) happens after its futures are gone, so they and the handling do
        // not both take room in this future.
        let event = tokio::select! {
            _ = &mut *kill => Event::End(Close::TakenOver),
            _ = shutdown.changed() => Event::End(Close::Shutdown),
            ready = reader.tcp().readable(), if may_read => Event::Readable(ready),
            _ = outbox.wake.notified() => Event::Woken,
            writable = outbox.socket().writable(), if !written => Event::Writable(writable),
            _ = &mut ka_sleep, if keep_alive.is_some() => Event::KeepAliveTimer,
        };
        match event {
            Event::End(close) => return close,
            Event::Readable(Err(e)) | Event::Writable(Err(e)) => return Close::Io(e.to_string()),
            Event::Readable(Ok(())) => {
                match read(conn, reader, rbuf, &mut touched) {
                    Ok(true) => last_in = Instant::now(),
                    Ok(false) => {}
                    Err(close) => {
                        touched.flush_and_pace(PACE).await;
                        return close;
                    }
                }
                touched.flush_and_pace(PACE).await;
            }
            Event::Woken | Event::Writable(Ok(())) => {}
            Event::KeepAliveTimer => {
                let limit = keep_alive.unwrap_or(far);
                if last_in.elapsed() >= limit {
                    return Close::KeepAlive;
                }
                ka_sleep.as_mut().reset(last_in + limit);
            }
        }
    }
}

/// Reads what the socket has and handles every complete packet; true if anything was
/// read.
fn read(
    conn: &mut Conn,
    reader: &Reader,
    rbuf: &mut BytesMut,
    touched: &mut Touched,
) -> Result<bool, Close> {
    // The buffer exists only while there is something to read: an idle connection holds
    // none.
    if rbuf.capacity() - rbuf.len() < 256 {
        rbuf.reserve(4096);
    }
    match reader.try_read_buf(rbuf) {
        Ok(0) => Err(Close::Eof),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(Close::Io(e.to_string())),
        Ok(n) => {
            Metrics::add(&conn.st.metrics.bytes_received, n as u64);
            conn.on_readable(rbuf, touched)?;
            // An answer about to be written carries the TCP ACK; with nothing to answer,
            // ACK at once so a client that leaves Nagle on never waits for a delayed ACK.
            if conn.outbox.pending_bytes() == 0 {
                quick_ack(reader.tcp());
            }
            if rbuf.is_empty() {
                *rbuf = BytesMut::new();
            }
            Ok(true)
        }
    }
}

fn quick_ack(reader: &tokio::net::tcp::OwnedReadHalf) {
    #[cfg(target_os = "linux")]
    {
        let _ = socket2::SockRef::from(reader.as_ref()).set_tcp_quickack(true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = reader;
}

impl Conn {
    async fn finish(self, close: Close) {
        let level_info = matches!(
            close,
            Close::Clean | Close::Eof | Close::TakenOver | Close::Shutdown
        );
        match &close {
            Close::Violation { why, .. } => {
                Metrics::inc(&self.st.metrics.protocol_errors);
                tracing::warn!("closing connection: {why}");
            }
            Close::KeepAlive => {
                Metrics::inc(&self.st.metrics.keep_alive_timeouts);
                tracing::info!(
                    "closing connection: keep-alive expired (no packet for 1.5x keep-alive)"
                );
            }
            Close::Io(e) => tracing::info!(error = %e, "client connection lost"),
            other if level_info => tracing::info!(reason = ?other, "client disconnected"),
            other => tracing::info!(reason = ?other, "client connection lost"),
        }
        self.endpoint.close();
        if close.publishes_will() {
            if let Some(will) = self.will {
                crate::wills::publish_will(
                    &self.st,
                    &self.info,
                    self.session.id,
                    *will,
                    self.will_delay,
                );
            }
        }
        if let Some(code) = close.disconnect_code() {
            let proto = self.proto;
            self.outbox
                .control(|b| encode::disconnect(proto, code, None, b));
        }
        {
            // A persistent session keeps what its client has not acknowledged.
            let mut state = self.session.lock();
            if state.persistent {
                let (in_flight, queued) = self.outbox.take_unacknowledged();
                state.keep_unacknowledged(in_flight, queued);
            }
        }
        self.st.close_session(&self.session);
        let dropped = self.outbox.dropped();
        if dropped > 0 {
            tracing::info!(dropped, "messages dropped for this slow subscriber");
        }
        // Flush what is queued (a DISCONNECT reason, the last acks) for at most 2 s.
        let outbox = self.outbox.clone();
        let flushed = tokio::time::timeout(Duration::from_secs(2), async move {
            while let Ok(false) = outbox.flush() {
                if outbox.socket().writable().await.is_err() {
                    break;
                }
            }
        });
        let _ = flushed.await;
        Metrics::dec(&self.st.metrics.clients_connected);
    }
}
