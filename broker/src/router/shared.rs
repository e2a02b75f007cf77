//! Shared subscriptions (`$share/<group>/<filter>`): each message matching the filter goes
//! to one member of the group, round robin, passing over members that are disconnected,
//! cannot take more, or that the hooks do not let receive it. Only when no connected
//! member can take it does it wait in a persistent member's offline queue.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::publication::Publication;
use super::Sub;
use crate::hooks::Hooks;

pub(crate) struct Group {
    members: Mutex<Vec<Sub>>,
    next: AtomicUsize,
}

impl Group {
    pub fn new() -> Group {
        Group {
            members: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Sub>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds (or updates) a member; true if it is new.
    pub fn join(&self, sub: Sub) -> bool {
        let mut members = self.lock();
        match members.iter_mut().find(|m| m.session.id == sub.session.id) {
            Some(m) => {
                *m = sub;
                false
            }
            None => {
                members.push(sub);
                true
            }
        }
    }

    /// Removes a session; returns whether the group is now empty.
    pub fn leave(&self, session: u64) -> bool {
        let mut members = self.lock();
        members.retain(|m| m.session.id != session);
        members.is_empty()
    }

    /// The member that gets `p`, if any.
    pub fn pick(&self, p: &Publication, hooks: &dyn Hooks) -> Option<Sub> {
        let members = self.lock();
        let n = members.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let eligible = |m: &&Sub| {
            !(m.opts.no_local && m.session.id == p.origin)
                && hooks.authorize_group_delivery(&m.session.lock().info, &p.message.topic)
        };
        let order = (0..n).map(|i| &members[(start + i) % n]);
        let mut fallback = None;
        for m in order.filter(eligible) {
            if m.session.ready() {
                return Some(m.clone());
            }
            fallback.get_or_insert(m);
        }
        fallback.cloned()
    }
}

/// A group is found by (name, filter): `$share/g/a` and `$share/g/b` are two groups.
pub(crate) type GroupKey = (String, String);

pub(crate) fn key(name: &str, filter: &str) -> GroupKey {
    (name.to_string(), filter.to_string())
}

/// Groups by key.
pub(crate) type Groups = std::collections::HashMap<GroupKey, Arc<Group>>;
