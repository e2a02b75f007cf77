//! A connected network client: one task that reads the socket, drains the router, writes
//! the outbox, and watches keep-alive, takeover and shutdown.
//!
//! Keep-alive counts *incoming* packets only (rumqttd re-arms its timer on outgoing
//! traffic, so a hung client that keeps receiving is never timed out): with keep-alive k,
//! the connection closes 1.5 k after the last packet from the client, and its will is
//! published. Keep-alive 0 disables the timer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rumqttd::protocol::{Disconnect, DisconnectReasonCode, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::Instrument;

use super::admit::Admitted;
use super::conn::{Close, Conn};
use super::outbox::{Limits, Outbox};
use crate::gaps::FilterIndex;
use crate::metrics::Metrics;
use crate::pressure::PressureFlag;
use crate::sessions::SavedSession;
use crate::state::BrokerState;
use crate::subs::Subscriptions;
use crate::wire::encode::{self, reason, ConnAckProps};

/// Runs an admitted connection to its end.
pub(crate) async fn run(st: Arc<BrokerState>, stream: TcpStream, rbuf: BytesMut, adm: Admitted) {
    let span = tracing::info_span!(
        "conn",
        client_id = %adm.info.client_id,
        peer = ?adm.info.peer,
        proto = %adm.info.protocol
    );
    run_inner(st, stream, rbuf, adm).instrument(span).await
}

async fn run_inner(st: Arc<BrokerState>, stream: TcpStream, mut rbuf: BytesMut, adm: Admitted) {
    let proto = adm.info.protocol;
    let window = adm
        .client_receive_max
        .map_or(st.config.max_inflight, |r| r.min(st.config.max_inflight));
    let limits = Limits {
        max_bytes: st.config.max_queued_bytes,
        window: usize::from(window),
        max_messages: st.config.max_queued_messages,
        max_packet: adm.client_max_packet.map_or(usize::MAX, |m| m as usize),
    };
    let outbox = Arc::new(Outbox::new(proto, limits, st.metrics.clone()));
    let assigned = adm.info.client_id.clone();
    let props = ConnAckProps {
        assigned_client_id: adm.assigned_id.then_some(assigned.as_str()),
        receive_maximum: Some(st.config.max_inflight),
        maximum_packet_size: u32::try_from(st.config.max_packet_size).ok(),
        topic_alias_maximum: Some(st.config.topic_alias_maximum),
        reason_string: None,
    };
    let session_present = adm.persistent && adm.link.session_present;
    outbox
        .lock()
        .control(|b| encode::connack(proto, session_present, reason::SUCCESS, &props, b));

    let (mut reader, writer) = stream.into_split();
    let mut rx = adm.link.rx;
    let mut claim = adm.claim;
    let mut kill = claim.take_kill();
    let mut conn = Conn {
        st: st.clone(),
        proto,
        info: adm.info.clone(),
        tx: adm.link.tx,
        outbox: outbox.clone(),
        subs: Subscriptions::default(),
        aliases: HashMap::new(),
        pending_subacks: HashMap::new(),
        refused_qos2: HashSet::new(),
        filters: FilterIndex::default(),
        pressure: PressureFlag::new(st.pressure.clone()),
        router_alive: true,
        refused_logged: false,
        will: adm.will,
        will_delay: adm.will_delay,
        persistent: adm.persistent,
    };
    conn.restore_session(session_present).await;
    Metrics::inc(&st.metrics.clients_connected);
    tracing::info!(
        keep_alive = adm.keep_alive,
        persistent = adm.persistent,
        "client connected"
    );

    let keep_alive =
        (adm.keep_alive > 0).then(|| Duration::from_millis(u64::from(adm.keep_alive) * 1500));
    let mut last_in = Instant::now();
    let far = Duration::from_secs(86_400 * 365);
    let ka_sleep = tokio::time::sleep(keep_alive.unwrap_or(far));
    let mut ka_sleep = std::pin::pin!(ka_sleep);
    let mut shutdown = st.shutdown.clone();

    // Packets the client sent right behind its CONNECT (read with it) come first.
    let early = if rbuf.is_empty() {
        Ok(())
    } else {
        conn.on_readable(&mut rbuf).await
    };
    let close = if let Err(close) = early {
        close
    } else {
        loop {
            let pending_write = match outbox.flush(&writer) {
                Ok(done) => !done,
                Err(e) => break Close::Io(e.to_string()),
            };
            tokio::select! {
                _ = &mut kill => break Close::TakenOver,
                _ = shutdown.changed() => {
                    // What the router already holds for this client (a last reply) goes into
                    // its outbox, which is flushed on the way out.
                    if let Some(Ok(Some(n))) = crate::router::try_next(&mut rx) {
                        let _ = conn.on_router(n, &mut rx).await;
                    }
                    break Close::Shutdown;
                }
                read = reader.read_buf(&mut rbuf) => match read {
                    Ok(0) => break Close::Eof,
                    Err(e) => break Close::Io(e.to_string()),
                    Ok(_) => {
                        last_in = Instant::now();
                        if let Err(close) = conn.on_readable(&mut rbuf).await {
                            break close;
                        }
                    }
                },
                n = rx.next(), if conn.router_alive => match n {
                    Ok(Some(n)) => {
                        if let Err(close) = conn.on_router(n, &mut rx).await {
                            break close;
                        }
                    }
                    Ok(None) => {}
                    Err(_) => {
                        conn.router_alive = false;
                        break Close::RouterGone;
                    }
                },
                _ = &mut ka_sleep, if keep_alive.is_some() => {
                    let limit = keep_alive.unwrap_or(far);
                    if last_in.elapsed() >= limit {
                        break Close::KeepAlive;
                    }
                    ka_sleep.as_mut().reset(last_in + limit);
                },
                writable = writer.writable(), if pending_write => {
                    if let Err(e) = writable {
                        break Close::Io(e.to_string());
                    }
                },
            }
        }
    };
    conn.finish(close, writer).await;
    st.sessions.release(&claim);
    drop(claim);
}

