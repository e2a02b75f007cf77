//! Retained messages: one per topic, in a trie of topic levels so a new subscription finds
//! the ones its filter matches without looking at the others.
//!
//! A retained publish with a payload replaces the topic's message; an empty *retained*
//! publish deletes it; nothing else touches it. The store is bounded: at most
//! `max_messages` messages and `max_bytes` bytes in all, and `max_bytes_per_client` bytes
//! stored by one client; a retained publish over a bound is still delivered live but not
//! stored (counted, and refused with reason 0x97 "quota exceeded" for MQTT 5 QoS 1/2).
//! When persistence is on, changed topics are remembered until the writer has saved them
//! (at most one entry per topic changed since the last save).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::router::publication::Publication;

/// Bounds of the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetainedLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
    pub max_bytes_per_client: usize,
}

struct Entry {
    publication: Arc<Publication>,
    /// The client that stored it (for its quota).
    owner: Arc<str>,
}

#[derive(Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    entry: Option<Entry>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.entry.is_none()
    }
}

/// Why a retained message was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    TooMany,
    TooLarge,
    ClientQuota,
    /// (Restored from disk only) its message expiry passed while the broker was down.
    Expired,
}

pub(crate) struct RetainedStore {
    root: Node,
    limits: RetainedLimits,
    count: usize,
    bytes: usize,
    per_client: HashMap<Arc<str>, usize>,
    /// Topics changed since the last save (kept only when persistence is on).
    dirty: HashSet<String>,
    track_changes: bool,
}

fn size(p: &Publication) -> usize {
    p.message.topic.len() + p.message.payload.len()
}

impl RetainedStore {
    pub fn new(limits: RetainedLimits) -> RetainedStore {
        RetainedStore {
            root: Node::default(),
            limits,
            count: 0,
            bytes: 0,
            per_client: HashMap::new(),
            dirty: HashSet::new(),
            track_changes: false,
        }
    }

    /// Remember changed topics for the persistence writer from now on.
    pub fn track_changes(&mut self) {
        self.track_changes = true;
    }

    fn changed(&mut self, topic: &str) {
        if self.track_changes {
            self.dirty.insert(topic.to_string());
        }
    }

    /// Topics changed since the last call (to save).
    pub fn take_changed(&mut self) -> Vec<String> {
        let out = self.dirty.drain().collect();
        if self.dirty.capacity() > 1024 {
            self.dirty.shrink_to_fit();
        }
        out
    }

    /// Topics whose save failed (to try again).
    pub fn mark_changed(&mut self, topics: Vec<String>) {
        self.dirty.extend(topics);
    }

    /// A topic's message and the client that stored it.
    pub fn entry(&self, topic: &str) -> Option<(Arc<Publication>, Arc<str>)> {
        self.get(topic)
            .map(|e| (e.publication.clone(), e.owner.clone()))
    }

    /// Applies a publish that has the retain flag set, by `owner`.
    pub fn apply(&mut self, p: &Arc<Publication>, owner: &str) -> Result<(), Refused> {
        let topic = &p.message.topic;
        if p.message.payload.is_empty() {
            if self.remove(topic).is_some() {
                self.changed(topic);
            }
            return Ok(());
        }
        self.check(p, owner)?;
        self.remove(topic);
        self.insert(p.clone(), owner.into());
        self.changed(topic);
        Ok(())
    }

    /// Stores a message restored from disk (each topic once, into a store that does not
    /// hold it yet), if it is within the limits (which may have shrunk since it was
    /// saved) and unexpired.
    pub fn restore(&mut self, p: Arc<Publication>, owner: Arc<str>) -> Result<(), Refused> {
        if p.remaining().is_err() {
            return Err(Refused::Expired);
        }
        let new = size(&p);
        if self.count >= self.limits.max_messages {
            return Err(Refused::TooMany);
        }
        if self.bytes + new > self.limits.max_bytes {
            return Err(Refused::TooLarge);
        }
        if self.per_client.get(&owner).copied().unwrap_or(0) + new
            > self.limits.max_bytes_per_client
        {
            return Err(Refused::ClientQuota);
        }
        self.insert(p, owner);
        Ok(())
    }

