//! The broker's router: the subscription index and the one delivery path.
//!
//! A publish is routed on the publisher's own task: its topic is matched in the trie
//! (`trie`), each subscribing session gets one copy (with the highest QoS and every
//! subscription identifier among its matching subscriptions, at most the publish's QoS),
//! each shared group one member (`shared`), and the copy goes through the delivery hooks
//! to the session's endpoint (a network outbox or an in-process sink) or, for an absent
//! persistent client, its offline queue. Network outboxes touched are written at the end
//! of the publisher's batch. No thread hop, no per-topic state: memory follows the live
//! subscriptions only.

pub(crate) mod publication;
pub(crate) mod shared;
pub(crate) mod subscription;
mod trie;

use std::sync::{Arc, RwLock};

use crate::endpoint::Touched;
use crate::hooks::Hooks;
use crate::metrics::Metrics;
use crate::sessions::Session;
use crate::types::QoS;

use publication::{Delivery, Publication};
use shared::{Group, Groups};
use subscription::SubOptions;
use trie::Trie;

/// A session's subscription to one filter.
#[derive(Clone)]
pub(crate) struct Sub {
    pub session: Arc<Session>,
    pub opts: SubOptions,
}

/// What the trie holds under a filter.
enum Target {
    One(Sub),
    Group(Arc<Group>),
}

#[derive(Default)]
struct Index {
    trie: Trie<Target>,
    groups: Groups,
}

/// The subscribers of one publication, found under the index's read lock and served
/// after it is released.
#[derive(Default)]
pub(crate) struct Targets {
    ones: Vec<Sub>,
    groups: Vec<Arc<Group>>,
}

#[derive(Default)]
pub(crate) struct Router {
    index: RwLock<Index>,
}

impl Router {
    /// Subscribes `session` to `filter` (the part matched against topics), alone or in a
    /// shared group. Returns true if the subscription is new.
    pub fn subscribe(&self, sub: Sub, filter: &str, group: Option<&str>) -> bool {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        match group {
            None => {
                let entries = index.trie.entry(filter);
                let existing = entries.iter_mut().find_map(|t| match t {
                    Target::One(s) if s.session.id == sub.session.id => Some(s),
                    _ => None,
                });
                match existing {
                    Some(s) => {
                        *s = sub;
                        false
                    }
                    None => {
                        entries.push(Target::One(sub));
                        true
                    }
                }
            }
            Some(name) => {
                let key = shared::key(name, filter);
                let group = match index.groups.get(&key) {
                    Some(g) => g.clone(),
                    None => {
                        let g = Arc::new(Group::new());
                        index.groups.insert(key, g.clone());
                        index.trie.entry(filter).push(Target::Group(g.clone()));
                        g
                    }
                };
                group.join(sub)
            }
        }
    }

    /// Removes `session`'s subscription to `filter` (in `group`); the filter's node goes
    /// when its last subscriber does.
    pub fn unsubscribe(&self, session: u64, filter: &str, group: Option<&str>) {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        match group {
            None => {
                index.trie.remove(
                    filter,
                    |t| matches!(t, Target::One(s) if s.session.id == session),
                );
            }
            Some(name) => {
                let key = shared::key(name, filter);
                let Some(g) = index.groups.get(&key).cloned() else {
                    return;
                };
                if g.leave(session) {
                    index.groups.remove(&key);
                    index.trie.remove(
                        filter,
                        |t| matches!(t, Target::Group(x) if Arc::ptr_eq(x, &g)),
                    );
                    if index.groups.capacity() > 64
                        && index.groups.len() < index.groups.capacity() / 4
                    {
                        index.groups.shrink_to_fit();
                    }
                }
            }
        }
    }

    /// Who `topic` goes to, right now.
    pub fn targets(&self, topic: &str) -> Targets {
        let index = self.index.read().unwrap_or_else(|e| e.into_inner());
        let mut t = Targets::default();
        index.trie.matches(topic, |target| match target {
            Target::One(s) => t.ones.push(s.clone()),
            Target::Group(g) => t.groups.push(g.clone()),
        });
        t
    }

    /// Delivers `p` to `targets`; returns how many copies were handed over.
    pub fn deliver(
        &self,
        p: &Arc<Publication>,
        mut targets: Targets,
        hooks: &dyn Hooks,
        metrics: &Metrics,
        touched: &mut Touched,
    ) -> usize {
        let mut delivered = 0;
        // One copy per session, however many of its subscriptions match.
        targets.ones.sort_by_key(|s| s.session.id);
        for subs in targets.ones.chunk_by(|a, b| a.session.id == b.session.id) {
            let eligible: Vec<&Sub> = subs
                .iter()
                .filter(|s| !(s.opts.no_local && s.session.id == p.origin))
                .collect();
            let Some(first) = eligible.first() else {
                continue;
            };
            let max_qos = eligible
                .iter()
                .map(|s| s.opts.qos)
                .max()
                .unwrap_or(QoS::AtMostOnce);
            let d = Delivery {
                publication: p.clone(),
                qos: max_qos.min(p.message.qos),
                retain: p.message.retain && eligible.iter().any(|s| s.opts.retain_as_published),
                subscription_ids: eligible.iter().filter_map(|s| s.opts.id).collect(),
            };
            delivered += usize::from(first.session.deliver(d, hooks, metrics, touched));
        }
        for g in targets.groups {
            let Some(sub) = g.pick(p, hooks) else {
                continue;
            };
            let d = Delivery {
                publication: p.clone(),
                qos: sub.opts.qos.min(p.message.qos),
                retain: p.message.retain && sub.opts.retain_as_published,
                subscription_ids: sub.opts.id.into_iter().collect(),
            };
            delivered += usize::from(sub.session.deliver(d, hooks, metrics, touched));
        }
        delivered
    }

    /// Distinct filters with subscribers.
    pub fn filters(&self) -> usize {
        self.index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .trie
            .len()
    }
}
