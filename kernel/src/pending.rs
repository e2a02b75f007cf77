//! Calls to plugin-provided methods that have not been answered yet.
//!
//! The kernel sees every call (it subscribes to all of them) and every reply; the broker
//! tells it which client each call was delivered to (a shared subscription picks one
//! replica). When a provider goes offline, the calls it took, and calls to methods nobody
//! provides any more, are answered `unavailable` at once instead of timing out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

/// Where and how to answer a call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReplyTo {
    pub topic: String,
    pub id: Option<Value>,
    pub correlation: Option<Bytes>,
}

#[derive(Debug)]
struct CallInfo {
    method: String,
    reply: ReplyTo,
    deadline: u64,
}

#[derive(Debug)]
struct Entry {
    call: Option<CallInfo>,
    provider: Option<String>,
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

/// Assignments the kernel never saw a call for are forgotten after this long.
const ORPHAN_TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
pub(crate) struct PendingCalls {
    calls: HashMap<CallKey, Entry>,
}

/// The request id of a call payload (or its correlation data), as a string key.
pub(crate) fn request_key(payload: &[u8], correlation: Option<&[u8]>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        #[serde(default)]
        id: Option<Value>,
    }
    match serde_json::from_slice::<IdOnly>(payload)
        .ok()
        .and_then(|r| r.id)
    {
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
        None => correlation.map(|c| String::from_utf8_lossy(c).into_owned()),
    }
}

impl PendingCalls {
    /// The kernel saw a call to a plugin-provided method.
    pub fn track(&mut self, key: CallKey, method: &str, reply: ReplyTo, deadline: u64) {
        let entry = self.calls.entry(key).or_insert(Entry {
            call: None,
            provider: None,
            since: Instant::now(),
        });
        entry.call = Some(CallInfo {
            method: method.to_string(),
            reply,
            deadline,
        });
    }

    /// The broker delivered the call to `provider`.
    pub fn assign(&mut self, key: CallKey, provider: &str) {
        let entry = self.calls.entry(key).or_insert(Entry {
            call: None,
            provider: None,
            since: Instant::now(),
        });
        entry.provider = Some(provider.to_string());
    }

    /// A reply was published.
    pub fn answered(&mut self, key: &CallKey) {
        self.calls.remove(key);
    }

    /// `provider` went offline: its calls, and calls to methods that `still_provided`
    /// says nobody serves now, fail.
    pub fn provider_gone(
        &mut self,
        provider: &str,
        still_provided: impl Fn(&str) -> bool,
    ) -> Vec<Failed> {
        let mut failed = Vec::new();
        self.calls.retain(|_, e| {
            let Some(call) = &e.call else {
                return e.provider.as_deref() != Some(provider);
            };
            let lost = e.provider.as_deref() == Some(provider)
                || (e.provider.is_none() && !still_provided(&call.method));
            if lost {
                failed.push(Failed {
                    method: call.method.clone(),
                    reply: call.reply.clone(),
                });
            }
            !lost
        });
        failed
    }

    /// Forgets calls past their deadline and orphaned assignments.
    pub fn sweep(&mut self, now_ms: u64) {
        self.calls.retain(|_, e| match &e.call {
            Some(c) => c.deadline >= now_ms,
            None => e.since.elapsed() < ORPHAN_TTL,
        });
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

    #[test]
    fn only_the_dead_providers_calls_fail() {
        let mut p = PendingCalls::default();
        let k1 = ("c".to_string(), "1".to_string());
        let k2 = ("c".to_string(), "2".to_string());
        p.assign(k1.clone(), "a");
        p.track(k1.clone(), "svc.m", reply("r1"), u64::MAX);
        p.track(k2.clone(), "svc.m", reply("r2"), u64::MAX);
        p.assign(k2.clone(), "b");
        let failed = p.provider_gone("a", |_| true);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].reply.topic, "r1");
        p.answered(&k2);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn unassigned_calls_fail_when_nobody_is_left() {
        let mut p = PendingCalls::default();
        p.track(("c".into(), "1".into()), "svc.m", reply("r"), u64::MAX);
        assert!(p.provider_gone("a", |_| true).is_empty());
        assert_eq!(p.provider_gone("a", |_| false).len(), 1);
    }

    #[test]
    fn request_keys() {
        assert_eq!(request_key(br#"{"id":"x"}"#, None).as_deref(), Some("x"));
        assert_eq!(request_key(br#"{"id":7}"#, None).as_deref(), Some("7"));
        assert_eq!(request_key(b"{}", Some(b"c")).as_deref(), Some("c"));
        assert_eq!(request_key(b"junk", None), None);
    }
}
