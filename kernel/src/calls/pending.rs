//! Calls to plugin-provided methods that have not been answered yet.
//!
//! The kernel sees every call (it subscribes to all of them) and every reply; the broker
//! tells it which client each call was delivered to (a shared subscription picks one
//! replica). When a provider goes offline, the calls it took, and calls to methods nobody
//! provides any more, are answered `unavailable` at once instead of timing out.
//!
//! The two sightings of a call (the call itself, its delivery to a provider) arrive in
//! either order, and the provider can die in between: a delivery to a provider that is
//! already gone is remembered, so the call fails as soon as the kernel sees it.
//!
//! It also remembers which connections each call was delivered to: only they may publish
//! its reply (`may_reply`), so nobody else can answer a call they merely watched.
//!
//! Bounded: at most `max_per_caller` calls per caller are tracked (the kernel answers the
//! rest `quota_exceeded` at once, since their replies could not be checked), ids longer
//! than `MAX_KEY_LEN` are not tracked, and every entry ends at its deadline or after
//! `ORPHAN_TTL`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hcore_client::protocol::ReplyTo;

#[derive(Debug)]
struct CallInfo {
    method: String,
    reply: ReplyTo,
    /// Milliseconds since the epoch after which the kernel stops watching.
    until: u64,
}

#[derive(Debug)]
struct Entry {
    call: Option<CallInfo>,
    provider: Option<String>,
    /// The connections (session keys) it was delivered to, at most `MAX_TAKERS`.
    takers: Vec<String>,
    /// The provider died after taking the call.
    provider_gone: bool,
    since: Instant,
}

/// Key of a call: the caller and its request id (or correlation data).
pub(crate) type CallKey = (String, String);

/// An unanswered call that must now fail.
#[derive(Debug)]
pub(crate) struct Failed {
    pub method: String,
    pub reply: ReplyTo,
}

/// How the kernel watches a call it has seen.
#[derive(Debug)]
pub(crate) enum Tracked {
    Watching,
    /// Its provider is already gone.
    Failed(Failed),
    /// Over the bounds: not watched, and no reply to it will be let through.
    NoRoom,
}

/// Most connections one call is remembered as delivered to (non-shared subscribers of
/// the same identity each get it).
const MAX_TAKERS: usize = 4;

/// Sightings without the other half are forgotten after this long.
const ORPHAN_TTL: Duration = Duration::from_secs(60);

/// Longest request id (or correlation data) the kernel tracks.
pub(crate) const MAX_KEY_LEN: usize = 256;

/// The client id of a taker: the broker names connections `<user>\0<client id>` (or the
/// client id alone); the kernel names the connections it hands calls to by client id.
fn client_of(taker: &str) -> &str {
    taker.rsplit('\0').next().unwrap_or(taker)
}

pub(crate) struct PendingCalls {
    calls: HashMap<CallKey, Entry>,
    per_caller: HashMap<String, usize>,
    max_per_caller: usize,
    /// Calls not tracked because of the bounds above.
    pub untracked: u64,
}

impl PendingCalls {
    pub fn new(max_per_caller: usize) -> PendingCalls {
        PendingCalls {
            calls: HashMap::new(),
            per_caller: HashMap::new(),
            max_per_caller,
            untracked: 0,
        }
    }

    /// The entry for `key`, made if there is room.
    fn entry(&mut self, key: CallKey) -> Option<&mut Entry> {
        if !self.calls.contains_key(&key) {
            let n = self.per_caller.entry(key.0.clone()).or_default();
            if key.1.len() > MAX_KEY_LEN || *n >= self.max_per_caller {
                self.untracked += 1;
                return None;
            }
            *n += 1;
        }
        Some(self.calls.entry(key).or_insert_with(|| Entry {
            call: None,
            provider: None,
            takers: Vec::new(),
            provider_gone: false,
            since: Instant::now(),
        }))
    }

    fn remove(&mut self, key: &CallKey) -> Option<Entry> {
        let e = self.calls.remove(key)?;
        if let Some(n) = self.per_caller.get_mut(&key.0) {
            *n -= 1;
            if *n == 0 {
                self.per_caller.remove(&key.0);
            }
        }
        Some(e)
    }

    /// The kernel saw a call to a plugin-provided method. Returns it as failed at once if
    /// the provider it was delivered to has already died.
    pub fn track(&mut self, key: CallKey, method: &str, reply: ReplyTo, until: u64) -> Tracked {
        let gone = {
            let Some(entry) = self.entry(key.clone()) else {
                return Tracked::NoRoom;
            };
            entry.call = Some(CallInfo {
                method: method.to_string(),
                reply: reply.clone(),
                until,
            });
            entry.provider_gone
        };
        if !gone {
            return Tracked::Watching;
        }
        self.remove(&key);
        Tracked::Failed(Failed {
            method: method.to_string(),
            reply,
        })
    }

    /// The broker delivered the call to `provider`, on its connection `connection`.
    pub fn assign(&mut self, key: CallKey, provider: &str, connection: &str) {
        if let Some(entry) = self.entry(key) {
            entry.provider = Some(provider.to_string());
            if entry.takers.len() < MAX_TAKERS && !entry.takers.iter().any(|t| t == connection) {
                entry.takers.push(connection.to_string());
            }
        }
    }

    /// May `connection` answer this call: was it delivered there? A reply without an id
    /// or correlation data (a v3.1.1 provider answering a call whose key was only in MQTT
    /// 5 properties) may answer any call of that caller delivered there.
    pub fn may_reply(&self, key: &CallKey, connection: &str) -> bool {
        let took = |e: &Entry| e.takers.iter().any(|t| t == connection);
        if !key.1.is_empty() {
            return self.calls.get(key).is_some_and(took);
        }
        self.calls
            .iter()
            .any(|((caller, _), e)| *caller == key.0 && took(e))
    }

