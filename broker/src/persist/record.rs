//! What persistence writes: one record per retained message (keyed by topic) and per
//! persistent session (keyed by client id), encoded with postcard.
//!
//! Times are stored as Unix milliseconds: a message's expiry and a session's expiry keep
//! counting while the broker is down, and are measured again from the clock at load.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::router::publication::{Delivery, Publication};
use crate::router::subscription::SubOptions;
use crate::sessions::SessionState as State;
use crate::types::{Message, Protocol, QoS};

/// The on-disk format; a store written in another format is refused, not misread.
pub(crate) const FORMAT: u32 = 1;

/// Now, as Unix milliseconds.
pub(crate) fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The Unix time of an instant in the past.
fn unix_ms_of(then: Instant, now_ms: u64) -> u64 {
    now_ms.saturating_sub(then.elapsed().as_millis() as u64)
}

/// The instant of a Unix time in the past (clamped to now for times in the future).
fn instant_of(ms: u64, now_ms: u64) -> Instant {
    let age = Duration::from_millis(now_ms.saturating_sub(ms));
    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
}

/// A message with the time the broker received it.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredMessage {
    message: Message,
    received_ms: u64,
}

impl StoredMessage {
    pub fn of(p: &Publication, now_ms: u64) -> StoredMessage {
        StoredMessage {
            message: p.message.clone(),
            received_ms: unix_ms_of(p.received, now_ms),
        }
    }

    pub fn restore(self, now_ms: u64) -> Arc<Publication> {
        Publication::received_at(self.message, instant_of(self.received_ms, now_ms))
    }
}

/// A retained message and the client whose quota it counts against.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredRetained {
    pub message: StoredMessage,
    pub owner: String,
}

/// A delivery waiting for an absent client.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredDelivery {
    message: StoredMessage,
    qos: QoS,
    retain: bool,
    subscription_ids: Vec<usize>,
}

impl StoredDelivery {
    fn of(d: &Delivery, now_ms: u64) -> StoredDelivery {
        StoredDelivery {
            message: StoredMessage::of(&d.publication, now_ms),
            qos: d.qos,
            retain: d.retain,
            subscription_ids: d.subscription_ids.clone(),
        }
    }

    pub fn restore(self, now_ms: u64) -> Delivery {
        Delivery {
            publication: self.message.restore(now_ms),
            qos: self.qos,
            retain: self.retain,
            subscription_ids: self.subscription_ids,
        }
    }
}

/// A persistent session: who, how long it lasts, what it subscribed to, what waits.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredSession {
    pub client_id: String,
    pub username: Option<String>,
    pub protocol: Protocol,
    pub expiry_secs: u64,
    /// When the client went away; a session saved while connected counts as away from
    /// the moment it was saved.
    pub offline_since_ms: u64,
    /// (filter as written, options)
    pub subs: Vec<(String, SubOptions)>,
    pub in_flight: Vec<StoredDelivery>,
    pub queued: Vec<StoredDelivery>,
}

impl StoredSession {
    pub fn of(state: &State, now_ms: u64) -> StoredSession {
        let (in_flight, queued) = state.waiting();
        StoredSession {
            client_id: state.info.client_id.clone(),
            username: state.info.username.clone(),
            protocol: state.info.protocol,
            expiry_secs: state.expiry.as_secs(),
            offline_since_ms: state
                .offline_since()
                .map_or(now_ms, |t| unix_ms_of(t, now_ms)),
            subs: state
                .subs()
                .map(|(f, o)| (f.written.clone(), o.clone()))
                .collect(),
            in_flight: in_flight
                .iter()
                .map(|d| StoredDelivery::of(d, now_ms))
                .collect(),
            queued: queued.map(|d| StoredDelivery::of(d, now_ms)).collect(),
        }
    }

    pub fn offline_since(&self, now_ms: u64) -> Instant {
        instant_of(self.offline_since_ms, now_ms)
    }
}

/// Encodes a record.
pub(crate) fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    postcard::to_stdvec(record).expect("records always serialize")
}

/// Decodes a record.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}
