//! A SUBACK being assembled: the codes of a SUBSCRIBE's filters as the router answers
//! them one by one, with the retained messages each filter must deliver after it.

use std::collections::VecDeque;

use crate::retained::RetainedMessage;
use crate::types::QoS;

/// A filter waiting for the router's answer.
pub(crate) struct Slot {
    pub index: usize,
    pub subscription_id: Option<usize>,
    pub retained: Vec<RetainedMessage>,
    pub granted: QoS,
}

/// A client SUBACK being assembled.
pub(crate) struct PendingSub {
    pub codes: Vec<u8>,
    pub waiting: VecDeque<Slot>,
    pub done: Vec<Slot>,
}

/// Where a retained snapshot returned by `BrokerState::submit` belongs.
pub(crate) struct SnapshotTarget {
    pub pkid: u16,
    pub index: usize,
}
