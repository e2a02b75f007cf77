//! The rules of one RPC, written once for everyone who receives calls (the kernel and
//! every provider) and everyone who tracks them: which reply topic a request may name,
//! how a request is identified, when it is too late, and what an answer looks like.
//!
//! * The payload is authoritative. `id` and `reply_to` in the request payload are what a
//!   receiver uses; MQTT 5 Correlation Data and Response Topic are a mirror that a
//!   receiver falls back on only when the payload leaves them out (so an MQTT 3.1.1
//!   provider can answer an MQTT 5 caller, and the other way round).
//! * The reply topic is `<root>/reply/<caller>` or below it, without wildcards. A request
//!   that names another topic is answered `bad_request` on the caller's own reply topic.
//! * `deadline` is optional. Without one nobody applies a default; with one, a request
//!   that arrives after it is not run but answered `timeout` by whoever would have run it.

use bytes::Bytes;
use serde_json::Value;

use super::messages::{now_ms, ErrorCode, Reply, Request, RpcError};
use super::topics::Topics;

/// Where the answer to a call goes and how the caller matches it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyTo {
    pub topic: String,
    /// The request id, copied into the reply.
    pub id: Option<Value>,
    /// MQTT 5 Correlation Data, mirrored on the reply.
    pub correlation: Option<Bytes>,
}

impl ReplyTo {
    /// The caller's own reply topic, for answers to requests that cannot be read.
    pub fn default_for(topics: &Topics, caller: &str, correlation: Option<Bytes>) -> ReplyTo {
        ReplyTo {
            topic: topics.reply(caller),
            id: None,
            correlation,
        }
    }

    /// The reply payload for an outcome.
    pub fn payload(&self, outcome: Result<Value, RpcError>) -> Vec<u8> {
        Reply::new(self.id.clone(), outcome).to_bytes()
    }
}

/// A request that cannot be run, and where its `bad_request` answer goes.
#[derive(Debug, Clone)]
pub struct Refused {
    pub reply: ReplyTo,
    pub error: RpcError,
}

/// A request as its receiver sees it once the rules above are applied.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub request: Request,
    pub reply: ReplyTo,
    /// The call's key for matching its reply (see `call_key`).
    pub key: Option<String>,
}

impl Incoming {
    /// Reads a request published on `<root>/call/<caller>/...`. A refusal comes with the
    /// address its `bad_request` answer goes to.
    pub fn read(
        topics: &Topics,
        caller: &str,
        payload: &[u8],
        response_topic: Option<&str>,
        correlation: Option<&Bytes>,
    ) -> Result<Incoming, Box<Refused>> {
        let fallback = || ReplyTo::default_for(topics, caller, correlation.cloned());
        let request: Request = serde_json::from_slice(payload).map_err(|e| {
            Box::new(Refused {
                reply: fallback(),
                error: RpcError::bad_request(format!("request is not valid: {e}")),
            })
        })?;
        let wanted = request.reply_to.as_deref().or(response_topic);
        let topic = match wanted {
            None => topics.reply(caller),
            Some(t) if !t.contains(['+', '#']) && topics.is_reply_space(caller, t) => t.to_string(),
            Some(_) => {
                let mut to = fallback();
                to.id = request.id.clone();
                let why = format!(
                    "reply topic must be {} or below it, without wildcards",
                    topics.reply(caller)
                );
                return Err(Box::new(Refused {
                    reply: to,
                    error: RpcError::bad_request(why),
                }));
            }
        };
        let key = call_key(request.id.as_ref(), correlation.map(|c| &c[..]));
        let reply = ReplyTo {
            topic,
            id: request.id.clone(),
            correlation: correlation.cloned(),
        };
        Ok(Incoming {
            request,
            reply,
            key,
        })
    }

    /// Did the request arrive after its deadline? Then it is answered with this error.
    pub fn expired(&self) -> Option<RpcError> {
        let deadline = self.request.deadline?;
        (deadline < now_ms())
            .then(|| RpcError::new(ErrorCode::Timeout, "request arrived after its deadline"))
    }

    /// The request id as a string: the `parent` of whatever handling it causes.
    pub fn context_id(&self) -> Option<String> {
        self.request.id.as_ref().map(id_string)
    }
}

/// A request id (any JSON value) as a string: strings as they are, others as JSON text.
pub fn id_string(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The key that matches a reply to its call: the request id, else the correlation data.
pub fn call_key(id: Option<&Value>, correlation: Option<&[u8]>) -> Option<String> {
    match id {
        Some(id) => Some(id_string(id)),
        None => correlation.map(|c| String::from_utf8_lossy(c).into_owned()),
    }
}

/// `call_key` read straight from a request or reply payload, parsing only its `id`.
pub fn payload_call_key(payload: &[u8], correlation: Option<&[u8]>) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        #[serde(default)]
        id: Option<Value>,
    }
    let id = serde_json::from_slice::<IdOnly>(payload)
        .ok()
        .and_then(|r| r.id);
    call_key(id.as_ref(), correlation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(payload: &str, response_topic: Option<&str>) -> Result<Incoming, Box<Refused>> {
        let topics = Topics::default();
        let corr = Bytes::from_static(b"c9");
        Incoming::read(
            &topics,
            "cli",
            payload.as_bytes(),
            response_topic,
            Some(&corr),
        )
    }

    #[test]
    fn the_payload_is_authoritative_and_properties_a_mirror() {
        let i = read(
            r#"{"id":"a","reply_to":"hc/reply/cli/x"}"#,
            Some("hc/reply/cli/y"),
        )
        .unwrap();
        assert_eq!(i.reply.topic, "hc/reply/cli/x");
        assert_eq!(i.key.as_deref(), Some("a"));
        let i = read("{}", Some("hc/reply/cli/y")).unwrap();
        assert_eq!(i.reply.topic, "hc/reply/cli/y");
        assert_eq!(i.key.as_deref(), Some("c9"));
        let i = read("{}", None).unwrap();
        assert_eq!(i.reply.topic, "hc/reply/cli");
    }

    #[test]
    fn foreign_or_wildcard_reply_topics_are_answered_at_home() {
        for bad in ["hc/reply/bob", "hc/reply/cli/+", "hc/reply/clix"] {
            let r = read(&format!(r#"{{"id":1,"reply_to":"{bad}"}}"#), None).unwrap_err();
            assert_eq!(r.reply.topic, "hc/reply/cli");
            assert_eq!(r.reply.id, Some(Value::from(1)));
            assert_eq!(r.error.code, ErrorCode::BadRequest);
        }
        let r = read("not json", None).unwrap_err();
        assert_eq!(
            (r.reply.topic.as_str(), r.error.code),
            ("hc/reply/cli", ErrorCode::BadRequest)
        );
    }

    #[test]
    fn deadlines_are_optional() {
        assert!(read("{}", None).unwrap().expired().is_none());
        let late = read(r#"{"deadline":1}"#, None).unwrap().expired().unwrap();
        assert_eq!(late.code, ErrorCode::Timeout);
        let future = format!(r#"{{"deadline":{}}}"#, now_ms() + 60_000);
        assert!(read(&future, None).unwrap().expired().is_none());
    }

    #[test]
    fn call_keys() {
        assert_eq!(
            payload_call_key(br#"{"id":"x"}"#, None).as_deref(),
            Some("x")
        );
        assert_eq!(payload_call_key(br#"{"id":7}"#, None).as_deref(), Some("7"));
        assert_eq!(payload_call_key(b"{}", Some(b"c")).as_deref(), Some("c"));
        assert_eq!(payload_call_key(b"junk", None), None);
    }
}
