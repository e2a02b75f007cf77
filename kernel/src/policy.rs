//! The kernel's rules for the embedded broker (its `Hooks`): who may publish and
//! subscribe where, private reply topics, the publisher identity stamp, and reserved
//! client ids. The same rules can be written as an external broker's ACL
//! (`deploy/mosquitto/acl`), except the delivery observation used for `unavailable`.
//!
//! * `<root>/call/<x>/...`, `<root>/event/<x>/...`, `<root>/plugin/<x>/...`: only client `x`.
//! * `<root>/state/<key>`: only the kernel; `<root>/state/<key>/set`: anyone.
//! * `<root>/reply/...`: anyone may publish; `<root>/reply/<x>/...` is delivered only to
//!   `x` (and the kernel), and only `x` may subscribe to it by name.
//! * `<root>/call/<x>/storage/...` (storage requests carry the values written) is
//!   delivered only to the kernel and `x`; other calls are visible to observers.
//! * `<root>/kernel/...` and any other topic under the root: only the kernel.
//! * The kernel's id and the ids of in-process plugins cannot be used by network clients.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use hcore_broker::{ClientInfo, ConnectInfo, ConnectRefusal, Hooks};
use hcore_client::protocol::{Parsed, Topics, IDENTITY_PROPERTY};

use crate::pending::{request_key, PendingCalls};
use crate::registry::Registry;

/// The kernel's client id.
pub const KERNEL_ID: &str = "kernel";

pub struct KernelPolicy {
    topics: Topics,
    prefix: String,
    reserved: RwLock<HashSet<String>>,
    pub(crate) pending: Arc<Mutex<PendingCalls>>,
    /// The kernel's service registry (the policy asks who provides what).
    pub(crate) registry: Arc<Mutex<Registry>>,
}

impl KernelPolicy {
    pub fn new(root: &str) -> KernelPolicy {
        let topics = Topics::new(root);
        KernelPolicy {
            prefix: format!("{}/", topics.root()),
            topics,
            reserved: RwLock::new(HashSet::from([KERNEL_ID.to_string()])),
            pending: Arc::new(Mutex::new(PendingCalls::default())),
            registry: Arc::new(Mutex::new(Registry::default())),
        }
    }

    /// Keeps network clients from using `id` (an in-process plugin's id).
    pub fn reserve(&self, id: &str) {
        self.reserved
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    fn may_publish(&self, client: &str, topic: &str) -> bool {
        if client == KERNEL_ID || !topic.starts_with(&self.prefix) {
            return true;
        }
        match self.topics.parse(topic) {
            Some(Parsed::Call { caller: id, .. })
            | Some(Parsed::Event { source: id, .. })
            | Some(Parsed::PluginStatus { id })
            | Some(Parsed::PluginManifest { id }) => id == client,
            Some(Parsed::StateSet { .. }) | Some(Parsed::Reply { .. }) => true,
            Some(Parsed::State { .. }) | Some(Parsed::KernelStatus) | None => false,
        }
    }
}

impl Hooks for KernelPolicy {
    fn authenticate(&self, c: &ConnectInfo<'_>) -> Result<(), ConnectRefusal> {
        let reserved = self.reserved.read().unwrap_or_else(|e| e.into_inner());
        if reserved.contains(c.client_id) {
            tracing::warn!(
                client_id = c.client_id,
                "refusing a network client that uses a reserved client id"
            );
            return Err(ConnectRefusal::NotAuthorized);
        }
        Ok(())
    }

    fn authorize_publish(&self, client: &ClientInfo, topic: &str) -> bool {
        self.may_publish(&client.client_id, topic)
    }

    fn authorize_subscribe(&self, client: &ClientInfo, filter: &str) -> bool {
        if client.client_id == KERNEL_ID {
            return true;
        }
        // Naming another client's reply space (or a wildcard in its place) is refused;
        // broader filters are fine because deliveries are checked one by one.
        match filter
            .strip_prefix(&self.prefix)
            .and_then(|f| f.strip_prefix("reply/"))
        {
            Some(rest) => rest.split('/').next() == Some(client.client_id.as_str()),
            None => true,
        }
    }

    fn authorize_delivery(&self, client: &ClientInfo, topic: &str) -> bool {
        if client.client_id == KERNEL_ID || !topic.starts_with(&self.prefix) {
            return true;
        }
        match self.topics.parse(topic) {
            Some(Parsed::Reply { caller }) => caller == client.client_id,
            Some(Parsed::Call {
                caller,
                service: "storage",
                ..
            }) => caller == client.client_id,
            _ => true,
        }
    }

    fn observe_delivery(
        &self,
        client: &ClientInfo,
        topic: &str,
        payload: &[u8],
        correlation: Option<&[u8]>,
    ) {
        if client.client_id == KERNEL_ID || !topic.starts_with(&self.prefix) {
            return;
        }
        if let Some(Parsed::Call {
            caller,
            service,
            method,
        }) = self.topics.parse(topic)
        {
            // Observers (`#` subscribers) see calls too; only a provider takes one.
            let provider = self
                .registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .provides(&format!("{service}.{method}"), &client.client_id);
            if !provider {
                return;
            }
            if let Some(id) = request_key(payload, correlation) {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .assign((caller.to_string(), id), &client.client_id);
            }
        }
    }

    fn identity_property(&self, topic: &str) -> Option<&'static str> {
        topic.starts_with(&self.prefix).then_some(IDENTITY_PROPERTY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pending::ReplyTo;
    use hcore_broker::Protocol;

    fn client(id: &str) -> ClientInfo {
        ClientInfo {
            client_id: id.into(),
            username: None,
            peer: None,
            protocol: Protocol::V5,
        }
    }

    #[test]
    fn observers_of_a_call_do_not_take_it_from_its_provider() {
        let policy = KernelPolicy::new("hc");
        policy
            .registry
            .lock()
            .unwrap()
            .register("lamp", &["light.toggle".to_string()])
            .unwrap();
        let topic = "hc/call/app/light/toggle";
        let key = ("app".to_string(), "42".to_string());
        let reply = ReplyTo {
            topic: "hc/reply/app".into(),
            id: None,
            correlation: None,
        };
        policy
            .pending
            .lock()
            .unwrap()
            .track(key, "light.toggle", reply, u64::MAX);
        // The provider gets the call, then a `#` observer sees it as well.
        policy.observe_delivery(&client("lamp"), topic, br#"{"id":"42"}"#, None);
        policy.observe_delivery(&client("spy"), topic, br#"{"id":"42"}"#, None);
        let mut pending = policy.pending.lock().unwrap();
        assert!(pending.provider_gone("spy", |_| true).is_empty());
        assert_eq!(pending.provider_gone("lamp", |_| true).len(), 1);
    }
}
