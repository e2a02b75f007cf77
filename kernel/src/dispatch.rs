//! The kernel's message handling: every call, reply, state command and plugin announcement
//! under the root is routed in line, with no task hop per message: on the publisher's own
//! task when embedded (the broker delivers to in-process clients directly, possibly from
//! several tasks at once), on the connection's task over TCP. Kernel methods are answered
//! by `services`; calls to providers are watched (`calls`); durable writes go to the
//! persistence writer. Nothing here waits on anyone.

use std::sync::atomic::{AtomicBool, Ordering};

use hcore_client::protocol::commands::HostedReport;
use hcore_client::protocol::{
    payload_call_key, validate_state_key, ErrorCode, Incoming, Manifest, MethodName, Parsed,
    PluginStatus, ReplyTo, RpcError, Topics, IDENTITY_PROPERTY, KERNEL_SERVICES,
};
use hcore_client::{Message, Outgoing};
use serde_json::Value;

use crate::calls::{StatusChange, Tracked};
use crate::persist::{Job, StateWrite};
use crate::policy::{role, KERNEL_ID, ROLE_PROPERTY};

/// How far ahead of the kernel's clock a plugin's session number may be, milliseconds.
const SESSION_AHEAD_MS: u64 = 86_400_000;
use crate::ratelog::RateLog;
use crate::services::{CallCtx, Outcome, Services};
use crate::state::Origin;

pub(crate) struct Core {
    pub topics: Topics,
    pub services: Services,
    /// Set once shutdown begins: every call is answered `unavailable`.
    pub stopping: AtomicBool,
    /// The kernel hands each call to a provider itself (a broker without shared
    /// subscriptions); otherwise the broker's shared subscriptions pick one.
    pub hands_out_calls: bool,
    ratelog: RateLog,
}

fn shutting_down() -> RpcError {
    RpcError::new(ErrorCode::Unavailable, "the kernel is shutting down")
}

impl Core {
    pub fn new(topics: Topics, services: Services, hands_out_calls: bool) -> Core {
        Core {
            topics,
            services,
            stopping: AtomicBool::new(false),
            hands_out_calls,
            ratelog: RateLog::default(),
        }
    }

    fn reply(&self, to: &ReplyTo, outcome: Result<Value, RpcError>) {
        if let Err(e) = &outcome {
            tracing::debug!(code = %e.code, "{}", e.message);
        }
        self.services.replier.reply(to, outcome);
    }

    /// Handles one message, in line.
    pub fn on_message(&self, m: &Message) {
        match self.topics.parse(&m.topic) {
            Some(Parsed::Call {
                caller,
                service,
                method,
            }) => self.on_call(caller, service, method, m),
            Some(Parsed::Reply { caller }) => {
                if m.user_property(IDENTITY_PROPERTY) == Some(KERNEL_ID) {
                    return; // our own reply
                }
                let key = payload_call_key(&m.payload, m.correlation.as_deref());
                self.services
                    .calls
                    .answered(caller, key.unwrap_or_default());
            }
            Some(Parsed::StateSet { key }) => self.on_state_set(key, m),
            Some(Parsed::PluginStatus { id }) => self.on_status(id, id, m),
            Some(Parsed::ReplicaStatus { id, client }) => self.on_status(id, client, m),
            Some(Parsed::PluginManifest { id }) => self.on_manifest(id, m),
            Some(Parsed::PluginHosted { id }) => self.on_hosted(id, m),
            _ => {}
        }
    }

