//! Per-connection index of router subscriptions: which of the client's filters a forwarded
//! message came from (for its delivery QoS), and whether the router skipped messages.
//!
//! The edge subscribes every filter at QoS 0 in the router and delivers QoS 1/2 itself, so
//! a forward carries no QoS of its own: the matching subscription's QoS applies. rumqttd
//! keeps a bounded log per filter; a subscriber whose cursor falls off the oldest segment
//! silently jumps forward. Every forward carries its absolute offset in the filter's log,
//! so a jump shows up as a gap between consecutive offsets of one filter (not counted for
//! shared subscriptions, whose cursor moves for the whole group). When several of the
//! client's filters match a topic, the one whose expected offset fits is taken.

use crate::topic::matches;
use crate::types::QoS;

struct Entry {
    /// The filter without any `$share/<group>/` prefix.
    filter: String,
    qos: QoS,
    shared: bool,
    next: Option<u64>,
}

/// What the index knows about one forwarded message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Observation {
    /// QoS of the subscription it was delivered for.
    pub qos: QoS,
    /// Messages the router skipped on that filter just before this one.
    pub lost: u64,
}

#[derive(Default)]
pub(crate) struct FilterIndex {
    entries: Vec<Entry>,
}

impl FilterIndex {
    /// Adds or updates a subscription.
    pub fn add(&mut self, filter: &str, qos: QoS, shared: bool) {
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.filter == filter && e.shared == shared)
        {
            e.qos = qos;
            return;
        }
        self.entries.push(Entry {
            filter: filter.to_string(),
            qos,
            shared,
            next: None,
        });
    }

    pub fn remove(&mut self, filter: &str, shared: bool) {
        self.entries
            .retain(|e| !(e.filter == filter && e.shared == shared));
    }

    /// Records a forwarded message with its log offset (if the router gave one).
    pub fn observe(&mut self, topic: &[u8], offset: Option<u64>) -> Observation {
        let none = Observation {
            qos: QoS::AtMostOnce,
            lost: 0,
        };
        let Ok(topic) = std::str::from_utf8(topic) else {
            return none;
        };
        if self.entries.len() == 1 {
            return self.settle(0, offset);
        }
        let mut uninitialized = None;
        let mut below: Option<(usize, u64)> = None;
        let mut any = None;
        for (i, e) in self.entries.iter().enumerate() {
            if !matches(&e.filter, topic) {
                continue;
            }
            any.get_or_insert(i);
            match (e.next, offset) {
                (Some(next), Some(o)) if next == o => return self.settle(i, offset),
                (Some(next), Some(o)) if next < o && below.is_none_or(|(_, b)| next > b) => {
                    below = Some((i, next));
                }
                (None, _) => {
                    uninitialized.get_or_insert(i);
                }
                _ => {}
            }
        }
        match uninitialized.or(below.map(|(i, _)| i)).or(any) {
            Some(i) => self.settle(i, offset),
            None => none,
        }
    }

    fn settle(&mut self, i: usize, offset: Option<u64>) -> Observation {
        let e = &mut self.entries[i];
        let lost = match (e.next, offset) {
            (Some(next), Some(o)) if o > next && !e.shared => o - next,
            _ => 0,
        };
        if let Some(o) = offset {
            e.next = Some(o + 1);
        }
        Observation { qos: e.qos, lost }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_jump_and_reports_qos() {
        let mut g = FilterIndex::default();
        g.add("a/#", QoS::AtLeastOnce, false);
        assert_eq!(g.observe(b"a/b", Some(5)).lost, 0);
        assert_eq!(g.observe(b"a/b", Some(6)).lost, 0);
        let o = g.observe(b"a/b", Some(10));
        assert_eq!((o.lost, o.qos), (3, QoS::AtLeastOnce));
    }

    #[test]
    fn overlapping_filters_follow_their_own_offsets() {
        let mut g = FilterIndex::default();
        g.add("a/#", QoS::AtMostOnce, false);
        g.add("a/b", QoS::ExactlyOnce, false);
        assert_eq!(g.observe(b"a/b", Some(0)).qos, QoS::AtMostOnce);
        assert_eq!(g.observe(b"a/b", Some(0)).qos, QoS::ExactlyOnce);
        assert_eq!(g.observe(b"a/b", Some(1)).lost, 0);
        assert_eq!(g.observe(b"a/b", Some(1)).lost, 0);
        assert_eq!(
            g.observe(b"a/c", Some(2)),
            Observation {
                qos: QoS::AtMostOnce,
                lost: 0
            }
        );
        assert_eq!(g.observe(b"x", Some(9)).qos, QoS::AtMostOnce);
    }

    #[test]
    fn shared_filters_never_count_gaps() {
        let mut g = FilterIndex::default();
        g.add("s/+", QoS::AtLeastOnce, true);
        g.observe(b"s/1", Some(0));
        assert_eq!(g.observe(b"s/1", Some(7)).lost, 0);
    }
}