    /// Would storing `p` for `owner` stay within the limits?
    fn check(&self, p: &Publication, owner: &str) -> Result<(), Refused> {
        let topic = &p.message.topic;
        let new = size(p);
        let old = self
            .get(topic)
            .map(|e| (size(&e.publication), e.owner.clone()));
        let (old_bytes, old_owner) = match &old {
            Some((b, o)) => (*b, Some(o.clone())),
            None => (0, None),
        };
        let owner_bytes = self.per_client.get(owner).copied().unwrap_or(0)
            - if old_owner.as_deref() == Some(owner) {
                old_bytes
            } else {
                0
            };
        if old.is_none() && self.count >= self.limits.max_messages {
            return Err(Refused::TooMany);
        }
        if self.bytes - old_bytes + new > self.limits.max_bytes {
            return Err(Refused::TooLarge);
        }
        if owner_bytes + new > self.limits.max_bytes_per_client {
            return Err(Refused::ClientQuota);
        }
        Ok(())
    }

    fn get(&self, topic: &str) -> Option<&Entry> {
        let mut node = &self.root;
        for level in topic.split('/') {
            node = node.children.get(level)?;
        }
        node.entry.as_ref()
    }

    /// Stores without checks (a message that passed them).
    fn insert(&mut self, publication: Arc<Publication>, owner: Arc<str>) {
        let mut node = &mut self.root;
        for level in publication.message.topic.split('/') {
            // Look up before inserting: only a new level allocates its name.
            if !node.children.contains_key(level) {
                node.children.insert(level.into(), Node::default());
            }
            node = node.children.get_mut(level).expect("just inserted");
        }
        let bytes = size(&publication);
        if let Some(old) = node.entry.replace(Entry {
            publication,
            owner: owner.clone(),
        }) {
            // Only reached by restore of a duplicate; keep the totals right.
            self.account(&old.owner, size(&old.publication), false);
        }
        self.account(&owner, bytes, true);
    }

    fn account(&mut self, owner: &Arc<str>, bytes: usize, add: bool) {
        let per = self.per_client.entry(owner.clone()).or_default();
        if add {
            self.count += 1;
            self.bytes += bytes;
            *per += bytes;
        } else {
            self.count -= 1;
            self.bytes -= bytes;
            *per -= bytes;
            if *per == 0 {
                self.per_client.remove(owner);
            }
        }
    }

    /// Removes a topic's message.
    pub fn remove(&mut self, topic: &str) -> Option<Arc<Publication>> {
        let levels: Vec<&str> = topic.split('/').collect();
        let entry = remove_in(&mut self.root, &levels)?;
        self.account(&entry.owner, size(&entry.publication), false);
        Some(entry.publication)
    }

    /// Every unexpired message whose topic matches `filter` (expired ones are removed).
    pub fn matching(&mut self, filter: &str) -> Vec<Arc<Publication>> {
        let mut out = Vec::new();
        let levels: Vec<&str> = filter.split('/').collect();
        collect(&self.root, &levels, true, &mut out);
        let mut expired = Vec::new();
        out.retain(|p| {
            let live = p.remaining().is_ok();
            if !live {
                expired.push(p.message.topic.clone());
            }
            live
        });
        for topic in expired {
            self.remove(&topic);
            self.changed(&topic);
        }
        out
    }

    pub fn len(&self) -> usize {
        self.count
    }
}

fn remove_in(node: &mut Node, levels: &[&str]) -> Option<Entry> {
    let Some((level, rest)) = levels.split_first() else {
        return node.entry.take();
    };
    let child = node.children.get_mut(*level)?;
    let out = remove_in(child, rest);
    if child.is_empty() {
        node.children.remove(*level);
        if node.children.capacity() > 16 && node.children.len() < node.children.capacity() / 4 {
            node.children.shrink_to_fit();
        }
    }
    out
}