    /// A reply was published.
    pub fn answered(&mut self, key: &CallKey) {
        self.remove(key);
    }

    /// `provider` went offline (`client`: only that connection of it): the calls it took,
    /// and calls to methods that `still_provided` says nobody serves now, fail.
    pub fn provider_gone(
        &mut self,
        provider: &str,
        client: Option<&str>,
        still_provided: impl Fn(&str) -> bool,
    ) -> Vec<Failed> {
        let mut lost = Vec::new();
        for (key, e) in self.calls.iter_mut() {
            let took_it = e.provider.as_deref() == Some(provider)
                && client.is_none_or(|c| e.takers.iter().any(|t| client_of(t) == c));
            match &e.call {
                None if took_it => e.provider_gone = true,
                Some(call)
                    if took_it || (e.provider.is_none() && !still_provided(&call.method)) =>
                {
                    lost.push(key.clone())
                }
                _ => {}
            }
        }
        lost.into_iter()
            .filter_map(|k| self.remove(&k))
            .filter_map(|e| e.call)
            .map(|c| Failed {
                method: c.method,
                reply: c.reply,
            })
            .collect()
    }

    /// Every tracked call, for answering them all (the kernel is stopping).
    pub fn take_all(&mut self) -> Vec<Failed> {
        self.per_caller.clear();
        self.calls
            .drain()
            .filter_map(|(_, e)| e.call)
            .map(|c| Failed {
                method: c.method,
                reply: c.reply,
            })
            .collect()
    }

    /// Forgets calls past their deadline and sightings that never met their other half.
    pub fn sweep(&mut self, now_ms: u64) {
        let expired: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, e)| match &e.call {
                Some(c) => c.until < now_ms,
                None => e.since.elapsed() >= ORPHAN_TTL,
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in expired {
            self.remove(&k);
        }
    }

    pub fn len(&self) -> usize {
        self.calls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(t: &str) -> ReplyTo {
        ReplyTo {
            topic: t.into(),
            id: None,
            correlation: None,
        }
    }

    fn key(id: &str) -> CallKey {
        ("c".to_string(), id.to_string())
    }

    #[test]
    fn only_the_dead_providers_calls_fail() {
        let mut p = PendingCalls::new(100);
        p.assign(key("1"), "a", "a-conn");
        let watching = |t| matches!(t, Tracked::Watching);
        assert!(watching(p.track(key("1"), "svc.m", reply("r1"), u64::MAX)));
        assert!(watching(p.track(key("2"), "svc.m", reply("r2"), u64::MAX)));
        p.assign(key("2"), "b", "b-conn");
        assert!(p.may_reply(&key("2"), "b-conn") && !p.may_reply(&key("2"), "a-conn"));
        assert!(
            !p.may_reply(&key("3"), "b-conn"),
            "an unknown call has no taker"
        );
        let failed = p.provider_gone("a", None, |_| true);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].reply.topic, "r1");
        p.answered(&key("2"));
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn a_replica_going_offline_fails_only_its_own_calls() {
        let mut p = PendingCalls::new(100);
        p.assign(key("1"), "lamp", "lamp\0lamp-a");
        p.assign(key("2"), "lamp", "lamp-b");
        p.track(key("1"), "lamp.on", reply("r1"), u64::MAX);
        p.track(key("2"), "lamp.on", reply("r2"), u64::MAX);
        let failed = p.provider_gone("lamp", Some("lamp-a"), |_| true);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].reply.topic, "r1");
        assert_eq!(p.provider_gone("lamp", Some("lamp-b"), |_| true).len(), 1);
    }

    #[test]
    fn unassigned_calls_fail_when_nobody_is_left() {
        let mut p = PendingCalls::new(100);
        p.track(key("1"), "svc.m", reply("r"), u64::MAX);
        assert!(p.provider_gone("a", None, |_| true).is_empty());
        assert_eq!(p.provider_gone("a", None, |_| false).len(), 1);
    }

    #[test]
    fn a_call_seen_after_its_provider_died_fails_at_once() {
        let mut p = PendingCalls::new(100);
        p.assign(key("1"), "a", "a-conn");
        assert!(p.provider_gone("a", None, |_| true).is_empty());
        let Tracked::Failed(failed) = p.track(key("1"), "svc.m", reply("r"), u64::MAX) else {
            panic!("the call must fail at once");
        };
        assert_eq!(failed.reply.topic, "r");
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn tracking_is_bounded_per_caller_and_by_id_length() {
        let mut p = PendingCalls::new(2);
        for i in 0..5 {
            p.track(key(&i.to_string()), "svc.m", reply("r"), u64::MAX);
        }
        p.track(
            ("d".into(), "x".repeat(MAX_KEY_LEN + 1)),
            "svc.m",
            reply("r"),
            u64::MAX,
        );
        assert_eq!(p.len(), 2);
        assert_eq!(p.untracked, 4);
        assert!(matches!(
            p.track(key("7"), "svc.m", reply("r"), u64::MAX),
            Tracked::NoRoom
        ));
        assert_eq!(p.untracked, 5);
        p.answered(&key("0"));
        p.track(key("9"), "svc.m", reply("r"), u64::MAX);
        assert_eq!(p.len(), 2);
        p.sweep(u64::MAX);
        assert_eq!(p.len(), 2, "entries end at their deadline, not before");
        assert_eq!(p.take_all().len(), 2);
        assert_eq!(p.len(), 0);
    }
}
