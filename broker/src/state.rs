//! State shared by every connection of one broker: config, router, hooks, counters,
//! retained messages, live sessions, and the ordered hand-off of packets to the router.

use std::sync::{Arc, Mutex};

use rumqttd::local::LinkTx;
use rumqttd::protocol::{Packet, Publish, PublishProperties};
use tokio::sync::watch;

use crate::config::BrokerConfig;
use crate::direct::{Deliveries, Delivery, DeliveryRules, DirectTable};
use crate::error::BrokerError;
use crate::hooks::{ClientInfo, Hooks};
use crate::metrics::Metrics;
use crate::pressure::Pressure;
use crate::retained::{RetainedMessage, RetainedStore};
use crate::router::RouterHandle;
use crate::sessions::Sessions;
use crate::tasks::TaskCounter;
use crate::types::Message;

/// What handing a packet to the router does to the retained store, in packet order.
pub(crate) enum Effect {
    None,
    /// A retained publish: store (or, with an empty payload, delete) this message.
    Retain(Message),
    /// A new subscription: snapshot the retained messages matching this filter.
    Snapshot(String),
}

/// A packet for the router and its effect on the retained store.
pub(crate) struct Item {
    pub packet: Packet,
    pub effect: Effect,
}

impl Item {
    /// The message a routed publish item carries (for handing it back to a caller).
    pub fn into_message(self) -> Message {
        match (self.effect, self.packet) {
            (Effect::Retain(m), _) => m,
            (_, Packet::Publish(p, props)) => Message::delivered(&p.topic, p.payload, props),
            _ => Message::new("", ""),
        }
    }

    pub fn plain(packet: Packet) -> Item {
        Item {
            packet,
            effect: Effect::None,
        }
    }
}

pub(crate) struct BrokerState {
    pub config: BrokerConfig,
    pub router: Arc<RouterHandle>,
    pub hooks: Arc<dyn Hooks>,
    pub metrics: Arc<Metrics>,
    pub sessions: Sessions,
    pub tasks: Arc<TaskCounter>,
    pub pressure: Arc<Pressure>,
    pub shutdown: watch::Receiver<bool>,
    retained: Mutex<RetainedStore>,
    /// In-process clients' subscriptions matched at the edge.
    pub direct: DirectTable,
    /// What in-process deliveries consult (shared with every `Delivery`).
    pub delivery_rules: Arc<DeliveryRules>,
    /// The broker's own link, used for wills.
    internal: tokio::sync::Mutex<LinkTx>,
}

impl BrokerState {
    pub fn new(
        config: BrokerConfig,
        router: Arc<RouterHandle>,
        hooks: Arc<dyn Hooks>,
        internal: LinkTx,
        shutdown: watch::Receiver<bool>,
    ) -> BrokerState {
        let metrics = Arc::new(Metrics::default());
        let delivery_rules = Arc::new(DeliveryRules {
            hooks: hooks.clone(),
            metrics: metrics.clone(),
            queue_limit: config.local_queue_limit,
        });
        BrokerState {
            config,
            router,
            hooks,
            metrics,
            delivery_rules,
            sessions: Sessions::default(),
            tasks: Arc::new(TaskCounter::default()),
            pressure: Arc::new(Pressure::default()),
            shutdown,
            retained: Mutex::new(RetainedStore::default()),
            direct: DirectTable::default(),
            internal: tokio::sync::Mutex::new(internal),
        }
    }

    /// Hands a batch of packets to the router through `tx`, applying their retained-store
    /// effects under one lock, then delivers the publishes to matching in-process clients
    /// (`local::direct`). Holding the lock across "update store + enqueue to router"
    /// (publishers) and "snapshot store + enqueue SUBSCRIBE" (subscribers) means a
    /// subscriber sees every retained message either in its snapshot or live, never
    /// neither. Returns one snapshot per `Effect::Snapshot`, in order.
    ///
    /// A batch with publishes first waits (bounded) while subscribers lag, unless the
    /// caller is itself lagging (`lagging`): see `pressure`.
    pub async fn submit(
        &self,
        tx: &mut LinkTx,
        items: Vec<Item>,
        lagging: bool,
    ) -> Result<Vec<Vec<RetainedMessage>>, BrokerError> {
        let (snapshots, deliveries) = self.submit_collect(tx, items, lagging).await?;
        deliveries.deliver();
        Ok(snapshots)
    }

