//! The subscription index: topic filters in a trie of topic levels, so a publish finds its
//! subscribers by walking its own levels (cost grows with the topic's depth and the
//! subscribers it has, never with how many filters or topics exist), and a filter's node
//! disappears when its last subscriber leaves. Nothing is remembered about topics that
//! were only published to.

use std::collections::HashMap;

/// A trie of filters, each with the values subscribed under it.
pub(crate) struct Trie<V> {
    root: Node<V>,
    filters: usize,
}

struct Node<V> {
    children: HashMap<Box<str>, Node<V>>,
    /// The `+` child.
    plus: Option<Box<Node<V>>>,
    /// Values of the filter ending with `#` at this level.
    hash: Vec<V>,
    /// Values of the filter ending exactly here.
    here: Vec<V>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            plus: None,
            hash: Vec::new(),
            here: Vec::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_empty()
            && self.here.is_empty()
    }
}

impl<V> Default for Trie<V> {
    fn default() -> Self {
        Trie {
            root: Node::default(),
            filters: 0,
        }
    }
}

impl<V> Trie<V> {
    /// The values stored under `filter` (made if absent): the caller adds or edits one.
    pub fn entry(&mut self, filter: &str) -> &mut Vec<V> {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                if node.hash.is_empty() {
                    self.filters += 1;
                }
                return &mut node.hash;
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
        }
        if node.here.is_empty() {
            self.filters += 1;
        }
        &mut node.here
    }

    /// Removes the values under `filter` that `drop` selects; prunes nodes left empty.
    /// Returns how many were removed.
    pub fn remove(&mut self, filter: &str, drop: impl FnMut(&V) -> bool) -> usize {
        let levels: Vec<&str> = filter.split('/').collect();
        let (removed, emptied) = remove_in(&mut self.root, &levels, drop);
        if emptied {
            self.filters -= 1;
        }
        removed
    }

    /// Calls `f` with every value whose filter matches `topic`. A filter starting with a
    /// wildcard never matches a topic starting with `$` (MQTT 4.7.2).
    pub fn matches<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a V)) {
        let levels: Vec<&str> = topic.split('/').collect();
        let system = topic.starts_with('$');
        walk(&self.root, &levels, !system, &mut f);
    }

    /// Distinct filters stored.
    pub fn len(&self) -> usize {
        self.filters
    }
}

fn walk<'a, V>(node: &'a Node<V>, levels: &[&str], wildcards: bool, f: &mut impl FnMut(&'a V)) {
    if wildcards {
        node.hash.iter().for_each(&mut *f);
    }
    let Some((level, rest)) = levels.split_first() else {
        node.here.iter().for_each(f);
        return;
    };
    if let Some(child) = node.children.get(*level) {
        walk(child, rest, true, f);
    }
    if wildcards {
        if let Some(plus) = &node.plus {
            walk(plus, rest, true, f);
        }
    }
}

/// Removes from the node of `levels`; returns (removed, the filter's list became empty).
fn remove_in<V>(
    node: &mut Node<V>,
    levels: &[&str],
    mut drop: impl FnMut(&V) -> bool,
) -> (usize, bool) {
    let Some((level, rest)) = levels.split_first() else {
        let before = node.here.len();
        node.here.retain(|v| !drop(v));
        let removed = before - node.here.len();
        return (removed, removed > 0 && node.here.is_empty());
    };
    if *level == "#" && rest.is_empty() {
        let before = node.hash.len();
        node.hash.retain(|v| !drop(v));
        let removed = before - node.hash.len();
        shrink(&mut node.hash);
        return (removed, removed > 0 && node.hash.is_empty());
    }
    if *level == "+" {
        let Some(plus) = node.plus.as_mut() else {
            return (0, false);
        };
        let out = remove_in(plus, rest, drop);
        if plus.is_empty() {
            node.plus = None;
        }
        return out;
    }
    let Some(child) = node.children.get_mut(*level) else {
        return (0, false);
    };
    let out = remove_in(child, rest, drop);
    if child.is_empty() {
        node.children.remove(*level);
        // A map that held many filters keeps its memory unless told otherwise.
        if node.children.capacity() > 16 && node.children.len() < node.children.capacity() / 4 {
            node.children.shrink_to_fit();
        }
    }
    out
}

fn shrink<V>(v: &mut Vec<V>) {
    if v.capacity() > 8 && v.len() < v.capacity() / 4 {
        v.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(t: &Trie<u32>, topic: &str) -> Vec<u32> {
        let mut out = Vec::new();
        t.matches(topic, |v| out.push(*v));
        out.sort_unstable();
        out
    }

    #[test]
    fn wildcards_match_by_level() {
        let mut t = Trie::default();
        for (i, f) in ["a/b", "a/+", "a/#", "#", "+/b", "a/b/c", "+", "/a"]
            .iter()
            .enumerate()
        {
            t.entry(f).push(i as u32);
        }
        assert_eq!(matching(&t, "a/b"), vec![0, 1, 2, 3, 4]);
        assert_eq!(
            matching(&t, "a"),
            vec![2, 3, 6],
            "a/# matches its parent level"
        );
        assert_eq!(matching(&t, "a/b/c"), vec![2, 3, 5]);
        assert_eq!(matching(&t, "/a"), vec![3, 7]);
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn system_topics_only_match_filters_that_name_them() {
        let mut t = Trie::default();
        t.entry("#").push(1);
        t.entry("+/broker/uptime").push(2);
        t.entry("$SYS/#").push(3);
        t.entry("$SYS/+/uptime").push(4);
        assert_eq!(matching(&t, "$SYS/broker/uptime"), vec![3, 4]);
    }

    #[test]
    fn the_last_subscriber_leaving_frees_the_filter() {
        let mut t = Trie::default();
        for i in 0..10_000u32 {
            t.entry(&format!("devices/{i}/state")).push(i);
            t.entry(&format!("devices/+/x{i}/#")).push(i);
        }
        assert_eq!(t.len(), 20_000);
        for i in 0..10_000u32 {
            assert_eq!(t.remove(&format!("devices/{i}/state"), |v| *v == i), 1);
            assert_eq!(t.remove(&format!("devices/+/x{i}/#"), |v| *v == i), 1);
        }
        assert_eq!(t.len(), 0);
        assert!(t.root.is_empty(), "every node pruned");
        assert_eq!(t.remove("never/was", |_| true), 0);
    }

    #[test]
    fn several_values_under_one_filter() {
        let mut t = Trie::default();
        t.entry("a/+").push(1);
        t.entry("a/+").push(2);
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove("a/+", |v| *v == 1), 1);
        assert_eq!(matching(&t, "a/x"), vec![2]);
        assert_eq!(t.len(), 1);
        t.remove("a/+", |_| true);
        assert_eq!(t.len(), 0);
    }
}
