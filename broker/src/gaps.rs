//! Detects messages the router dropped for a subscriber that fell behind its commit log.
//!
//! rumqttd keeps a bounded log per subscribed filter; a subscriber whose read cursor falls
//! off the oldest segment silently jumps forward. Every forwarded message carries its
//! absolute offset in the filter's log, so a jump shows up as a gap between consecutive
//! offsets of one filter. The filter is found by matching the topic against the
//! connection's (non-shared) filters; when several overlap, the one whose expected offset
//! fits is taken. The edge drains the router as fast as it can, so in practice drops happen
//! at the edge's own queue (counted there); this catches the rest.

use crate::topic::matches;

struct Cursor {
    filter: String,
    next: Option<u64>,
}

/// Per-connection offset tracking.
#[derive(Default)]
pub(crate) struct GapTracker {
    cursors: Vec<Cursor>,
}

impl GapTracker {
    pub fn add(&mut self, filter: &str) {
        if !self.cursors.iter().any(|c| c.filter == filter) {
            self.cursors.push(Cursor {
                filter: filter.to_string(),
                next: None,
            });
        }
    }

    pub fn remove(&mut self, filter: &str) {
        self.cursors.retain(|c| c.filter != filter);
    }

    /// Records a forwarded message; returns how many messages were skipped before it.
    pub fn observe(&mut self, topic: &[u8], offset: u64) -> u64 {
        let Ok(topic) = std::str::from_utf8(topic) else {
            return 0;
        };
        let mut uninitialized = None;
        let mut below: Option<(usize, u64)> = None;
        let mut any = None;
        for (i, c) in self.cursors.iter().enumerate() {
            if !matches(&c.filter, topic) {
                continue;
            }
            any.get_or_insert(i);
            match c.next {
                Some(next) if next == offset => {
                    self.cursors[i].next = Some(offset + 1);
                    return 0;
                }
                Some(next) if next < offset => {
                    if below.is_none_or(|(_, b)| next > b) {
                        below = Some((i, next));
                    }
                }
                Some(_) => {}
                None => {
                    uninitialized.get_or_insert(i);
                }
            }
        }
        let (index, lost) = match (uninitialized, below, any) {
            (Some(i), _, _) => (i, 0),
            (None, Some((i, next)), _) => (i, offset - next),
            (None, None, Some(i)) => (i, 0),
            (None, None, None) => return 0,
        };
        self.cursors[index].next = Some(offset + 1);
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_jump() {
        let mut g = GapTracker::default();
        g.add("a/#");
        assert_eq!(g.observe(b"a/b", 5), 0);
        assert_eq!(g.observe(b"a/b", 6), 0);
        assert_eq!(g.observe(b"a/b", 10), 3);
        assert_eq!(g.observe(b"x", 99), 0);
    }

    #[test]
    fn overlapping_filters_follow_their_own_offsets() {
        let mut g = GapTracker::default();
        g.add("a/#");
        g.add("a/b");
        assert_eq!(g.observe(b"a/b", 0), 0); // a/# log
        assert_eq!(g.observe(b"a/b", 0), 0); // a/b log
        assert_eq!(g.observe(b"a/b", 1), 0);
        assert_eq!(g.observe(b"a/b", 1), 0);
        assert_eq!(g.observe(b"a/c", 2), 0);
    }
}
