//! Payloads: event envelopes, requests, replies, state records, plugin status and
//! manifests, and the fixed set of RPC error codes.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An event on `<root>/event/<source>/<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    #[serde(default)]
    pub parent: Option<String>,
    pub source: String,
    pub ts: u64,
    #[serde(default)]
    pub data: Value,
}

impl Envelope {
    /// A new event with a fresh id.
    pub fn new(source: &str, parent: Option<String>, data: Value) -> Envelope {
        Envelope {
            id: uuid::Uuid::new_v4().to_string(),
            parent,
            source: source.to_string(),
            ts: now_ms(),
            data,
        }
    }
}

/// An RPC request payload. Every field is optional on the wire (PROTOCOL.md says which
/// are required for MQTT 3.1.1 callers); wrong types are errors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// The fixed set of RPC error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    NotFound,
    NoResponders,
    Timeout,
    Conflict,
    Forbidden,
    Unavailable,
    /// A storage or state limit would be exceeded (the write is refused, nothing changed).
    QuotaExceeded,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NoResponders => "no_responders",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A structured RPC error: `{"code", "message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RpcError {
    pub code: ErrorCode,
    pub message: String,
}

impl RpcError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RpcError {
        RpcError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> RpcError {
        RpcError::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> RpcError {
        RpcError::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> RpcError {
        RpcError::new(ErrorCode::Conflict, message)
    }

    pub fn internal(message: impl Into<String>) -> RpcError {
        RpcError::new(ErrorCode::Internal, message)
    }
}

/// An RPC reply payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Reply {
    pub fn new(id: Option<Value>, outcome: Result<Value, RpcError>) -> Reply {
        match outcome {
            Ok(result) => Reply {
                id,
                result: Some(result),
                error: None,
            },
            Err(error) => Reply {
                id,
                result: None,
                error: Some(error),
            },
        }
    }

    /// The outcome. A `null` result decodes as an absent one, so no `error` means success.
    pub fn into_result(self) -> Result<Value, RpcError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.result.unwrap_or(Value::Null)),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

/// The context of a state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateContext {
    pub id: String,
    #[serde(default)]
    pub parent: Option<String>,
}

/// A state value as stored and published retained on `<root>/state/<key>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateRecord {
    pub value: Value,
    pub version: u64,
    pub ts: u64,
    pub source: String,
    pub context: StateContext,
}

/// `calls` of a kernel status whose kernel hands each call to one provider itself.
pub const CALLS_VIA_KERNEL: &str = "kernel";

/// `<root>/plugin/<id>/status`, `<root>/plugin/<id>/replica/<client>` and
/// `<root>/kernel/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginStatus {
    pub state: String,
    pub session: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The kernel's only: how calls reach providers (`kernel`: on their delivery topics;
    /// absent: through the broker's shared subscriptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<String>,
}

impl PluginStatus {
    pub fn online(session: u64) -> PluginStatus {
        PluginStatus {
            state: "online".into(),
            session,
            ts: Some(now_ms()),
            version: None,
            calls: None,
        }
    }

    pub fn offline(session: u64) -> PluginStatus {
        PluginStatus {
            state: "offline".into(),
            session,
            ts: None,
            version: None,
            calls: None,
        }
    }

    pub fn is_online(&self) -> bool {
        self.state == "online"
    }

    /// Does the kernel that published this hand calls to providers itself?
    pub fn calls_via_kernel(&self) -> bool {
        self.calls.as_deref() == Some(CALLS_VIA_KERNEL)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `<root>/plugin/<id>/manifest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub services: Vec<String>,
    #[serde(default)]
    pub events: Vec<String>,
    /// State keys (MQTT filters on the key, e.g. `devices/+`) whose command topic
    /// `<root>/state/<key>/set` this plugin handles: the kernel does not write those keys
    /// from it (a desired value is not a reported one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub state_commands: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_wire_format() {
        let ok = Reply::new(Some(Value::from("c1")), Ok(serde_json::json!({"a": 1})));
        assert_eq!(
            String::from_utf8(ok.to_bytes()).unwrap(),
            r#"{"id":"c1","result":{"a":1}}"#
        );
        let err = Reply::new(None, Err(RpcError::new(ErrorCode::NoResponders, "nobody")));
        assert_eq!(
            String::from_utf8(err.to_bytes()).unwrap(),
            r#"{"error":{"code":"no_responders","message":"nobody"}}"#
        );
    }

    #[test]
    fn request_types_are_checked() {
        assert!(serde_json::from_str::<Request>(r#"{"id":"x","params":{"k":1}}"#).is_ok());
        assert!(serde_json::from_str::<Request>(r#"{"deadline":"soon"}"#).is_err());
        assert!(serde_json::from_str::<Request>(r#"{"reply_to":5}"#).is_err());
    }
}