/// Messages under `node` matching the filter `levels`; `top` is the first level (where
/// wildcards do not match `$` topics).
fn collect(node: &Node, levels: &[&str], top: bool, out: &mut Vec<Arc<Publication>>) {
    let Some((level, rest)) = levels.split_first() else {
        if let Some(e) = &node.entry {
            out.push(e.publication.clone());
        }
        return;
    };
    match *level {
        "#" => {
            if let Some(e) = &node.entry {
                if !top {
                    out.push(e.publication.clone());
                }
            }
            for (name, child) in &node.children {
                if !(top && name.starts_with('$')) {
                    all(child, out);
                }
            }
        }
        "+" => {
            for (name, child) in &node.children {
                if !(top && name.starts_with('$')) {
                    collect(child, rest, false, out);
                }
            }
        }
        exact => {
            if let Some(child) = node.children.get(exact) {
                collect(child, rest, false, out);
            }
        }
    }
}

fn all(node: &Node, out: &mut Vec<Arc<Publication>>) {
    if let Some(e) = &node.entry {
        out.push(e.publication.clone());
    }
    for child in node.children.values() {
        all(child, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Message;

    fn store() -> RetainedStore {
        RetainedStore::new(RetainedLimits {
            max_messages: 100,
            max_bytes: 1000,
            max_bytes_per_client: 300,
        })
    }

    fn retained(topic: &str, payload: &str) -> Arc<Publication> {
        Publication::new(Message::new(topic, payload.to_string()).retained(true), 0)
    }

    fn topics(s: &mut RetainedStore, filter: &str) -> Vec<String> {
        let mut t: Vec<String> = s
            .matching(filter)
            .iter()
            .map(|p| p.message.topic.clone())
            .collect();
        t.sort();
        t
    }

    #[test]
    fn empty_retained_deletes_only_its_topic_and_filters_match_by_level() {
        let mut s = store();
        for t in ["a/1", "a/2", "a", "a/b/c", "$SYS/x", "b"] {
            s.apply(&retained(t, "x"), "c").unwrap();
        }
        assert_eq!(topics(&mut s, "a/+"), vec!["a/1", "a/2"]);
        assert_eq!(topics(&mut s, "a/#"), vec!["a", "a/1", "a/2", "a/b/c"]);
        assert_eq!(
            topics(&mut s, "#").len(),
            5,
            "no $ topic for a leading wildcard"
        );
        assert_eq!(topics(&mut s, "$SYS/#"), vec!["$SYS/x"]);
        s.apply(&retained("a/1", ""), "c").unwrap();
        assert_eq!(topics(&mut s, "a/+"), vec!["a/2"]);
        assert_eq!(s.len(), 5);
    }

    #[test]
    fn bounds_by_count_bytes_and_client() {
        let mut s = store();
        let big = "x".repeat(200);
        s.apply(&retained("p/1", &big), "a").unwrap();
        assert_eq!(
            s.apply(&retained("p/2", &big), "a"),
            Err(Refused::ClientQuota)
        );
        // Replacing one's own message counts its new size only.
        s.apply(&retained("p/1", &big), "a").unwrap();
        for i in 0..3 {
            s.apply(&retained(&format!("q/{i}"), &big), &format!("c{i}"))
                .unwrap();
        }
        assert_eq!(s.apply(&retained("q/9", &big), "z"), Err(Refused::TooLarge));
        assert!(s.bytes <= 1000);
        let mut s = store();
        for i in 0..100 {
            s.apply(&retained(&format!("n/{i}"), "x"), &format!("c{i}"))
                .unwrap();
        }
        assert_eq!(s.apply(&retained("n/x", "x"), "c"), Err(Refused::TooMany));
        s.apply(&retained("n/5", "y"), "c5").unwrap();
    }

    #[test]
    fn expired_messages_are_not_delivered() {
        let mut s = store();
        let props = crate::types::Properties {
            message_expiry_interval: Some(0),
            ..Default::default()
        };
        let m = Message::new("t", "x").retained(true).with_properties(props);
        s.apply(&Publication::new(m, 0), "c").unwrap();
        assert!(s.matching("t").is_empty());
        assert_eq!(s.len(), 0);
    }
}
