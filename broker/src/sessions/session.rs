//! A client's session: its subscriptions and where its messages go. While the client is
//! connected they go to its endpoint; while a persistent session's client is away, QoS 1/2
//! messages wait in a bounded queue (QoS 0 ones are dropped, as mosquitto does by default)
//! and are delivered when it comes back, after what was in flight.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::endpoint::{Endpoint, Touched};
use crate::hooks::{ClientInfo, Hooks};
use crate::metrics::Metrics;
use crate::router::publication::Delivery;
use crate::router::subscription::{Filter, SubOptions};
use crate::types::QoS;

/// Bounds of a persistent session's offline queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub messages: usize,
    pub bytes: usize,
}

pub(crate) struct Session {
    /// Unique among the broker's sessions, never reused.
    pub id: u64,
    /// The registry's name for it: `ClientInfo::session_key`.
    pub key: String,
    state: Mutex<State>,
}

pub(crate) struct State {
    pub endpoint: Option<Arc<Endpoint>>,
    /// Who the client is (for the delivery hooks), as of its last connection.
    pub info: ClientInfo,
    /// Filter as written -> (filter, options).
    subs: HashMap<String, (Filter, SubOptions)>,
    pub persistent: bool,
    /// How long the session outlives its connection.
    pub expiry: Duration,
    /// When the client went away (persistent sessions only).
    offline_since: Option<Instant>,
    /// QoS 1/2 deliveries that were in flight when the client went away (re-sent with DUP).
    in_flight: Vec<Delivery>,
    queue: VecDeque<Delivery>,
    queue_bytes: usize,
    limits: QueueLimits,
    /// Counts changes to what persistence saves (subscriptions, waiting messages,
    /// presence), so the writer saves only sessions that changed.
    revision: u64,
}

impl Session {
    pub fn new(
        id: u64,
        info: ClientInfo,
        persistent: bool,
        expiry: Duration,
        limits: QueueLimits,
    ) -> Session {
        Session {
            id,
            key: info.session_key(),
            state: Mutex::new(State {
                endpoint: None,
                info,
                subs: HashMap::new(),
                persistent,
                expiry,
                offline_since: None,
                in_flight: Vec::new(),
                queue: VecDeque::new(),
                queue_bytes: 0,
                limits,
                revision: 0,
            }),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Delivers to the client, or queues for a persistent session's absent client. The
    /// delivery hooks decide first. False: not delivered.
    pub fn deliver(
        &self,
        d: Delivery,
        hooks: &dyn Hooks,
        metrics: &Metrics,
        touched: &mut Touched,
    ) -> bool {
        let topic = &d.publication.message.topic;
        let endpoint = {
            let mut state = self.lock();
            if !hooks.authorize_delivery(&state.info, topic) {
                return false;
            }
            let m = &d.publication.message;
            let correlation = m
                .properties
                .as_ref()
                .and_then(|p| p.correlation_data.as_deref());
            hooks.observe_delivery(&state.info, topic, &m.payload, correlation);
            match &state.endpoint {
                Some(e) => e.clone(),
                None => return state.queue(d, metrics),
            }
        };
        endpoint.offer(d, touched)
    }

    /// Is the client connected and able to take more? (Shared groups prefer such members.)
    pub fn ready(&self) -> bool {
        self.lock()
            .endpoint
            .as_ref()
            .is_some_and(|e| !e.is_full() && !e.is_closed())
    }
}

impl State {
    /// Queues for the absent client: QoS 1/2 of a persistent session, within its bounds.
    fn queue(&mut self, d: Delivery, metrics: &Metrics) -> bool {
        if !self.persistent || d.qos == QoS::AtMostOnce {
            return false;
        }
        let size = d.size();
        if self.queue.len() >= self.limits.messages || self.queue_bytes + size > self.limits.bytes {
            Metrics::inc(&metrics.dropped_offline_queue);
            return false;
        }
        self.queue_bytes += size;
        self.queue.push_back(d);
        self.revision += 1;
        true
    }

    /// The client came back: what waited for it, (in flight when it left, queued since).
    pub fn take_waiting(&mut self) -> (Vec<Delivery>, Vec<Delivery>) {
        self.queue_bytes = 0;
        self.offline_since = None;
        self.revision += 1;
        (
            std::mem::take(&mut self.in_flight),
            self.queue.drain(..).collect(),
        )
    }

    /// What the client had not acknowledged when it left: in flight (re-sent with DUP)
    /// and queued (sent first when it returns).
    pub fn keep_unacknowledged(&mut self, in_flight: Vec<Delivery>, queued: Vec<Delivery>) {
        self.in_flight = in_flight;
        for d in queued.into_iter().rev() {
            self.queue_bytes += d.size();
            self.queue.push_front(d);
        }
        self.revision += 1;
    }

    /// The client went away (or, for a session restored from disk, was away since `since`).
    pub fn went_offline(&mut self, since: Instant) {
        self.endpoint = None;
        if self.persistent {
            self.offline_since = Some(since);
            self.revision += 1;
        }
    }

    /// When the client went away, if it is away.
    pub fn offline_since(&self) -> Option<Instant> {
        self.offline_since.filter(|_| self.endpoint.is_none())
    }

    pub fn add_sub(&mut self, filter: Filter, opts: SubOptions) {
        self.subs.insert(filter.written.clone(), (filter, opts));
        self.revision += 1;
    }

    pub fn remove_sub(&mut self, written: &str) -> Option<Filter> {
        let (filter, _) = self.subs.remove(written)?;
        self.revision += 1;
        Some(filter)
    }

    /// Removes every subscription (the session ended).
    pub fn take_subs(&mut self) -> Vec<Filter> {
        self.revision += 1;
        self.subs.drain().map(|(_, (f, _))| f).collect()
    }

    /// (number of subscriptions, whether one has this filter)
    pub fn sub_count(&self, written: &str) -> (usize, bool) {
        (self.subs.len(), self.subs.contains_key(written))
    }

    pub fn subs(&self) -> impl Iterator<Item = &(Filter, SubOptions)> {
        self.subs.values()
    }

    /// What waits for the absent client: (in flight when it left, queued since).
    pub fn waiting(&self) -> (&[Delivery], impl Iterator<Item = &Delivery>) {
        (&self.in_flight, self.queue.iter())
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }
}
