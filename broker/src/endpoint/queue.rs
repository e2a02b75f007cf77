//! What waits in a network outbox before it is encoded: QoS 1/2 messages beyond the
//! client's in-flight window, and *paced* deliveries (retained messages for a new
//! subscription, the queue of a resumed session) that go out as fast as the client takes
//! them and are never dropped, in order.
//!
//! Live messages count against the outbox's bounds and are dropped beyond them; paced
//! ones are bounded by what produced them (the retained store's limits, the offline
//! queue's) and count only once they are encoded.

use std::collections::VecDeque;

use crate::router::publication::Delivery;
use crate::types::QoS;

struct Waiting {
    delivery: Delivery,
    paced: bool,
}

#[derive(Default)]
pub(crate) struct Queue {
    items: VecDeque<Waiting>,
    /// Live messages waiting and their bytes.
    live: usize,
    live_bytes: usize,
    /// Paced deliveries waiting.
    paced: usize,
}

impl Queue {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Are paced deliveries waiting? (Then every new message queues behind them.)
    pub fn has_paced(&self) -> bool {
        self.paced > 0
    }

    /// Live messages waiting, and their bytes (for the outbox's bounds).
    pub fn live(&self) -> (usize, usize) {
        (self.live, self.live_bytes)
    }

    pub fn push_live(&mut self, delivery: Delivery) {
        self.live += 1;
        self.live_bytes += delivery.size();
        self.items.push_back(Waiting {
            delivery,
            paced: false,
        });
    }

    pub fn push_paced(&mut self, delivery: Delivery) {
        self.paced += 1;
        self.items.push_back(Waiting {
            delivery,
            paced: true,
        });
    }

    /// The next delivery's QoS and whether it is paced.
    pub fn front(&self) -> Option<(QoS, bool)> {
        self.items.front().map(|w| (w.delivery.qos, w.paced))
    }

    pub fn pop(&mut self) -> Option<Delivery> {
        let w = self.items.pop_front()?;
        if w.paced {
            self.paced -= 1;
        } else {
            self.live -= 1;
            self.live_bytes = self.live_bytes.saturating_sub(w.delivery.size());
        }
        if self.items.is_empty() && self.items.capacity() > 1024 {
            self.items = VecDeque::new();
        }
        Some(w.delivery)
    }

    /// Empties the queue; returns its QoS 1/2 deliveries (kept by a persistent session).
    pub fn take_qos12(&mut self) -> Vec<Delivery> {
        let out = std::mem::take(&mut self.items)
            .into_iter()
            .map(|w| w.delivery)
            .filter(|d| d.qos != QoS::AtMostOnce)
            .collect();
        *self = Queue::default();
        out
    }
}