impl Conn {
    /// On a persistent reconnect, restores the edge's subscription record and re-subscribes
    /// the router so that its subscription map knows the new connection (rumqttd restores
    /// a session's filters without it, after which UNSUBSCRIBE silently does nothing).
    async fn restore_session(&mut self, session_present: bool) {
        let saved = self.st.sessions.take_saved(&self.info.client_id);
        let (true, Some(saved)) = (session_present, saved) else {
            return;
        };
        let items = super::subscribe::resubscribe_items(&saved.subs, false);
        for (_, opts) in saved.subs.iter() {
            self.filters
                .add(&opts.inner, opts.qos, opts.shared.is_some());
        }
        self.subs = saved.subs;
        self.outbox.lock().resend(saved.unacked);
        if let Err(e) = self.st.submit(&mut self.tx, items, false).await {
            tracing::warn!(error = %e, "cannot restore session subscriptions");
        }
    }

    async fn finish(mut self, close: Close, mut writer: OwnedWriteHalf) {
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
        if close.publishes_will() {
            if let Some(will) = self.will.take() {
                crate::wills::publish_will(&self.st, &self.info, will, self.will_delay).await;
            }
        }
        if let Some(code) = close.disconnect_code() {
            let proto = self.proto;
            self.outbox
                .lock()
                .control(|b| encode::disconnect(proto, code, None, b));
        }
        if self.router_alive {
            let disconnect = Packet::Disconnect(
                Disconnect {
                    reason_code: DisconnectReasonCode::NormalDisconnection,
                },
                None,
            );
            let _ = self.st.router.push(&mut self.tx, vec![disconnect]);
        }
        if self.persistent {
            let saved = SavedSession {
                subs: std::mem::take(&mut self.subs),
                unacked: self.outbox.take_unacknowledged(),
            };
            self.st.sessions.save(&self.info.client_id, saved);
        }
        let dropped = self.outbox.dropped();
        if dropped > 0 {
            tracing::info!(dropped, "messages dropped for this slow subscriber");
        }
        // Flush what is queued (a DISCONNECT reason, the last acks) for at most 2 s.
        let flushed = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(false) = self.outbox.flush(&writer) {
                if writer.writable().await.is_err() {
                    break;
                }
            }
        });
        let _ = flushed.await;
        let _ = writer.shutdown().await;
        Metrics::dec(&self.st.metrics.clients_connected);
    }
}
