//! RPC: calling `service.method` and providing methods.
//!
//! A call publishes a request on `<root>/call/<my id>/<service>/<method>` with a fresh id,
//! a deadline and this client's reply topic, and waits for the reply with that id (or
//! correlation data). A provider subscribes to the method's shared subscription, runs the
//! handler in its own task (a panic becomes an `internal` error), and replies to the
//! request's reply topic after checking it belongs to the caller.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use crate::client::{Client, Inner};
use crate::error::ClientError;
use crate::protocol::{now_ms, validate_name, ErrorCode, Parsed, Reply, Request, RpcError};
use crate::transport::{Message, Outgoing};

/// An incoming call, as a provided method's handler sees it.
#[derive(Debug, Clone)]
pub struct Call {
    /// Who called (the caller's client id, guaranteed by the broker).
    pub caller: String,
    /// `service.method`.
    pub method: String,
    pub params: Value,
    /// The request id (the call's context id).
    pub id: Option<Value>,
    /// What caused the call.
    pub parent: Option<String>,
    /// Milliseconds since the epoch after which nobody waits for the answer.
    pub deadline: u64,
}

impl Call {
    /// The request id as a string, to pass as `parent` of what this call causes.
    pub fn context_id(&self) -> Option<String> {
        match &self.id {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
            None => None,
        }
    }
}

pub(crate) type Handler = Arc<
    dyn Fn(Call) -> Pin<Box<dyn Future<Output = Result<Value, RpcError>> + Send>> + Send + Sync,
>;

/// Per-call options.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Overrides the client's default timeout (5 s).
    pub timeout: Option<Duration>,
    /// Context: what caused this call.
    pub parent: Option<String>,
}

fn split_method(method: &str) -> Result<(&str, &str), ClientError> {
    let (service, name) = method.split_once('.').ok_or_else(|| {
        ClientError::Invalid(crate::protocol::NameError(format!(
            "{method}: methods are named service.method"
        )))
    })?;
    validate_name(service)?;
    validate_name(name)?;
    Ok((service, name))
}

impl Client {
    /// Calls `service.method` with the default timeout.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.call_with(method, params, CallOptions::default()).await
    }

    /// Calls `service.method`. Error replies (including `timeout`) are `ClientError::Rpc`.
    pub async fn call_with(
        &self,
        method: &str,
        params: Value,
        options: CallOptions,
    ) -> Result<Value, ClientError> {
        let (service, name) = split_method(method)?;
        let timeout = options.timeout.unwrap_or(self.inner.timeout);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let request = Request {
            id: Some(Value::String(id.clone())),
            params: Some(params),
            reply_to: Some(self.inner.reply_topic.clone()),
            deadline: Some(now_ms() + timeout.as_millis() as u64),
            parent: options.parent,
        };
        let payload =
            serde_json::to_vec(&request).map_err(|e| ClientError::Decode(e.to_string()))?;
        let (tx, rx) = oneshot::channel();
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        let sent = self
            .inner
            .send(Outgoing {
                topic: self.topics().call(self.id(), service, name),
                payload: payload.into(),
                // The reply (or the timeout) is the acknowledgement; a broker PUBACK per
                // call cost ~20% of 32 writers' throughput for nothing (clean sessions).
                qos: 0,
                retain: false,
                correlation: Some(id.clone().into()),
            })
            .await;
        if let Err(e) = sent {
            self.forget(&id);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => reply.into_result().map_err(ClientError::Rpc),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => {
                self.forget(&id);
                Err(ClientError::Rpc(RpcError::new(
                    ErrorCode::Timeout,
                    format!("{method} did not answer within {timeout:?}"),
                )))
            }
        }
    }

    fn forget(&self, id: &str) {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Provides `service.method`: subscribes to its shared subscription, adds it to the
    /// manifest and registers it with the kernel. When this returns, calls are routed here.
    pub async fn provide<F, Fut>(&self, method: &str, handler: F) -> Result<(), ClientError>
    where
        F: Fn(Call) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, RpcError>> + Send + 'static,
    {
        let (service, name) = split_method(method)?;
        let handler: Handler = Arc::new(move |call| Box::pin(handler(call)));
        self.inner
            .handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(method.to_string(), handler);
        self.inner
            .link
            .subscribe(&self.topics().provider_filter(service, name))
            .await?;
        let changed = {
            let mut m = self
                .inner
                .manifest
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let new = !m.services.iter().any(|s| s == method);
            if new {
                m.services.push(method.to_string());
            }
            new
        };
        if changed && self.inner.announce {
            self.inner.publish_manifest().await?;
        }
        self.call(
            "registry.register",
            serde_json::json!({ "methods": [method] }),
        )
        .await?;
        Ok(())
    }
}

/// Serves `m` if it is a call to a method this client provides.
pub(crate) fn maybe_serve(inner: &Arc<Inner>, m: &Message) {
    let Some(Parsed::Call {
        caller,
        service,
        method,
    }) = inner.topics.parse(&m.topic)
    else {
        return;
    };
    let name = format!("{service}.{method}");
    let Some(handler) = inner
        .handlers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&name)
        .cloned()
    else {
        return;
    };
    let default_reply = inner.topics.reply(caller);
    let request: Request = match serde_json::from_slice(&m.payload) {
        Ok(r) => r,
        Err(e) => {
            let reply = Reply::new(
                None,
                Err(RpcError::bad_request(format!(
                    "request is not valid JSON: {e}"
                ))),
            );
            spawn_reply(inner, default_reply, m.correlation.clone(), reply);
            return;
        }
    };
    let reply_to = request
        .reply_to
        .clone()
        .or_else(|| m.response_topic.clone())
        .unwrap_or(default_reply);
    if !inner.topics.is_reply_space(caller, &reply_to) {
        tracing::warn!(%caller, %reply_to, "request with a reply topic outside the caller's reply space dropped");
        return;
    }
    let deadline = request
        .deadline
        .unwrap_or_else(|| now_ms() + crate::protocol::DEFAULT_TIMEOUT_MS);
    if deadline < now_ms() {
        tracing::debug!(method = %name, %caller, "request past its deadline dropped");
        return;
    }
    let call = Call {
        caller: caller.to_string(),
        method: name,
        params: request.params.unwrap_or(Value::Object(Default::default())),
        id: request.id,
        parent: request.parent,
        deadline,
    };
    let inner = inner.clone();
    let correlation = m.correlation.clone();
    tokio::spawn(async move {
        let id = call.id.clone();
        let method = call.method.clone();
        let outcome = match tokio::spawn(handler(call)).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(%method, error = %e, "handler panicked");
                Err(RpcError::internal(format!(
                    "{method} failed: handler panicked"
                )))
            }
        };
        let reply = Reply::new(id, outcome);
        let _ = send_reply(&inner, reply_to, correlation, reply).await;
    });
}

fn spawn_reply(inner: &Arc<Inner>, topic: String, correlation: Option<bytes::Bytes>, reply: Reply) {
    let inner = inner.clone();
    tokio::spawn(async move {
        let _ = send_reply(&inner, topic, correlation, reply).await;
    });
}

async fn send_reply(
    inner: &Inner,
    topic: String,
    correlation: Option<bytes::Bytes>,
    reply: Reply,
) -> Result<(), ClientError> {
    inner
        .send(Outgoing {
            topic,
            payload: reply.to_bytes().into(),
            qos: 1,
            retain: false,
            correlation,
        })
        .await
}
