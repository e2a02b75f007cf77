//! The kernel policy as the broker's hooks: each hook asks `who` the connection is and
//! applies the rules listed in `policy` to the topic (and, for replies, the call).

use hcore_broker::{ClientInfo, ConnectInfo, ConnectRefusal, Hooks, PublishInfo};
use hcore_client::protocol::{payload_call_key, Parsed, IDENTITY_PROPERTY};

use super::{role, KernelPolicy, Who, ROLE_PROPERTY};
use crate::users::Refused;

impl KernelPolicy {
    fn refuse_login(&self, c: &ConnectInfo<'_>, why: &str) -> Result<(), ConnectRefusal> {
        tracing::warn!(client_id = c.client_id, user = ?c.username, peer = ?c.peer, "refusing a CONNECT: {why}");
        Err(ConnectRefusal::NotAuthorized)
    }

    fn check_password(&self, c: &ConnectInfo<'_>, name: &str) -> Result<(), ConnectRefusal> {
        let outcome = match &self.users {
            Some(users) => users.authenticate(name, c.password.unwrap_or("")),
            None => Err(Refused::UnknownUser),
        };
        outcome.map(|_| ()).map_err(|why| {
            tracing::info!(
                user = name,
                client_id = c.client_id,
                peer = ?c.peer,
                ?why,
                "refusing a CONNECT: bad user name or password"
            );
            ConnectRefusal::BadCredentials
        })
    }

    fn may_publish(&self, who: &Who<'_>, client: &ClientInfo, p: &PublishInfo<'_>) -> bool {
        if who.is_kernel() {
            return true;
        }
        if !p.topic.starts_with(&self.prefix) {
            return who.grants.as_ref().is_none_or(|g| g.may_publish(p.topic));
        }
        let announces = matches!(who.role, role::ADMIN | role::PLUGIN);
        match self.topics.parse(p.topic) {
            Some(Parsed::Call { caller, .. }) => caller == who.identity,
            Some(Parsed::Event { source, .. }) => source == who.identity && announces,
            Some(Parsed::PluginStatus { id })
            | Some(Parsed::PluginManifest { id })
            | Some(Parsed::PluginHosted { id }) => id == who.identity && announces,
            Some(Parsed::ReplicaStatus { id, client: c }) => {
                id == who.identity && c == client.client_id && announces
            }
            Some(Parsed::StateSet { key }) => {
                who.grants.as_ref().is_none_or(|g| g.may_write_state(key))
            }
            Some(Parsed::Reply { caller }) => self.may_reply(client, caller, p),
            Some(Parsed::State { .. })
            | Some(Parsed::KernelStatus)
            | Some(Parsed::Delivery { .. })
            | None => false,
        }
    }

    /// Only a connection the call was delivered to may answer it.
    fn may_reply(&self, client: &ClientInfo, caller: &str, p: &PublishInfo<'_>) -> bool {
        let key = payload_call_key(p.payload, p.correlation).unwrap_or_default();
        let allowed = self
            .watch()
            .is_some_and(|w| w.may_reply(caller, key, &client.session_key()));
        if !allowed {
            tracing::debug!(client_id = %client.client_id, topic = p.topic, "reply refused: no call it answers was delivered to this connection");
        }
        allowed
    }

    /// May `who` take calls of `service` (and `method`, if not a wildcard) by name?
    fn may_take(&self, who: &Who<'_>, service: &str, method: &str) -> bool {
        let Some(g) = &who.grants else { return true };
        if service == "+" || service == "#" {
            return true; // deliveries are checked one by one
        }
        if method == "+" || method == "#" || method.is_empty() {
            return g.may_provide_service(service);
        }
        g.may_provide(&format!("{service}.{method}"))
    }
}

