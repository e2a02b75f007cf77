//! The kernel's message handling: every call, reply, state command and plugin announcement
//! under the root is routed in line, with no task hop per message: on the publisher's own
//! task when embedded (the broker delivers to in-process clients directly, possibly from
//! several tasks at once), on the connection's task over TCP. Reads and registry changes
//! are answered there; durable writes go to the persistence writer; slow lifecycle operations
//! get a task of their own. Nothing here waits on a client.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hcore_client::protocol::{
    now_ms, validate_state_key, Manifest, Parsed, PluginStatus, Request, RpcError, Topics,
    DEFAULT_TIMEOUT_MS, IDENTITY_PROPERTY, KERNEL_SERVICES,
};
use hcore_client::transport::{Event, Link, Message, Outgoing};
use hcore_client::ErrorCode;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::config::KernelConfig;
use crate::manager::PluginManager;
use crate::pending::{request_key, PendingCalls, ReplyTo};
use crate::persist::{reply_message, Persist};
use crate::policy::KERNEL_ID;
use crate::ratelog::RateLog;
use crate::registry::{Registry, StatusChange};
use crate::services::{self, apply_change, apply_delete, CallCtx, Outcome};
use crate::state_engine::StateEngine;
use crate::storage::Storage;

/// Everything the kernel's tasks share.
pub(crate) struct Shared {
    pub config: KernelConfig,
    pub topics: Topics,
    pub link: Arc<Link>,
    pub db: sled::Db,
    pub state: Mutex<StateEngine>,
    pub storage: Storage,
    pub registry: Arc<Mutex<Registry>>,
    pub pending: Arc<Mutex<PendingCalls>>,
    pub persist: Persist,
    pub manager: OnceLock<PluginManager>,
    pub started: Instant,
    pub session: AtomicU64,
    pub ratelog: RateLog,
    /// Set once shutdown begins: messages are no longer handled.
    pub stopped: AtomicBool,
    /// Told when the first connection is set up.
    pub ready: Mutex<Option<oneshot::Sender<()>>>,
}

/// Forgets answered-or-expired calls once a second until the kernel stops.
pub(crate) async fn sweep(sh: std::sync::Weak<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(sh) = sh.upgrade() else { break };
        if sh.stopped.load(Ordering::Relaxed) {
            break;
        }
        sh.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sweep(now_ms());
    }
}

impl Shared {
    pub async fn publish(&self, m: Outgoing) {
        if let Err(e) = self.link.publish(m).await {
            tracing::warn!(error = %e, "kernel publish failed");
        }
    }

    /// Publishes from the connection's task: at once if the link takes it, else later.
    fn publish_now(self: &Arc<Self>, m: Outgoing) {
        if let Err(m) = self.link.try_publish(m) {
            let sh = self.clone();
            tokio::spawn(async move { sh.publish(m).await });
        }
    }

    fn reply(self: &Arc<Self>, to: &ReplyTo, outcome: Result<Value, RpcError>) {
        self.publish_now(reply_message(to, outcome));
    }

