//! The kernel's rules for the embedded broker (its `Hooks`, in `hooks.rs`): who a
//! connection is (`Who`: its identity, role and grants) and what it may publish, read and
//! provide. It decides; it owns no kernel state. Call deliveries are reported to the
//! kernel, and replies checked with it, through `CallWatch`.
//!
//! Identity: the authenticated user name; for a client without one, its client id
//! (in-process plugins, anonymous clients). The client id is otherwise only a connection's
//! name within its identity, so replicas of a plugin (one user, several client ids) run
//! side by side, and the broker keys sessions on (user, client id), so nobody can take
//! over another user's connection.
//!
//! * `<root>/call/<x>/...`, `<root>/event/<x>/...`: only identity `x` publishes there
//!   (events and `<root>/plugin/<x>/...` only with role plugin or admin).
//! * `<root>/call/<c>/<svc>/<m>` is delivered to the kernel, administrators, the caller,
//!   and identities whose grants let them provide `svc.m`; a shared group's member must
//!   also have registered the method. Storage calls (they carry the values written) go
//!   only to the kernel, administrators and `c`. Subscribing to one service's calls by
//!   name needs the grant.
//! * `<root>/reply/<c>/...`: only the kernel and a connection the call was delivered to
//!   may publish the reply; it is delivered only to `c`, administrators and the kernel.
//! * `<root>/state/<key>`: only the kernel; `<root>/state/<key>/set`: whoever may write
//!   `key` (grants).
//! * `<root>/kernel/...` and any other topic under the root: only the kernel.
//! * Topics outside the root: as the identity's grants allow (`publish`, `subscribe`).
//! * Nothing is retained under `<root>/call/` or `<root>/reply/`.
//! * `$SYS/...` is for administrators.
//! * The kernel's id and the ids of in-process plugins cannot be used by network clients,
//!   as a client id or a user name; an anonymous client cannot use a user's name as its
//!   client id.
//! * Roles (stamped as `hc-role`): `kernel`; `plugin` for in-process plugins; the user's
//!   role (`admin`, `plugin`, `device`, `observer`) for clients with a user name; for
//!   anonymous clients the listener's `anonymous_role`, by default `admin` from loopback
//!   and `client` (an observer) from elsewhere.

mod hooks;

use std::collections::HashSet;
use std::sync::{Arc, RwLock, Weak};

use hcore_broker::ClientInfo;
use hcore_client::protocol::Topics;

use crate::users::{Resolved, Role, Users};

/// The kernel's client id.
pub use hcore_client::protocol::KERNEL_ID;

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

/// The kernel's side of RPC integrity: told about every call delivered to a client other
/// than the kernel, asked whether a reply may be published.
pub(crate) trait CallWatch: Send + Sync {
    /// `provider` (an identity) got the call on its connection `connection` (a session
    /// key).
    fn call_delivered(
        &self,
        caller: &str,
        method: &str,
        provider: &str,
        connection: &str,
        key: String,
    );
    /// Was the call `(caller, key)` delivered to `connection`?
    fn may_reply(&self, caller: &str, key: String, connection: &str) -> bool;
    /// Has `provider` registered `method`?
    fn provides(&self, method: &str, provider: &str) -> bool;
}

/// Who a connection is.
pub(crate) struct Who<'a> {
    pub identity: &'a str,
    pub role: &'static str,
    /// What it may do; `None`: everything (the kernel, administrators).
    pub grants: Option<Arc<Resolved>>,
}

impl Who<'_> {
    fn is_kernel(&self) -> bool {
        self.role == role::KERNEL
    }

    fn is_admin(&self) -> bool {
        self.grants.is_none()
    }
}

pub struct KernelPolicy {
    topics: Topics,
    prefix: String,
    reserved: RwLock<HashSet<String>>,
    watch: RwLock<Option<Weak<dyn CallWatch>>>,
    users: Option<Arc<Users>>,
}

