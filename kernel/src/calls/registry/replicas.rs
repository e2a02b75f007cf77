//! The connections of one plugin identity and whether each is online. A plugin's own
//! connection (client id = identity) reports on `<root>/plugin/<id>/status`, each replica
//! (another client id of the same identity) on `<root>/plugin/<id>/replica/<client>`; the
//! plugin is online while any of them is. Sessions are compared per connection, so a late
//! will of one replica cannot take another offline.
//!
//! Bounded: at most `MAX_REPLICAS` connections per identity are remembered; an offline
//! one makes room for a new one, and while all are online a new one is refused.

use std::collections::BTreeMap;

/// Connections remembered per identity.
pub(crate) const MAX_REPLICAS: usize = 64;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Replica {
    online: bool,
    session: u64,
}

/// What one connection's status did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReplicaChange {
    /// It applied; the connection is now online or not.
    Applied,
    /// Older than what this connection reported before (a late or repeated will).
    Stale,
    /// A new connection while `MAX_REPLICAS` are online.
    NoRoom,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Replicas {
    map: BTreeMap<String, Replica>,
    /// Where the next call handed out starts looking (round robin).
    next: usize,
}

impl Replicas {
    /// Applies connection `client`'s status.
    pub fn update(&mut self, client: &str, online: bool, session: u64) -> ReplicaChange {
        if !self.map.contains_key(client) && self.map.len() >= MAX_REPLICAS {
            let oldest_offline = self
                .map
                .iter()
                .filter(|(_, r)| !r.online)
                .min_by_key(|(_, r)| r.session)
                .map(|(c, _)| c.clone());
            match oldest_offline {
                Some(c) => self.map.remove(&c),
                None => return ReplicaChange::NoRoom,
            };
        }
        let r = self.map.entry(client.to_string()).or_default();
        if session < r.session {
            return ReplicaChange::Stale;
        }
        *r = Replica { online, session };
        ReplicaChange::Applied
    }

    pub fn any_online(&self) -> bool {
        self.map.values().any(|r| r.online)
    }

    /// The newest session any connection reported.
    pub fn newest_session(&self) -> u64 {
        self.map.values().map(|r| r.session).max().unwrap_or(0)
    }

    #[cfg(test)]
    pub fn is_online(&self, client: &str) -> bool {
        self.map.get(client).is_some_and(|r| r.online)
    }

    /// Would an `online` with `session` be a new connection replacing a live one (the
    /// old one lost without its will, as when a cluster node dies)?
    pub fn replaces_live(&self, client: &str, session: u64) -> bool {
        self.map
            .get(client)
            .is_some_and(|r| r.online && session > r.session)
    }

    /// The online connections, by client id.
    pub fn online(&self) -> impl Iterator<Item = &str> {
        self.map
            .iter()
            .filter(|(_, r)| r.online)
            .map(|(c, _)| c.as_str())
    }

    /// The next online connection in turn, if any.
    pub fn next_online(&mut self) -> Option<String> {
        let online: Vec<&str> = self.online().collect();
        if online.is_empty() {
            return None;
        }
        let pick = online[self.next % online.len()].to_string();
        self.next = self.next.wrapping_add(1);
        Some(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_replicas_will_does_not_take_the_others_offline() {
        let mut r = Replicas::default();
        r.update("lamp-a", true, 10);
        r.update("lamp-b", true, 5);
        assert_eq!(r.update("lamp-b", false, 5), ReplicaChange::Applied);
        assert!(r.any_online() && r.is_online("lamp-a") && !r.is_online("lamp-b"));
        assert_eq!(r.update("lamp-a", false, 9), ReplicaChange::Stale);
        assert_eq!(r.newest_session(), 10);
    }

    #[test]
    fn calls_go_round_the_online_replicas() {
        let mut r = Replicas::default();
        for c in ["a", "b", "c"] {
            r.update(c, true, 1);
        }
        r.update("b", false, 1);
        let picks: Vec<String> = (0..4).filter_map(|_| r.next_online()).collect();
        assert_eq!(picks, ["a", "c", "a", "c"]);
    }

    #[test]
    fn the_number_of_connections_is_bounded() {
        let mut r = Replicas::default();
        for i in 0..MAX_REPLICAS {
            r.update(&format!("c{i}"), true, 1);
        }
        assert_eq!(r.update("one-more", true, 1), ReplicaChange::NoRoom);
        r.update("c3", false, 1);
        assert_eq!(r.update("one-more", true, 1), ReplicaChange::Applied);
        assert!(!r.is_online("c3") && r.online().count() == MAX_REPLICAS);
    }
}