    /// Handles one event from the connection, in line.
    pub fn on_event(self: &Arc<Self>, e: Event) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        match e {
            Event::Connected { session } => {
                let sh = self.clone();
                tokio::spawn(async move {
                    sh.on_connected(session).await;
                    if let Some(r) = sh.ready.lock().unwrap_or_else(|e| e.into_inner()).take() {
                        let _ = r.send(());
                    }
                });
            }
            Event::Message(m) => self.on_message(m),
            Event::Closed => tracing::error!("the kernel's broker connection closed"),
        }
    }

    pub fn status(&self, state: &str) -> Outgoing {
        let status = PluginStatus {
            state: state.to_string(),
            session: self.session.load(Ordering::Relaxed),
            ts: Some(now_ms()),
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        };
        Outgoing {
            topic: self.topics.kernel_status(),
            payload: status.to_bytes().into(),
            qos: 1,
            retain: true,
            correlation: None,
        }
    }

    /// (Re)subscribes, republishes every state record and announces the kernel.
    async fn on_connected(&self, session: u64) {
        self.session.store(session, Ordering::Relaxed);
        let root = self.topics.root();
        for filter in [
            format!("{root}/call/#"),
            format!("{root}/reply/#"),
            format!("{root}/state/#"),
            format!("{root}/plugin/+/status"),
            format!("{root}/plugin/+/manifest"),
        ] {
            if let Err(e) = self.link.subscribe(&filter).await {
                tracing::error!(%filter, error = %e, "kernel cannot subscribe");
            }
        }
        let records: Vec<Outgoing> = {
            let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state
                .records()
                .map(|(k, r)| Outgoing {
                    topic: self.topics.state(k),
                    payload: serde_json::to_vec(r).unwrap_or_default().into(),
                    qos: 1,
                    retain: true,
                    correlation: None,
                })
                .collect()
        };
        tracing::info!(
            records = records.len(),
            "republishing state as retained messages"
        );
        for r in records {
            self.publish(r).await;
        }
        self.publish(self.status("online")).await;
    }

    fn on_message(self: &Arc<Self>, m: Message) {
        match self.topics.parse(&m.topic) {
            Some(Parsed::Call {
                caller,
                service,
                method,
            }) => {
                let (caller, service, method) =
                    (caller.to_string(), service.to_string(), method.to_string());
                self.on_call(&caller, &service, &method, &m);
            }
            Some(Parsed::Reply { caller }) => {
                if m.user_property(IDENTITY_PROPERTY) == Some(KERNEL_ID) {
                    return; // our own reply
                }
                if let Some(id) = request_key(&m.payload, m.correlation.as_deref()) {
                    self.pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .answered(&(caller.to_string(), id));
                }
            }
            Some(Parsed::StateSet { key }) => {
                let key = key.to_string();
                self.on_state_set(&key, &m);
            }
            Some(Parsed::PluginStatus { id }) => {
                let id = id.to_string();
                self.on_status(&id, &m);
            }
            Some(Parsed::PluginManifest { id }) => {
                if m.payload.is_empty() {
                    return;
                }
                match serde_json::from_slice::<Manifest>(&m.payload) {
                    Ok(manifest) => self
                        .registry
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .on_manifest(id, manifest),
                    Err(e) => self
                        .ratelog
                        .warn(&format!("unreadable manifest of {id}: {e}")),
                }
            }
            _ => {}
        }
    }

    fn on_call(self: &Arc<Self>, caller: &str, service: &str, method: &str, m: &Message) {
        if m.retain {
            self.ratelog
                .warn(&format!("retained call on {} ignored", m.topic));
            return;
        }
        let full = format!("{service}.{method}");
        // Disabled unless debug logging is on: then every log line of the call says whose.
        let _span = tracing::debug_span!("call", caller, method = %full).entered();
        let is_kernel = KERNEL_SERVICES.contains(&service);
        let default_reply = self.topics.reply(caller);
        let parsed = serde_json::from_slice::<Request>(&m.payload);
        let provided = !is_kernel
            && self
                .registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_provided(&full);
        let Ok(req) = parsed else {
            if provided {
                return; // the provider answers malformed requests itself
            }
            let reason = parsed.err().map(|e| e.to_string()).unwrap_or_default();
            let to = ReplyTo {
                topic: default_reply,
                id: None,
                correlation: m.correlation.clone(),
            };
            self.reply(
                &to,
                Err(RpcError::bad_request(format!(
                    "request is not valid: {reason}"
                ))),
            );
            return;
        };
        let wanted = req.reply_to.clone().or_else(|| m.response_topic.clone());
        let valid = wanted
            .as_deref()
            .is_none_or(|t| !t.contains(['+', '#']) && self.topics.is_reply_space(caller, t));
        let to = ReplyTo {
            topic: wanted.filter(|_| valid).unwrap_or(default_reply),
            id: req.id.clone(),
            correlation: m.correlation.clone(),
        };
        let deadline = req
            .deadline
            .unwrap_or_else(|| now_ms() + DEFAULT_TIMEOUT_MS);
        if provided {
            if valid {
                if let Some(key) = request_key(&m.payload, m.correlation.as_deref()) {
                    self.pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .track((caller.to_string(), key), &full, to, deadline);
                }
            }
            return;
        }
        let outcome = if !valid {
            Err(RpcError::bad_request(format!(
                "reply topic must be {} or below it, without wildcards",
                self.topics.reply(caller)
            )))
        } else if deadline < now_ms() {
            Err(RpcError::new(
                ErrorCode::Timeout,
                "request arrived after its deadline",
            ))
        } else if !is_kernel {
            Err(RpcError::new(
                ErrorCode::NoResponders,
                format!("nobody provides {full}"),
            ))
        } else {
            let ctx = CallCtx {
                caller: caller.to_string(),
                reply: to.clone(),
                request_id: req.id.as_ref().map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
            };
            let params = req.params.unwrap_or(Value::Null);
            match services::handle(self, ctx, service, method, params) {
                Outcome::Reply(r) => r,
                Outcome::Later => return,
            }
        };
        if let Err(e) = &outcome {
            tracing::debug!(code = %e.code, "{}", e.message);
        }
        self.reply(&to, outcome);
    }

    /// `<root>/state/<key>/set`: the payload is the new value (empty: delete).
    fn on_state_set(self: &Arc<Self>, key: &str, m: &Message) {
        if m.retain {
            self.ratelog
                .warn(&format!("retained state command on {} ignored", m.topic));
            return;
        }
        if let Err(e) = validate_state_key(key) {
            self.ratelog
                .warn(&format!("state command on {}: {e}", m.topic));
            return;
        }
        let source = m
            .user_property(IDENTITY_PROPERTY)
            .unwrap_or("unknown")
            .to_string();
        if m.payload.is_empty() {
            let removed = self
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .delete(key, None);
            if let Ok(removed) = removed {
                apply_delete(self, key, removed, &source, None, None);
            }
            return;
        }
        let value: Value = match serde_json::from_slice(&m.payload) {
            Ok(v) => v,
            Err(e) => {
                self.ratelog
                    .warn(&format!("state command on {} is not JSON: {e}", m.topic));
                return;
            }
        };
        if let Err(e) = services::check_size(self, &value) {
            self.ratelog
                .warn(&format!("state command on {}: {e}", m.topic));
            return;
        }
        let change = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .set(key, value, None, &source, None);
        if let Ok(change) = change {
            apply_change(self, key, change, None);
        }
    }

    fn on_status(self: &Arc<Self>, id: &str, m: &Message) {
        if m.payload.is_empty() {
            return;
        }
        let status = match serde_json::from_slice::<PluginStatus>(&m.payload) {
            Ok(s) => s,
            Err(e) => {
                self.ratelog
                    .warn(&format!("unreadable status of {id}: {e}"));
                return;
            }
        };
        let change = self
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .on_status(id, &status);
        match change {
            StatusChange::Online => {
                tracing::info!(plugin = id, session = status.session, "plugin online")
            }
            StatusChange::Stale => {
                tracing::info!(
                    plugin = id,
                    session = status.session,
                    "stale offline status ignored"
                )
            }
            StatusChange::Unchanged => {}
            StatusChange::Offline => {
                tracing::info!(plugin = id, "plugin offline; its services are unregistered");
                let failed = {
                    let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
                    self.pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .provider_gone(id, |method| registry.is_provided(method))
                };
                for f in failed {
                    let err = RpcError::new(
                        ErrorCode::Unavailable,
                        format!("the provider of {} went offline during the call", f.method),
                    );
                    self.reply(&f.reply, Err(err));
                }
            }
        }
    }
}