impl KernelPolicy {
    pub fn new(root: &str) -> KernelPolicy {
        let topics = Topics::new(root);
        KernelPolicy {
            prefix: format!("{}/", topics.root()),
            topics,
            reserved: RwLock::new(HashSet::from([KERNEL_ID.to_string()])),
            watch: RwLock::new(None),
            users: None,
        }
    }

    /// Checks user names and passwords against `users`, and takes grants from its policy
    /// file (without: every user name is refused, and grants are the roles' defaults).
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

    /// Where call deliveries are reported and replies checked (the running kernel).
    pub(crate) fn watch_with(&self, watch: Weak<dyn CallWatch>) {
        *self.watch.write().unwrap_or_else(|e| e.into_inner()) = Some(watch);
    }

    fn watch(&self) -> Option<Arc<dyn CallWatch>> {
        self.watch
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(Weak::upgrade)
    }

    /// Reads the users and policy files again if they changed.
    pub fn refresh(&self) {
        if let Some(users) = &self.users {
            users.refresh();
        }
    }

    /// Who `client` is.
    pub(crate) fn who<'a>(&self, client: &'a ClientInfo) -> Who<'a> {
        match self.identity_and_role(client) {
            (identity, Err(kernel)) => Who {
                identity,
                role: kernel,
                grants: None,
            },
            (identity, Ok(user_role)) => self.who_with(identity, user_role),
        }
    }

    /// A connection's identity and role (`Err`: the kernel), without its grants: all the
    /// stamps on every publish need.
    fn identity_and_role<'a>(
        &self,
        client: &'a ClientInfo,
    ) -> (&'a str, Result<Option<Role>, &'static str>) {
        let identity = client.username.as_deref().unwrap_or(&client.client_id);
        let user_role = match (&client.username, client.peer) {
            (Some(name), _) => self.users.as_ref().and_then(|u| u.known_role(name)),
            (None, None) if client.client_id == KERNEL_ID => return (identity, Err(role::KERNEL)),
            (None, None) => Some(Role::Plugin),
            (None, Some(peer)) => match client.anonymous_role.as_deref() {
                Some(r) => r.parse().ok(),
                None if peer.ip().is_loopback() => Some(Role::Admin),
                None => None,
            },
        };
        (identity, Ok(user_role))
    }

    /// The identity and role stamped on a connection's publishes.
    pub(crate) fn stamp_of<'a>(&self, client: &'a ClientInfo) -> (&'a str, &'static str) {
        match self.identity_and_role(client) {
            (identity, Err(kernel)) => (identity, kernel),
            (identity, Ok(r)) => (identity, r.map_or(role::CLIENT, Role::as_str)),
        }
    }

    /// Who an identity with a role (`None`: an unknown one, treated as an observer) is.
    fn who_with<'a>(&self, identity: &'a str, user_role: Option<Role>) -> Who<'a> {
        let role = user_role.map_or(role::CLIENT, Role::as_str);
        let grants = match user_role {
            Some(Role::Admin) => None,
            other => Some(self.grants(identity, other)),
        };
        Who {
            identity,
            role,
            grants,
        }
    }

    fn grants(&self, identity: &str, user_role: Option<Role>) -> Arc<Resolved> {
        match &self.users {
            Some(users) => users.grants(identity, user_role),
            None => Arc::new(crate::users::PolicyFile::default().resolve(identity, user_role)),
        }
    }

    /// The grants of a caller whose call carries `role` (the broker's stamp); `None`:
    /// unrestricted (the kernel, administrators, or no stamp: an external broker's ACL
    /// decided).
    pub(crate) fn grants_of(&self, identity: &str, role: Option<&str>) -> Option<Arc<Resolved>> {
        match role? {
            role::KERNEL | role::ADMIN => None,
            role::CLIENT => Some(self.grants(identity, None)),
            other => Some(self.grants(identity, other.parse().ok())),
        }
    }
}
