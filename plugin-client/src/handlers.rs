//! The provider's side of RPC: the methods this client provides, and serving one call.
//!
//! A call to a provided method is read with the protocol's rules (`protocol::Incoming`),
//! answered `timeout` if it arrived after its deadline, and otherwise run in a task of its
//! own with the request's id as the task's context (`context`); a panic becomes an
//! `internal` error. The reply goes to the request's reply topic.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::context::with_parent;
use crate::protocol::{Incoming, MethodName, Parsed, ReplyTo, RpcError, Topics};
use crate::transport::{Link, Message, Outgoing};

/// An incoming call, as a provided method's handler sees it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Who called (the caller's identity, guaranteed by the broker).
    pub caller: String,
    /// `service.method`.
    pub method: String,
    pub params: Value,
    /// The request id (the call's context id).
    pub id: Option<Value>,
    /// What caused the call.
    pub parent: Option<String>,
    /// Milliseconds since the epoch after which nobody waits for the answer, if the caller
    /// set one.
    pub deadline: Option<u64>,
}

impl Call {
    /// The request id as a string: the `parent` of whatever this call causes. The SDK
    /// uses it automatically for calls, events and state changes made by the handler.
    pub fn context_id(&self) -> Option<String> {
        self.id.as_ref().map(crate::protocol::id_string)
    }
}

pub(crate) type Handler = Arc<
    dyn Fn(Call) -> Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>> + Send + Sync,
>;

/// Provided methods by name.
#[derive(Default)]
pub(crate) struct Handlers {
    map: Mutex<HashMap<String, Handler>>,
}

impl Handlers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Handler>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn insert(&self, method: &MethodName, handler: Handler) {
        self.lock().insert(method.to_string(), handler);
    }

    /// The provided methods (to subscribe again after a reconnect).
    pub fn methods(&self) -> Vec<MethodName> {
        self.lock()
            .keys()
            .filter_map(|m| MethodName::new(m).ok())
            .collect()
    }

    /// Serves `m` if it is a call to a provided method that is this connection's to
    /// serve: handed by the kernel to `me` (identity, client id), or from the broker
    /// unless the kernel hands calls out (`via_kernel`). True if it was one.
    pub fn serve(
        &self,
        topics: &Topics,
        link: &Arc<Link>,
        me: (&str, &str),
        via_kernel: bool,
        m: &Message,
    ) -> bool {
        if self.lock().is_empty() {
            return false;
        }
        let (caller, service, method) = match topics.parse(&m.topic) {
            Some(Parsed::Call {
                caller,
                service,
                method,
            }) if !via_kernel => (caller, service, method),
            Some(Parsed::Delivery {
                provider,
                client,
                caller,
                service,
                method,
            }) if (provider, client) == me => (caller, service, method),
            _ => return false,
        };
        let name = format!("{service}.{method}");
        let Some(handler) = self.lock().get(&name).cloned() else {
            return false;
        };
        let incoming = match Incoming::read(
            topics,
            caller,
            &m.payload,
            m.response_topic.as_deref(),
            m.correlation.as_ref(),
        ) {
            Ok(i) => i,
            Err(refused) => {
                tracing::debug!(%caller, method = %name, "{}", refused.error);
                spawn_reply(link, refused.reply, Err(refused.error));
                return true;
            }
        };
        if let Some(late) = incoming.expired() {
            tracing::debug!(method = %name, %caller, "request past its deadline answered timeout");
            spawn_reply(link, incoming.reply, Err(late));
            return true;
        }
        let parent = incoming.context_id();
        let call = Call {
            caller: caller.to_string(),
            method: name,
            params: incoming
                .request
                .params
                .unwrap_or(Value::Object(Default::default())),
            id: incoming.request.id,
            parent: incoming.request.parent,
            deadline: incoming.request.deadline,
        };
        let link = link.clone();
        let reply = incoming.reply;
        tokio::spawn(async move {
            let method = call.method.clone();
            let outcome = match tokio::spawn(with_parent(parent, handler(call))).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(%method, error = %e, "handler panicked");
                    Err(RpcError::internal(format!(
                        "{method} failed: handler panicked"
                    )))
                }
            };
            send_reply(&link, reply, outcome).await;
        });
        true
    }
}

fn spawn_reply(link: &Arc<Link>, to: ReplyTo, outcome: Result<Value, RpcError>) {
    let link = link.clone();
    tokio::spawn(async move { send_reply(&link, to, outcome).await });
}

/// Replies go at QoS 0 (PROTOCOL.md: a clustered broker stores a QoS 1 publish first).
async fn send_reply(link: &Link, to: ReplyTo, outcome: Result<Value, RpcError>) {
    let out = Outgoing {
        payload: to.payload(outcome).into(),
        topic: to.topic,
        qos: 0,
        retain: false,
        correlation: to.correlation,
    };
    if let Err(e) = link.publish(out).await {
        tracing::debug!(error = %e, "reply not sent");
    }
}