    fn on_call(&self, caller: &str, service: &str, method: &str, m: &Message) {
        if m.retain {
            self.ratelog
                .warn(&format!("retained call on {} ignored", m.topic));
            return;
        }
        // Disabled unless debug logging is on: then every log line of the call says whose.
        let _span =
            tracing::debug_span!("call", caller, method = %format_args!("{service}.{method}"))
                .entered();
        let name = MethodName::from_parts(service, method);
        let provided = !KERNEL_SERVICES.contains(&service)
            && name
                .as_ref()
                .is_ok_and(|n| self.services.calls.registry().is_provided(n.as_str()));
        let incoming = match Incoming::read(
            &self.topics,
            caller,
            &m.payload,
            m.response_topic.as_deref(),
            m.correlation.as_ref(),
        ) {
            Ok(i) => i,
            // A provider answers malformed requests to its own methods itself (when the
            // broker hands calls out).
            Err(_) if provided && !self.hands_out_calls => return,
            Err(refused) => return self.reply(&refused.reply, Err(refused.error)),
        };
        let name = match name {
            Ok(n) => n,
            Err(e) => {
                return self.reply(&incoming.reply, Err(RpcError::bad_request(e.to_string())))
            }
        };
        if self.stopping.load(Ordering::Relaxed) {
            return self.reply(&incoming.reply, Err(shutting_down()));
        }
        if provided {
            return self.watch(caller, &name, incoming, m);
        }
        if let Some(late) = incoming.expired() {
            return self.reply(&incoming.reply, Err(late));
        }
        if !name.is_kernel() {
            let e = RpcError::new(ErrorCode::NoResponders, format!("nobody provides {name}"));
            return self.reply(&incoming.reply, Err(e));
        }
        let role = m.user_property(ROLE_PROPERTY);
        let grants = (self.services.policy.as_ref()).and_then(|p| p.grants_of(caller, role));
        let ctx = CallCtx {
            caller: caller.to_string(),
            role: role.map(str::to_string),
            grants,
            reply: incoming.reply.clone(),
            request_id: incoming.context_id(),
        };
        let params = incoming.request.params.unwrap_or(Value::Null);
        if let Outcome::Reply(r) = self.services.handle(ctx, &name, params) {
            self.reply(&incoming.reply, r);
        }
    }

    /// A call to a provided method: the provider answers; the kernel watches for the
    /// provider dying first. When the kernel hands calls out, it picks the provider's
    /// connection and forwards the call there.
    fn watch(&self, caller: &str, name: &MethodName, incoming: Incoming, m: &Message) {
        // A call without an id or correlation data is still watched (under the empty
        // key), so that its provider's reply, which has none either, is let through.
        let key = incoming.key.clone().unwrap_or_default();
        let deadline = incoming.request.deadline;
        let reply = incoming.reply.clone();
        let mut taker = None;
        if self.hands_out_calls {
            let calls = &self.services.calls;
            taker = calls.hand_out(caller, key.clone(), name.as_str());
            if taker.is_none() {
                let e = RpcError::new(ErrorCode::NoResponders, format!("nobody provides {name}"));
                return self.reply(&reply, Err(e));
            }
        }
        let tracked =
            self.services
                .calls
                .track(caller, key, name.as_str(), incoming.reply.clone(), deadline);
        match tracked {
            Tracked::Watching => {
                if let Some((provider, client)) = taker {
                    self.forward(caller, name, &provider, &client, &incoming, m);
                }
            }
            Tracked::Failed(f) => self.fail_unavailable(&f.method, &f.reply),
            Tracked::NoRoom => {
                let e = RpcError::new(
                    ErrorCode::QuotaExceeded,
                    format!("{caller} has too many calls in flight (max_pending_per_caller)"),
                );
                self.reply(&reply, Err(e));
            }
        }
    }

    /// Hands a call to connection `client` of `provider` on its delivery topic, with
    /// the reply topic in the payload (the caller may have named it only in MQTT 5
    /// properties, which a 3.1.1 provider would not see).
    fn forward(
        &self,
        caller: &str,
        name: &MethodName,
        provider: &str,
        client: &str,
        incoming: &Incoming,
        m: &Message,
    ) {
        let payload = match &incoming.request.reply_to {
            Some(_) => m.payload.clone(),
            None => {
                let mut request = incoming.request.clone();
                request.reply_to = Some(incoming.reply.topic.clone());
                serde_json::to_vec(&request).unwrap_or_default().into()
            }
        };
        let topic = self
            .topics
            .delivery(provider, client, caller, name.service(), name.method());
        tracing::debug!(provider, client, "call handed out");
        self.services.replier.send(Outgoing {
            topic,
            payload,
            qos: 0,
            retain: false,
            correlation: incoming.reply.correlation.clone(),
        });
    }

    fn fail_unavailable(&self, method: &str, to: &ReplyTo) {
        let e = RpcError::new(
            ErrorCode::Unavailable,
            format!("the provider of {method} went offline during the call"),
        );
        self.reply(to, Err(e));
    }