impl Hooks for KernelPolicy {
    fn authenticate(&self, c: &ConnectInfo<'_>) -> Result<(), ConnectRefusal> {
        if self.is_reserved(c.client_id) {
            return self.refuse_login(c, "the client id is reserved");
        }
        let Some(name) = c.username else {
            // Anonymous (the listener allowed it): its identity is its client id, so it
            // must not be a user's.
            if let Some(users) = &self.users {
                if users.role(c.client_id).is_some() {
                    return self.refuse_login(
                        c,
                        "an anonymous client uses a user's name as its client id",
                    );
                }
            }
            return Ok(());
        };
        if self.is_reserved(name) {
            return self.refuse_login(c, "the user name is reserved");
        }
        if c.certificate {
            // The listener verified the certificate; its CN must still be a user (for
            // its role), and removing the user locks the certificate out.
            let known = self.users.as_ref().and_then(|u| u.role(name)).is_some();
            return match known {
                true => Ok(()),
                false => self.refuse_login(c, "a client certificate for an unknown user"),
            };
        }
        self.check_password(c, name)
    }

    fn authorize_publish(&self, client: &ClientInfo, publish: &PublishInfo<'_>) -> bool {
        let who = self.who(client);
        self.may_publish(&who, client, publish)
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
        let who = self.who(client);
        if who.is_kernel() {
            return true;
        }
        // The broker's own state (`$SYS/...`) is for administrators.
        if filter.starts_with("$SYS") {
            return who.is_admin();
        }
        let Some(rest) = filter.strip_prefix(&self.prefix) else {
            return true; // deliveries are checked one by one
        };
        let mut levels = rest.split('/');
        match (levels.next(), levels.next()) {
            // Naming another identity's reply space (or a wildcard in its place) is
            // refused; broader filters are fine because deliveries are checked.
            (Some("reply"), Some(caller)) | (Some("deliver"), Some(caller)) => {
                who.is_admin() || caller == who.identity
            }
            (Some("call"), Some(_)) => {
                let service = levels.next().unwrap_or("#");
                let method = levels.next().unwrap_or("");
                self.may_take(&who, service, method)
            }
            _ => true,
        }
    }

    fn authorize_delivery(&self, client: &ClientInfo, topic: &str) -> bool {
        let who = self.who(client);
        let Some(grants) = &who.grants else {
            return true; // the kernel, administrators
        };
        if !topic.starts_with(&self.prefix) {
            return grants.may_read(topic);
        }
        match self.topics.parse(topic) {
            Some(Parsed::Reply { caller }) => caller == who.identity,
            Some(Parsed::Delivery { provider, .. }) => provider == who.identity,
            Some(Parsed::Call {
                caller,
                service: "storage",
                ..
            }) => caller == who.identity,
            Some(Parsed::Call {
                caller,
                service,
                method,
            }) => caller == who.identity || grants.may_provide(&format!("{service}.{method}")),
            _ => true,
        }
    }

    /// A shared group's member takes a call only if it may provide the method and has
    /// registered it: joining a service's group takes none of its calls.
    fn authorize_group_delivery(&self, client: &ClientInfo, topic: &str) -> bool {
        let Some(Parsed::Call {
            service, method, ..
        }) = self.topics.parse(topic)
        else {
            return true;
        };
        let who = self.who(client);
        if who.is_kernel() {
            return true;
        }
        let name = format!("{service}.{method}");
        who.grants.as_ref().is_none_or(|g| g.may_provide(&name))
            && self
                .watch()
                .is_some_and(|w| w.provides(&name, who.identity))
    }

    fn observe_delivery(
        &self,
        client: &ClientInfo,
        topic: &str,
        payload: &[u8],
        correlation: Option<&[u8]>,
    ) {
        if !topic.starts_with(&self.prefix) {
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
        let (identity, role) = self.stamp_of(client);
        if role == role::KERNEL {
            return;
        }
        if let Some(watch) = self.watch() {
            let key = payload_call_key(payload, correlation).unwrap_or_default();
            let method = format!("{service}.{method}");
            watch.call_delivered(caller, &method, identity, &client.session_key(), key);
        }
    }

    fn stamps(&self, client: &ClientInfo, topic: &str, stamp: &mut dyn FnMut(&'static str, &str)) {
        let Some(rest) = topic.strip_prefix(&self.prefix) else {
            return;
        };
        // Identity and role only: the grants are not needed here (every publish).
        let (identity, role) = self.stamp_of(client);
        stamp(IDENTITY_PROPERTY, identity);
        // The role matters only to the kernel: for calls and state commands.
        if rest.starts_with("call/") || rest.starts_with("state/") {
            stamp(ROLE_PROPERTY, role);
        }
    }
}
