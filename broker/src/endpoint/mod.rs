//! Where one connected client's deliveries go: a network connection's outbox, or an
//! in-process client's sink or queue. The router delivers to endpoints only; every kind
//! keeps the same rules.
//!
//! A gate holds live deliveries while a subscription opens (or a persistent session's
//! queue is handed over), so what must come first (retained messages, queued messages)
//! does, and nothing is lost or reordered in between.

pub(crate) mod local;
pub(crate) mod outbox;
mod queue;

use std::sync::{Arc, Mutex, MutexGuard};

use crate::router::publication::Delivery;

use local::LocalOutlet;
use outbox::Outbox;

/// Where deliveries go.
pub(crate) enum Outlet {
    Net(Arc<Outbox>),
    Local(LocalOutlet),
}

struct Gate {
    holding: bool,
    held: Vec<Delivery>,
    closed: bool,
}

/// One connected client.
pub(crate) struct Endpoint {
    pub outlet: Outlet,
    gate: Mutex<Gate>,
}

/// Network outboxes written to during a batch, flushed once at its end.
#[derive(Default)]
pub(crate) struct Touched(Vec<Arc<Outbox>>);

impl Touched {
    fn add(&mut self, o: &Arc<Outbox>) {
        if !self.0.iter().any(|t| Arc::ptr_eq(t, o)) {
            self.0.push(o.clone());
        }
    }

    /// Writes every touched outbox (what a socket does not take is left to its task).
    pub fn flush(&mut self) {
        for o in self.0.drain(..) {
            o.flush_or_wake();
        }
    }

    /// `flush`, then waits (at most `max_wait`) for the subscribers that are still
    /// congested: a publisher slows down to its slowest subscriber's pace instead of making
    /// it lose messages, but a stuck subscriber can only slow it, never stop it.
    pub async fn flush_and_pace(&mut self, max_wait: std::time::Duration) {
        let congested: Vec<Arc<Outbox>> = self
            .0
            .drain(..)
            .filter(|o| {
                o.flush_or_wake();
                o.congested()
            })
            .collect();
        if congested.is_empty() {
            return;
        }
        let until = tokio::time::Instant::now() + max_wait;
        for o in congested {
            o.wait_drained(until).await;
        }
    }
}

impl Drop for Touched {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Endpoint {
    pub fn new(outlet: Outlet) -> Endpoint {
        Endpoint {
            outlet,
            gate: Mutex::new(Gate {
                holding: false,
                held: Vec::new(),
                closed: false,
            }),
        }
    }

    fn gate(&self) -> MutexGuard<'_, Gate> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers, or holds the delivery while a subscription opens. False: dropped.
    pub fn offer(&self, d: Delivery, touched: &mut Touched) -> bool {
        {
            let mut gate = self.gate();
            if gate.closed {
                return false;
            }
            if gate.holding {
                gate.held.push(d);
                return true;
            }
        }
        self.deliver(d, touched)
    }

    fn deliver(&self, d: Delivery, touched: &mut Touched) -> bool {
        match &self.outlet {
            Outlet::Net(o) => {
                let queued = o.deliver(d);
                if queued {
                    touched.add(o);
                }
                queued
            }
            Outlet::Local(l) => l.deliver(d),
        }
    }

    /// Starts holding live deliveries (one subscription opens at a time per client).
    pub fn hold(&self) {
        self.gate().holding = true;
    }

    /// Delivers `first` (paced: all of it arrives, as fast as the client takes it), then
    /// what was held meanwhile (and what arrives while handing those over), in order;
    /// then stops holding.
    pub fn release(&self, first: Vec<Delivery>, touched: &mut Touched) {
        let mut batch = match &self.outlet {
            Outlet::Net(o) if !first.is_empty() => {
                o.deliver_paced(first);
                touched.add(o);
                Vec::new()
            }
            _ => first,
        };
        batch.append(&mut self.gate().held);
        loop {
            for d in batch.drain(..) {
                self.deliver(d, touched);
            }
            let mut gate = self.gate();
            if gate.held.is_empty() {
                gate.holding = false;
                return;
            }
            std::mem::swap(&mut batch, &mut gate.held);
        }
    }

    /// Can it take nothing more right now? (Shared groups pass it over.)
    pub fn is_full(&self) -> bool {
        match &self.outlet {
            Outlet::Net(o) => o.is_full(),
            Outlet::Local(l) => l.is_full(),
        }
    }

    /// Nothing more is delivered.
    pub fn close(&self) {
        {
            let mut gate = self.gate();
            gate.closed = true;
            gate.held.clear();
        }
        match &self.outlet {
            Outlet::Net(o) => o.close(),
            Outlet::Local(l) => l.close(),
        }
    }

    pub fn is_closed(&self) -> bool {
        self.gate().closed
    }
}