    /// `<root>/state/<key>/set`: the payload is the new value (empty: delete).
    fn on_state_set(&self, key: &str, m: &Message) {
        let warn = |what: &str| {
            self.ratelog
                .warn(&format!("state command on {}: {what}", m.topic))
        };
        if m.retain {
            return warn("retained; ignored");
        }
        if let Some(r @ (role::OBSERVER | role::CLIENT)) = m.user_property(ROLE_PROPERTY) {
            return warn(&format!("role {r} may not change state; ignored"));
        }
        if let Err(e) = validate_state_key(key) {
            return warn(&e.to_string());
        }
        if let Some(owner) = self.services.calls.registry().state_command_owner(key) {
            return tracing::debug!(key, owner, "state command handled by its plugin");
        }
        let write = if m.payload.is_empty() {
            StateWrite::Delete { expected: None }
        } else {
            match serde_json::from_slice::<Value>(&m.payload) {
                Ok(value) => {
                    if let Err(e) = self.services.check_value(&value) {
                        return warn(&e.message);
                    }
                    StateWrite::Set {
                        value,
                        expected: None,
                    }
                }
                Err(e) => return warn(&format!("not JSON: {e}")),
            }
        };
        let origin = Origin {
            source: m
                .user_property(IDENTITY_PROPERTY)
                .unwrap_or("unknown")
                .to_string(),
            parent: None,
        };
        let job = Job::State {
            key: key.to_string(),
            write,
            origin,
            reply: None,
        };
        if let Err(e) = self.services.persist.submit(job) {
            warn(&format!("not applied ({e:?})"));
        }
    }

    /// The status of connection `client` of plugin `id` (`client` = `id`: its own).
    fn on_status(&self, id: &str, client: &str, m: &Message) {
        if m.payload.is_empty() {
            return;
        }
        let status = match serde_json::from_slice::<PluginStatus>(&m.payload) {
            Ok(s) => s,
            Err(e) => {
                return self
                    .ratelog
                    .warn(&format!("unreadable status of {id}: {e}"))
            }
        };
        // Sessions are increasing numbers; the SDK's are milliseconds since the epoch. One
        // far in the future would make every later real status look stale.
        let horizon = hcore_client::protocol::now_ms().saturating_add(SESSION_AHEAD_MS);
        if status.session > horizon {
            return self.ratelog.warn(&format!(
                "status of {id} with session {} (more than a day ahead of this clock) ignored",
                status.session
            ));
        }
        let change = self
            .services
            .calls
            .registry()
            .on_status(id, client, &status);
        match change {
            StatusChange::Online => {
                tracing::info!(plugin = id, session = status.session, "plugin online")
            }
            StatusChange::Stale => tracing::info!(
                plugin = id,
                session = status.session,
                "stale offline status ignored"
            ),
            StatusChange::Unchanged => {}
            StatusChange::NoRoom => self.ratelog.warn(&format!(
                "status of {id} replica {client} ignored: too many connections of {id}"
            )),
            StatusChange::Offline => {
                tracing::info!(plugin = id, "plugin offline; its services are unregistered");
                for f in self.services.calls.provider_gone(id, None) {
                    self.fail_unavailable(&f.method, &f.reply);
                }
            }
            StatusChange::ReplicaOffline => {
                tracing::info!(plugin = id, replica = client, "replica offline");
                for f in self.services.calls.provider_gone(id, Some(client)) {
                    self.fail_unavailable(&f.method, &f.reply);
                }
            }
            // The calls the kernel handed to the lost connection never reach the new one
            // (with shared subscriptions the broker had delivered them, and the will
            // tells the kernel).
            StatusChange::Reconnected if self.hands_out_calls => {
                tracing::info!(
                    plugin = id,
                    replica = client,
                    session = status.session,
                    "connection replaced without its will; its calls fail"
                );
                for f in self.services.calls.provider_gone(id, Some(client)) {
                    self.fail_unavailable(&f.method, &f.reply);
                }
                // A broker node died: retained records written meanwhile may be lost.
                self.services
                    .persist
                    .republish_later(crate::persist::AFTER_NODE_LOSS);
            }
            StatusChange::Reconnected => {}
        }
    }

    fn on_manifest(&self, id: &str, m: &Message) {
        if m.payload.is_empty() {
            return;
        }
        match serde_json::from_slice::<Manifest>(&m.payload) {
            Ok(manifest) => self.services.calls.registry().on_manifest(id, manifest),
            Err(e) => self
                .ratelog
                .warn(&format!("unreadable manifest of {id}: {e}")),
        }
    }

    fn on_hosted(&self, host: &str, m: &Message) {
        if m.payload.is_empty() {
            return;
        }
        match serde_json::from_slice::<HostedReport>(&m.payload) {
            Ok(report) => self.services.calls.registry().on_hosted(host, report),
            Err(e) => self
                .ratelog
                .warn(&format!("unreadable plugin report of host {host}: {e}")),
        }
    }

    /// Shutdown begins: from now on every call is answered `unavailable`, and so is every
    /// call still waiting for a provider.
    pub fn stop_answering(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for f in self.services.calls.take_all() {
            self.reply(&f.reply, Err(shutting_down()));
        }
    }
}
