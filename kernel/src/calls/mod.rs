//! The kernel's view of RPC: who provides which method (`registry`), which calls to
//! providers are still unanswered (`pending`), and the plugins it has seen. The kernel owns
//! both; the broker's policy only tells it which client a call was delivered to
//! (`policy::CallWatch`), and asks it whether a reply may be published.
//!
//! Lock order, where both are needed: registry, then pending.

mod pending;
mod registry;

use std::sync::{Mutex, MutexGuard};

use hcore_client::protocol::{now_ms, ReplyTo};

use pending::PendingCalls;
pub(crate) use pending::{Failed, Tracked};
pub(crate) use registry::{Kind, Registry, StatusChange};

use crate::policy::CallWatch;

pub(crate) struct Calls {
    registry: Mutex<Registry>,
    pending: Mutex<PendingCalls>,
    /// Longest the kernel watches one call, milliseconds (the deadline cap).
    max_track_ms: u64,
}

impl Calls {
    pub fn new(max_pending_per_caller: usize, max_track_ms: u64) -> Calls {
        Calls {
            registry: Mutex::new(Registry::default()),
            pending: Mutex::new(PendingCalls::new(max_pending_per_caller)),
            max_track_ms,
        }
    }

    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pending(&self) -> MutexGuard<'_, PendingCalls> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call to a provided method, seen by the kernel: watched until it is answered, its
    /// deadline passes (at most `max_track_ms`), or its provider dies. Returns it as failed
    /// if its provider is already gone.
    pub fn track(
        &self,
        caller: &str,
        key: String,
        method: &str,
        reply: ReplyTo,
        deadline: Option<u64>,
    ) -> Tracked {
        let cap = now_ms().saturating_add(self.max_track_ms);
        let until = deadline.map_or(cap, |d| d.min(cap));
        self.pending()
            .track((caller.to_string(), key), method, reply, until)
    }

    /// A reply from someone other than the kernel was seen.
    pub fn answered(&self, caller: &str, key: String) {
        self.pending().answered(&(caller.to_string(), key));
    }

    /// A plugin went offline (`client`: only that connection of it): when the plugin is
    /// gone its services are already unregistered; the calls it (or that connection) had
    /// taken, and calls to methods nobody provides now, fail.
    pub fn provider_gone(&self, provider: &str, client: Option<&str>) -> Vec<Failed> {
        let registry = self.registry();
        self.pending()
            .provider_gone(provider, client, |method| registry.is_provided(method))
    }

    /// Hands a call of `method` to one online connection of one of its providers, and
    /// watches it there: (provider, client id), or `None` when nobody provides it.
    pub fn hand_out(&self, caller: &str, key: String, method: &str) -> Option<(String, String)> {
        let (provider, client) = self.registry().pick(method)?;
        self.pending()
            .assign((caller.to_string(), key), &provider, &client);
        Some((provider, client))
    }

    /// Every watched call (the kernel is stopping).
    pub fn take_all(&self) -> Vec<Failed> {
        self.pending().take_all()
    }

    /// Forgets calls past their deadline.
    pub fn sweep(&self) {
        self.pending().sweep(now_ms());
    }

    /// Calls watched now.
    pub fn pending_len(&self) -> usize {
        self.pending().len()
    }
}

impl CallWatch for Calls {
    fn call_delivered(
        &self,
        caller: &str,
        method: &str,
        provider: &str,
        connection: &str,
        key: String,
    ) {
        // Administrators (`#` subscribers) see calls too; only a registered provider
        // takes one.
        let registry = self.registry();
        if registry.provides(method, provider) {
            self.pending()
                .assign((caller.to_string(), key), provider, connection);
        }
    }

    fn may_reply(&self, caller: &str, key: String, connection: &str) -> bool {
        self.pending()
            .may_reply(&(caller.to_string(), key), connection)
    }

    fn provides(&self, method: &str, provider: &str) -> bool {
        self.registry().provides(method, provider)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_call_is_watched_past_the_deadline_cap() {
        let calls = Calls::new(10, 1);
        let reply = ReplyTo {
            topic: "hc/reply/c".into(),
            id: None,
            correlation: None,
        };
        calls.track("c", "1".into(), "svc.m", reply.clone(), Some(u64::MAX));
        calls.track("c", "2".into(), "svc.m", reply, None);
        assert_eq!(calls.pending_len(), 2);
        std::thread::sleep(std::time::Duration::from_millis(5));
        calls.sweep();
        assert_eq!(
            calls.pending_len(),
            0,
            "u64::MAX deadlines end at max_call_ms"
        );
    }
}
