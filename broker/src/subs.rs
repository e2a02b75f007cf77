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
    /// The filter without a `$share/<group>/` prefix.
    pub inner: String,
    /// The filter as given to the router (see `router_filter`).
    pub router_filter: String,
    pub subscription_id: Option<usize>,
}

/// The filter the router gets for a client's filter. rumqttd keys shared-subscription
/// groups by group name alone, so `$share/g/a` and `$share/g/b` would share one cursor
/// across two different logs; making the router's group name unique per (group, filter)
/// keeps them apart.
pub(crate) fn router_filter(group: Option<&str>, inner: &str) -> String {
    match group {
        None => inner.to_string(),
        Some(group) => format!("$share/{}~{}/{inner}", escape(group), escape(inner)),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '/' | '%' | '~' | '+' | '#' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_router_filters_are_unique_per_group_and_filter() {
        assert_eq!(router_filter(None, "a/b"), "a/b");
        let a = router_filter(Some("g"), "a/#");
        let b = router_filter(Some("g"), "b/#");
        assert_ne!(a, b);
        assert_eq!(a, "$share/g~a%2F%23/a/#");
        let (group, rest) = a.strip_prefix("$share/").unwrap().split_once('/').unwrap();
        assert!(!group.contains('/'));
        assert_eq!(rest, "a/#");
    }
}