    /// `submit` that leaves the in-process deliveries to the caller, to make once it has
    /// released its own locks (a sink may publish in line).
    pub async fn submit_collect(
        &self,
        tx: &mut LinkTx,
        items: Vec<Item>,
        lagging: bool,
    ) -> Result<(Vec<Vec<RetainedMessage>>, Deliveries), BrokerError> {
        let mut deliveries = Deliveries::default();
        if items.is_empty() {
            return Ok((Vec::new(), deliveries));
        }
        if !lagging
            && self.pressure.active()
            && items
                .iter()
                .any(|i| matches!(i.packet, Packet::Publish(..)))
        {
            Metrics::inc(&self.metrics.publisher_waits);
            self.pressure.wait().await;
        }
        self.router.wait_for_room().await;
        let mut snapshots = Vec::new();
        let mut packets = Vec::with_capacity(items.len());
        if items.iter().all(|i| matches!(i.effect, Effect::None)) {
            for item in items {
                self.collect_direct(&item.packet, &mut deliveries);
                packets.push(item.packet);
            }
            return self
                .router
                .push(tx, packets)
                .map(|()| (snapshots, deliveries));
        }
        let mut store = self.retained.lock().unwrap_or_else(|e| e.into_inner());
        for item in items {
            self.collect_direct(&item.packet, &mut deliveries);
            match item.effect {
                Effect::None => {}
                Effect::Retain(message) => store.apply(&message),
                Effect::Snapshot(filter) => snapshots.push(store.matching(&filter)),
            }
            packets.push(item.packet);
        }
        self.router.push(tx, packets)?;
        drop(store);
        Ok((snapshots, deliveries))
    }

    /// `submit_collect` for one routed message without waiting: gives the item back if
    /// the router's queue is full.
    pub fn try_submit(&self, tx: &mut LinkTx, item: Item) -> Result<Deliveries, Box<Item>> {
        if self.router.is_full() {
            return Err(Box::new(item));
        }
        let mut deliveries = Deliveries::default();
        let packet = item.packet;
        let result = match item.effect {
            Effect::Retain(message) => {
                let mut store = self.retained.lock().unwrap_or_else(|e| e.into_inner());
                self.collect_direct(&packet, &mut deliveries);
                store.apply(&message);
                self.router.push(tx, vec![packet])
            }
            _ => {
                self.collect_direct(&packet, &mut deliveries);
                self.router.push(tx, vec![packet])
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "router push failed");
        }
        Ok(deliveries)
    }

    /// Registers a direct (edge-matched) subscription of an in-process client and returns
    /// the retained messages it must see first: under the retained lock, like `submit`.
    pub fn direct_subscribe(
        &self,
        filter: &str,
        delivery: &Arc<Delivery>,
    ) -> Result<Vec<RetainedMessage>, BrokerError> {
        let mut store = self.retained.lock().unwrap_or_else(|e| e.into_inner());
        self.direct.add(filter, delivery);
        // The drain task closes the delivery before removing its subscriptions.
        if delivery.is_closed() {
            self.direct.remove(filter, delivery);
            return Err(BrokerError::Closed);
        }
        Ok(store.matching(filter))
    }

    /// Finds the in-process clients a publish goes to directly.
    fn collect_direct(&self, packet: &Packet, out: &mut Deliveries) {
        if self.direct.is_empty() {
            return;
        }
        let Packet::Publish(p, props) = packet else {
            return;
        };
        let Ok(topic) = std::str::from_utf8(&p.topic) else {
            return;
        };
        let targets = self.direct.targets(topic);
        if targets.is_empty() {
            return;
        }
        let message = Message::delivered(&p.topic, p.payload.clone(), props.clone());
        out.push(message, targets);
    }

    /// Publishes a will (or any broker-originated message) through the internal link.
    pub async fn publish_internal(&self, message: Message) -> Result<(), BrokerError> {
        let item = routed_item(message);
        let deliveries = {
            let mut tx = self.internal.lock().await;
            self.submit_collect(&mut tx, vec![item], false).await?.1
        };
        deliveries.deliver();
        Ok(())
    }

    /// Records the hooks' stamps (identity, role) in a publish's user properties, removing
    /// any property of the same name the publisher sent.
    pub fn stamp(&self, client: &ClientInfo, topic: &str, props: &mut Option<PublishProperties>) {
        self.hooks.stamps(client, topic, &mut |name, value| {
            let p = props.get_or_insert_with(PublishProperties::default);
            p.user_properties.retain(|(k, _)| k != name);
            p.user_properties
                .push((name.to_string(), value.to_string()));
        });
    }

    /// `stamp` for a message built in process.
    pub fn stamp_message(&self, client: &ClientInfo, message: &mut Message) {
        let props = &mut message.properties;
        self.hooks
            .stamps(client, &message.topic, &mut |name, value| {
                props
                    .get_or_insert_with(Default::default)
                    .set_user_property(name, value);
            });
    }

    /// Number of retained messages stored.
    pub fn retained_count(&self) -> usize {
        self.retained
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// The router item for a message built by the edge (will, in-process publish): a QoS 0
/// router publish with the retain flag cleared, plus the retained-store effect.
pub(crate) fn routed_item(message: Message) -> Item {
    let properties = message.properties.as_ref().map(|p| p.to_publish());
    let publish = Publish::new(
        bytes::Bytes::from(message.topic.clone()),
        message.payload.clone(),
        false,
    );
    let effect = if message.retain {
        Effect::Retain(message)
    } else {
        Effect::None
    };
    Item {
        packet: Packet::Publish(publish, properties),
        effect,
    }
}
