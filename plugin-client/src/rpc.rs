//! Calling methods: `service.method` by name with JSON params, or a kernel method as its
//! typed command (`protocol::commands`).
//!
//! A call publishes a request on `<root>/call/<my id>/<service>/<method>` carrying its id,
//! this client's reply topic, a deadline (now + timeout) and its parent (the request the
//! current task is handling, unless the options name one) in the payload, mirrored as
//! MQTT 5 Correlation Data, and waits for the reply with that id.

use std::time::Duration;

use serde_json::Value;

use crate::client::Client;
use crate::context::current_parent;
use crate::error::ClientError;
use crate::protocol::{now_ms, Command, ErrorCode, MethodName, Request, RpcError};
use crate::transport::Outgoing;

/// Per-call options.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Overrides the client's default timeout (5 s).
    pub timeout: Option<Duration>,
    /// Context: what caused this call (default: the request the current task handles).
    pub parent: Option<String>,
}

impl Client {
    /// Calls `service.method` with the default timeout.
    pub async fn call(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        self.call_with(method, params, CallOptions::default()).await
    }

    /// Calls a kernel method with its typed parameters and decodes its typed result.
    pub async fn request<C: Command>(&self, command: C) -> Result<C::Result, ClientError> {
        let params =
            serde_json::to_value(&command).map_err(|e| ClientError::Decode(e.to_string()))?;
        let result = self.call(C::METHOD, params).await?;
        serde_json::from_value(result).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Calls `service.method`. Error replies (including `timeout`) are `ClientError::Rpc`.
    pub async fn call_with(
        &self,
        method: &str,
        params: Value,
        options: CallOptions,
    ) -> Result<Value, ClientError> {
        let method = MethodName::new(method)?;
        let timeout = options.timeout.unwrap_or(self.inner.timeout);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let request = Request {
            id: Some(Value::String(id.clone())),
            params: Some(params),
            reply_to: Some(self.inner.reply_topic.clone()),
            deadline: Some(now_ms() + timeout.as_millis() as u64),
            parent: options.parent.or_else(current_parent),
        };
        let payload =
            serde_json::to_vec(&request).map_err(|e| ClientError::Decode(e.to_string()))?;
        let via_kernel = method.is_kernel() || self.inner.routing.via_kernel();
        let reply = self.inner.pending.wait(&id, via_kernel);
        let sent = self
            .publish_message(Outgoing {
                topic: self.topics().call(self.id(), &method),
                payload: payload.into(),
                // The reply (or the timeout) is the acknowledgement; a broker PUBACK per
                // call cost ~20% of 32 writers' throughput for nothing (clean sessions).
                qos: 0,
                retain: false,
                correlation: Some(id.clone().into()),
            })
            .await;
        if let Err(e) = sent {
            self.inner.pending.forget(&id);
            return Err(e);
        }
        match tokio::time::timeout(timeout, reply).await {
            Ok(Ok(reply)) => reply.into_result().map_err(ClientError::Rpc),
            Ok(Err(_)) if self.inner.closed.load(std::sync::atomic::Ordering::Relaxed) => {
                Err(ClientError::Closed)
            }
            Ok(Err(_)) => Err(ClientError::ConnectionLost),
            Err(_) => {
                self.inner.pending.forget(&id);
                Err(ClientError::Rpc(RpcError::new(
                    ErrorCode::Timeout,
                    format!("{method} did not answer within {timeout:?}"),
                )))
            }
        }
    }
}
