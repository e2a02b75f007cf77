//! Request/response through a broker: a requester publishes on `bench/ping`, a responder
//! answers on `bench/pong`; the round trips are timed.
//!
//! `Clients::Tuned` sets TCP_NODELAY and writes each reply with its acknowledgement in
//! one packet batch; `Clients::Default` behaves like a default-configured paho or
//! libmosquitto client: Nagle's algorithm on, one write per packet (PUBACK, then PUBLISH).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::mqtt_client::{connect_with, puback, publish, Writer};

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Clients {
    Tuned,
    Default,
}

fn next_pkid(p: &mut u16) -> u16 {
    *p = if *p == u16::MAX { 1 } else { *p + 1 };
    *p
}

/// Sends a PUBACK and a PUBLISH: in one write (tuned) or two (default clients).
async fn ack_then_publish(
    w: &mut Writer,
    clients: Clients,
    ack: Option<u16>,
    publication: Option<(&[u8], u8, u16, &str)>,
) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    if let Some(pkid) = ack {
        puback(&mut out, pkid);
        if clients == Clients::Default {
            w.send(&out).await?;
            out.clear();
        }
    }
    if let Some((payload, qos, pkid, topic)) = publication {
        publish(&mut out, topic, payload, qos, pkid);
    }
    if out.is_empty() {
        return Ok(());
    }
    w.send(&out).await
}

/// `n` timed round trips (after `n / 10` untimed ones) at `qos`.
pub async fn round_trips(addr: SocketAddr, qos: u8, n: usize, clients: Clients) -> Vec<Duration> {
    let nodelay = clients == Clients::Tuned;
    let (mut rr, mut rw) = connect_with(addr, "responder", nodelay).await.unwrap();
    rw.subscribe(&mut rr, "bench/ping", qos).await.unwrap();
    let (mut qr, mut qw) = connect_with(addr, "requester", nodelay).await.unwrap();
    qw.subscribe(&mut qr, "bench/pong", qos).await.unwrap();
    let responder = tokio::spawn(async move {
        let mut pkid = 0;
        while let Ok(p) = rr.next().await {
            if p.kind() != 3 {
                continue;
            }
            let (in_pkid, payload) = p.publish_parts();
            let ack = (p.qos() > 0).then_some(in_pkid);
            let reply = (&payload[..], qos, next_pkid(&mut pkid), "bench/pong");
            if ack_then_publish(&mut rw, clients, ack, Some(reply))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let warmup = n / 10;
    let mut rtts = Vec::with_capacity(n);
    let mut pkid = 0;
    let mut pending_ack = None;
    for i in 0..n + warmup {
        let start = Instant::now();
        let payload = (i as u64).to_be_bytes();
        let request = (&payload[..], qos, next_pkid(&mut pkid), "bench/ping");
        ack_then_publish(&mut qw, clients, pending_ack.take(), Some(request))
            .await
            .unwrap();
        loop {
            let p = qr.next().await.unwrap();
            if p.kind() == 3 {
                if p.qos() > 0 {
                    pending_ack = Some(p.publish_parts().0);
                }
                break;
            }
        }
        if i >= warmup {
            rtts.push(start.elapsed());
        }
    }
    responder.abort();
    rtts
}

/// (p50, p99) in microseconds.
pub fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}
