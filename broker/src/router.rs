//! The routing engine: rumqttd's `Router` on its own thread, and the links into it.
//!
//! rumqttd's router channel carries a private event type, so the sender is captured in
//! closures at spawn time instead of being stored by type. Building a link blocks on a
//! synchronous channel, so it runs on tokio's blocking pool. The router thread cannot be
//! stopped from outside (it holds a sender to its own channel); shutdown disconnects every
//! link and leaves the idle thread with empty tables.

use std::sync::Arc;
use std::time::Duration;

use rumqttd::local::{LinkBuilder, LinkRx, LinkTx};
use rumqttd::protocol::{Filter, Packet, RetainForwardRule, Subscribe, SubscribeProperties};
use rumqttd::{Notification, Router, RouterConfig};

use crate::config::RouterSettings;
use crate::error::BrokerError;
use crate::subs::SubOpts;

type ConnectFn = dyn Fn(&str, bool) -> Result<Link, BrokerError> + Send + Sync;

/// One connection into the router.
pub(crate) struct Link {
    pub tx: LinkTx,
    pub rx: LinkRx,
    pub session_present: bool,
}

/// Handle to the router thread.
pub(crate) struct RouterHandle {
    connect: Box<ConnectFn>,
    is_full: Box<dyn Fn() -> bool + Send + Sync>,
    queued: Box<dyn Fn() -> usize + Send + Sync>,
}

impl RouterHandle {
    /// Starts the router thread.
    pub fn spawn(settings: &RouterSettings, max_links: usize) -> Arc<RouterHandle> {
        let config = RouterConfig {
            max_connections: max_links,
            max_outgoing_packet_count: settings.max_outgoing_packet_count,
            max_segment_size: settings.max_segment_size,
            max_segment_count: settings.max_segment_count,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        };
        let router_tx = Router::new(0, config).spawn();
        let full_tx = router_tx.clone();
        let len_tx = router_tx.clone();
        let connect = move |router_id: &str, clean: bool| -> Result<Link, BrokerError> {
            let (tx, rx, ack) = LinkBuilder::new(router_id, router_tx.clone())
                .clean_session(clean)
                .dynamic_filters(false)
                .build()
                .map_err(|e| BrokerError::Link(format!("router refused link: {e}")))?;
            let session_present = match Option::<Packet>::from(ack) {
                Some(Packet::ConnAck(connack, _)) => connack.session_present,
                _ => false,
            };
            Ok(Link {
                tx,
                rx,
                session_present,
            })
        };
        Arc::new(RouterHandle {
            connect: Box::new(connect),
            is_full: Box::new(move || full_tx.is_full()),
            queued: Box::new(move || len_tx.len()),
        })
    }

    /// Opens a link for `router_id` (already escaped, see `session::router_id`).
    pub async fn link(
        self: &Arc<Self>,
        router_id: String,
        clean: bool,
    ) -> Result<Link, BrokerError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || (this.connect)(&router_id, clean))
            .await
            .map_err(|e| BrokerError::Link(format!("link task failed: {e}")))?
    }

    /// Is the router's event channel full right now?
    pub fn is_full(&self) -> bool {
        (self.is_full)()
    }

    /// Waits while the router's event channel is full, so that the blocking send inside
    /// `LinkTx::send` never parks a runtime thread for long.
    pub async fn wait_for_room(&self) {
        while (self.is_full)() {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// Waits (at most 200 ms) until the router has processed every queued event. Used
    /// before disconnecting a link that sent one event per message: rumqttd logs an error
    /// for every event that arrives for a link it already removed.
    pub async fn wait_drained(&self) {
        for _ in 0..200 {
            if (self.queued)() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Hands a batch of packets to the router with one router event. Synchronous (it may
    /// be called while holding the retained-store lock); call `wait_for_room` first.
    pub fn push(&self, tx: &mut LinkTx, mut packets: Vec<Packet>) -> Result<(), BrokerError> {
        let Some(last) = packets.pop() else {
            return Ok(());
        };
        if !packets.is_empty() {
            tx.buffer().extend(packets);
        }
        // `LinkTx::send` is an async fn without await points: it completes on first poll.
        match poll_once(tx.send(last)) {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(BrokerError::Link(format!("router channel closed: {e}"))),
            None => Err(BrokerError::Link("router send did not complete".into())),
        }
    }
}

/// Polls a future once with a no-op waker.
fn poll_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Turns a router notification into a packet; `None` means "Unschedule": the router paused
/// this link until it is woken with `LinkRx::wake`.
pub(crate) fn notification_packet(n: Notification) -> Option<Packet> {
    Option::<Packet>::from(n)
}

/// Takes whatever the router has already buffered for this link, without waiting.
/// `None`: nothing ready. `Some(Err(()))`: the router dropped the link.
pub(crate) fn try_next(rx: &mut LinkRx) -> Option<Result<Option<Notification>, ()>> {
    poll_once(rx.next()).map(|r| r.map_err(|_| ()))
}

/// A router SUBSCRIBE for one filter at QoS 0.
pub(crate) fn router_subscribe(pkid: u16, opts: &SubOpts) -> Packet {
    let props = opts.subscription_id.map(|id| SubscribeProperties {
        id: Some(id),
        user_properties: Vec::new(),
    });
    Packet::Subscribe(
        Subscribe {
            pkid,
            filters: vec![Filter {
                path: opts.router_filter.clone(),
                qos: rumqttd::protocol::QoS::AtMostOnce,
                nolocal: false,
                preserve_retain: false,
                retain_forward_rule: RetainForwardRule::Never,
            }],
        },
        props,
    )
}
