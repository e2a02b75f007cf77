//! Client churn, the way a home's devices and tools come and go: many clients at once,
//! each connecting, subscribing, publishing and leaving again and again, MQTT 3.1.1 and 5,
//! clean and persistent sessions (with fixed client ids), with and without wills, leaving
//! cleanly or by dropping the socket. Used by the churn test and benchmark to check that
//! memory comes back once the clients are gone.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::wire::*;

/// What a churn run did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChurnReport {
    pub connects: u64,
    pub publishes: u64,
    /// Connections that did not complete (refused or cut); churn goes on regardless.
    pub failures: u64,
}

#[derive(Default)]
struct Counters {
    connects: AtomicU64,
    publishes: AtomicU64,
    failures: AtomicU64,
}

/// Runs `clients` churning clients against `addr` for `duration`.
pub async fn churn(addr: SocketAddr, clients: usize, duration: Duration) -> ChurnReport {
    let counters = Arc::new(Counters::default());
    let until = Instant::now() + duration;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let counters = counters.clone();
        tasks.push(tokio::spawn(async move {
            let mut round = 0u64;
            while Instant::now() < until {
                if one_visit(addr, c, round, &counters).await.is_none() {
                    counters.failures.fetch_add(1, Relaxed);
                }
                round += 1;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    ChurnReport {
        connects: counters.connects.load(Relaxed),
        publishes: counters.publishes.load(Relaxed),
        failures: counters.failures.load(Relaxed),
    }
}

/// One client's visit: connect, subscribe, publish, and leave. The kind of client
/// changes with the round.
async fn one_visit(addr: SocketAddr, c: usize, round: u64, n: &Counters) -> Option<()> {
    let v5 = round.is_multiple_of(2);
    let persistent = round.is_multiple_of(3);
    let with_will = round % 4 == 1;
    let clean_exit = !round.is_multiple_of(5);
    let id = if persistent {
        format!("churn-p{c}")
    } else {
        format!("churn-{c}-{round}")
    };
    let will_topic = format!("churn/will/{c}");
    let will = with_will.then_some((will_topic.as_str(), &b"gone"[..]));
    let connect = match (v5, will) {
        (true, will) => {
            // Session expiry 60 s when persistent.
            let props: &[u8] = if persistent {
                &[0x11, 0, 0, 0, 60]
            } else {
                &[]
            };
            connect_v5(&id, 30, props, will)
        }
        (false, Some((t, p))) => connect_with_will(&id, 30, t, p, false),
        (false, None) => connect_packet(4, &id, 30, true),
    };
    let connect = if persistent {
        without_clean_start(connect)
    } else {
        connect
    };
    let mut wire = Wire::connect(addr).await;
    wire.send(&connect).await;
    let (b1, body) = wire.read_packet().await?;
    if b1 != 0x20 || body.get(1) != Some(&0) {
        return None;
    }
    n.connects.fetch_add(1, Relaxed);
    let filter = format!("churn/{c}/#");
    let sub = if v5 {
        let mut body = vec![0, 1, 0];
        body.extend_from_slice(&(filter.len() as u16).to_be_bytes());
        body.extend_from_slice(filter.as_bytes());
        body.push(1);
        raw_packet(0x82, &body)
    } else {
        subscribe_packet(1, &filter, 1)
    };
    wire.send(&sub).await;
    for i in 0..5u64 {
        // Distinct topics as well as repeated ones.
        let topic = format!("churn/{c}/{}", (round * 5 + i) % 50);
        let p = if v5 {
            publish_v5(&topic, b"payload", 0, 0, &[])
        } else {
            publish_packet(topic.as_bytes(), b"payload", 0, 0, false)
        };
        wire.send(&p).await;
        n.publishes.fetch_add(1, Relaxed);
    }
    // A PINGRESP means everything before it was handled.
    wire.send(&PINGREQ).await;
    loop {
        let (b1, _) = wire.read_packet().await?;
        if b1 == 0xd0 {
            break;
        }
    }
    if clean_exit {
        wire.send(&DISCONNECT).await;
    }
    Some(())
}
