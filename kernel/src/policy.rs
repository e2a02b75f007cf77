//! The kernel's rules for the embedded broker (its `Hooks`): who may publish and
//! subscribe where, private reply topics, the identity and role stamps, and reserved client
//! ids. It decides; it owns no kernel state. Deliveries of calls are reported to the
//! kernel through `DeliveryObserver`, so the kernel learns which replica took a call.
//!
//! * `<root>/call/<x>/...`, `<root>/event/<x>/...`, `<root>/plugin/<x>/...`: only client `x`.
//! * `<root>/state/<key>`: only the kernel; `<root>/state/<key>/set`: anyone.
//! * `<root>/reply/...`: anyone may publish; `<root>/reply/<x>/...` is delivered only to
//!   `x` (and the kernel), and only `x` may subscribe to it by name.
//! * `<root>/call/<x>/storage/...` (storage requests carry the values written) is
//!   delivered only to the kernel and `x`; other calls are visible to observers.
//! * `<root>/kernel/...` and any other topic under the root: only the kernel.
//! * Nothing is retained under `<root>/call/` or `<root>/reply/`.
//! * `$SYS/...` is for administrators.
//! * The kernel's id and the ids of in-process plugins cannot be used by network clients.
//! * Clients with a user name must have a user (`users`) and its password; their role is
//!   the user's.
//! * Roles (stamped as `hc-role`): `kernel`; `plugin` for in-process plugins; a user's role
//!   (`admin`, `plugin`, `device`, `observer`) for clients with a user name; `admin` for
//!   anonymous clients on loopback; `client` for other anonymous clients (only on a
//!   listener configured with `allow_anonymous = true`).

use std::collections::HashSet;
use std::sync::{Arc, RwLock, Weak};

use hcore_broker::{ClientInfo, ConnectInfo, ConnectRefusal, Hooks};
use hcore_client::protocol::{payload_call_key, Parsed, Topics, IDENTITY_PROPERTY};

use crate::users::{Refused, Users};

/// The kernel's client id.
pub const KERNEL_ID: &str = "kernel";

/// User property in which the broker records the publisher's role.
pub const ROLE_PROPERTY: &str = "hc-role";

/// Roles a caller can have.
pub mod role {
    pub const KERNEL: &str = "kernel";
    pub const ADMIN: &str = "admin";
    pub const PLUGIN: &str = "plugin";
    pub const OBSERVER: &str = "observer";
    pub const CLIENT: &str = "client";
}

/// Told about every call delivered to a client other than the kernel.
pub(crate) trait DeliveryObserver: Send + Sync {
    fn call_delivered(&self, caller: &str, method: &str, provider: &str, key: String);
}

pub struct KernelPolicy {
    topics: Topics,
    prefix: String,
    reserved: RwLock<HashSet<String>>,
    observer: RwLock<Option<Weak<dyn DeliveryObserver>>>,
    users: Option<Arc<Users>>,
}

impl KernelPolicy {
    pub fn new(root: &str) -> KernelPolicy {
        let topics = Topics::new(root);
        KernelPolicy {
            prefix: format!("{}/", topics.root()),
            topics,
            reserved: RwLock::new(HashSet::from([KERNEL_ID.to_string()])),
            observer: RwLock::new(None),
            users: None,
        }
    }

    /// Checks user names and passwords against `users` (without: every user name is
    /// refused).
    pub fn with_users(mut self, users: Arc<Users>) -> KernelPolicy {
        self.users = Some(users);
        self
    }

    /// The root these rules protect.
    pub fn root(&self) -> &str {
        self.topics.root()
    }

    /// Keeps network clients from using `id` (an in-process plugin's id).
    pub fn reserve(&self, id: &str) {
        self.reserved
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    fn is_reserved(&self, id: &str) -> bool {
        self.reserved
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(id)
    }

    /// Where call deliveries are reported (the running kernel).
    pub(crate) fn observe_with(&self, observer: Weak<dyn DeliveryObserver>) {
        *self.observer.write().unwrap_or_else(|e| e.into_inner()) = Some(observer);
    }

    fn role(&self, client: &ClientInfo) -> &'static str {
        if let Some(name) = &client.username {
            return self
                .users
                .as_ref()
                .and_then(|u| u.known_role(name))
                .map_or(role::CLIENT, |r| r.as_str());
        }
        match client.peer {
            None if client.client_id == KERNEL_ID => role::KERNEL,
            None => role::PLUGIN,
            Some(peer) if peer.ip().is_loopback() => role::ADMIN,
            Some(_) => role::CLIENT,
        }
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
        if self.is_reserved(c.client_id) {
            tracing::warn!(
                client_id = c.client_id,
                "refusing a network client that uses a reserved client id"
            );
            return Err(ConnectRefusal::NotAuthorized);
        }
        let Some(name) = c.username else {
            return Ok(()); // anonymous: the listener decided (allow_anonymous)
        };
        let outcome = match &self.users {
            Some(users) => users.authenticate(name, c.password.unwrap_or("")),
            None => Err(Refused::UnknownUser),
        };
        match outcome {
            Ok(_) => Ok(()),
            Err(why) => {
                tracing::info!(
                    user = name,
                    client_id = c.client_id,
                    peer = ?c.peer,
                    ?why,
                    "refusing a CONNECT: bad user name or password"
                );
                Err(ConnectRefusal::BadCredentials)
            }
        }
    }

    fn authorize_publish(&self, client: &ClientInfo, topic: &str) -> bool {
        self.may_publish(&client.client_id, topic)
    }

    /// Requests and replies are never retained: a stored one would reach every later
    /// subscriber as if it were new (`mosquitto_rr` would print retained junk on a reply
    /// topic as the answer).
    fn authorize_retain(&self, _client: &ClientInfo, topic: &str) -> bool {
        !matches!(
            self.topics.parse(topic),
            Some(Parsed::Call { .. }) | Some(Parsed::Reply { .. })
        )
    }

    fn authorize_subscribe(&self, client: &ClientInfo, filter: &str) -> bool {
        if client.client_id == KERNEL_ID {
            return true;
        }
        // The broker's own state (`$SYS/...`) is for administrators.
        if filter.starts_with("$SYS") {
            return self.role(client) == role::ADMIN;
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
        let Some(Parsed::Call {
            caller,
            service,
            method,
        }) = self.topics.parse(topic)
        else {
            return;
        };
        let observer = self
            .observer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(Weak::upgrade);
        if let (Some(observer), Some(key)) = (observer, payload_call_key(payload, correlation)) {
            let method = format!("{service}.{method}");
            observer.call_delivered(caller, &method, &client.client_id, key);
        }
    }

    fn stamps(&self, client: &ClientInfo, topic: &str, stamp: &mut dyn FnMut(&'static str, &str)) {
        let Some(rest) = topic.strip_prefix(&self.prefix) else {
            return;
        };
        stamp(IDENTITY_PROPERTY, &client.client_id);
        // The role matters only to the kernel: for calls and state commands.
        if rest.starts_with("call/") || rest.starts_with("state/") {
            stamp(ROLE_PROPERTY, self.role(client));
        }
    }
}
