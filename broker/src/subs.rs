//! The edge's record of one client's subscriptions.
//!
//! The router keeps its own, but the edge needs to know them to answer UNSUBSCRIBE
//! correctly (rumqttd sends no UNSUBACK for an unknown filter and one per filter
//! otherwise), to apply retain-handling options, and to attribute forwarded messages to a
//! filter when counting router-side drops.

use std::collections::HashMap;

use crate::types::QoS;

/// Options of one subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SubOpts {
    pub qos: QoS,
    /// `Some(group)` for `$share/<group>/<filter>`.
    pub shared: Option<String>,
    pub subscription_id: Option<usize>,
}

/// Filter (as the client wrote it) -> options.
#[derive(Clone, Debug, Default)]
pub(crate) struct Subscriptions {
    map: HashMap<String, SubOpts>,
}

impl Subscriptions {
    /// Records a subscription; returns true if the filter is new for this client.
    pub fn insert(&mut self, filter: &str, opts: SubOpts) -> bool {
        self.map.insert(filter.to_string(), opts).is_none()
    }

    pub fn remove(&mut self, filter: &str) -> Option<SubOpts> {
        self.map.remove(filter)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &SubOpts)> {
        self.map.iter()
    }
}
