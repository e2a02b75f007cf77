//! `hcore sub`: watch the bus. Each message is one line with the local time, read the
//! way a person reads hcore traffic: events with their source and cause, calls with their
//! method and id, replies paired with the call they answer (when the reply is visible to
//! this client) and how long it took, state records with version and writer, plugin
//! status. JSON keeps its keys in the order they were sent; `--pretty` prints it on
//! several lines; `--raw` prints `topic payload` like `mosquitto_sub -v`.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use hcore_client::protocol::{id_string, Parsed, Topics};
use hcore_client::IncomingEvent;
use serde_json::Value;

use crate::cli::SubArgs;
use crate::commands::{connect, Failure};

/// Calls remembered for pairing with their replies.
const MAX_PAIRS: usize = 10_000;

/// Calls seen and not yet answered, oldest forgotten first.
#[derive(Default)]
pub struct Pairs {
    calls: HashMap<(String, String), (String, Instant)>,
    order: VecDeque<(String, String)>,
}

impl Pairs {
    fn call(&mut self, caller: &str, id: String, method: String) {
        let key = (caller.to_string(), id);
        if self
            .calls
            .insert(key.clone(), (method, Instant::now()))
            .is_none()
        {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_PAIRS {
            if let Some(old) = self.order.pop_front() {
                self.calls.remove(&old);
            }
        }
    }

    fn reply(&mut self, caller: &str, id: &str) -> Option<(String, Instant)> {
        self.calls.remove(&(caller.to_string(), id.to_string()))
    }
}

/// Formats messages for people.
pub struct Printer {
    pub topics: Topics,
    pub pretty: bool,
    pub pairs: Pairs,
}

impl Printer {
    fn json(&self, v: &Value) -> String {
        if self.pretty {
            let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
            format!("\n  {}", text.replace('\n', "\n  "))
        } else {
            v.to_string()
        }
    }

    /// The line for one message (without the time).
    pub fn line(&mut self, m: &IncomingEvent) -> String {
        let retained = if m.retain { " (retained)" } else { "" };
        let json: Option<Value> = m.json();
        let body = || match &json {
            Some(v) => self.json(v),
            None => String::from_utf8_lossy(&m.payload).into_owned(),
        };
        let parsed = self.topics.parse(&m.topic);
        if let (Some(e), Some(Parsed::Event { name, .. })) = (&m.envelope, &parsed) {
            let parent = e
                .parent
                .as_deref()
                .map(|p| format!(" parent={p}"))
                .unwrap_or_default();
            return format!(
                "event {name} from {}{retained}: {} (id={}{parent})",
                e.source,
                self.json(&e.data),
                e.id
            );
        }
        match (parsed, &json) {
            (
                Some(Parsed::Call {
                    caller,
                    service,
                    method,
                }),
                Some(req),
            ) => {
                let id = req.get("id").map(id_string);
                if let Some(id) = &id {
                    self.pairs
                        .call(caller, id.clone(), format!("{service}.{method}"));
                }
                let params = req.get("params").map(|p| self.json(p)).unwrap_or_default();
                let id = id.map(|i| format!(" id={i}")).unwrap_or_default();
                format!("call {service}.{method} from {caller}{id} {params}")
            }
            (Some(Parsed::Reply { caller }), Some(reply)) => {
                let id = reply.get("id").map(id_string);
                let paired = id.as_deref().and_then(|i| self.pairs.reply(caller, i));
                let what = match (reply.get("error"), reply.get("result")) {
                    (Some(e), _) => format!(
                        "error {}: {}",
                        e["code"].as_str().unwrap_or("?"),
                        e["message"].as_str().unwrap_or("")
                    ),
                    (None, Some(r)) => format!("result {}", self.json(r)),
                    (None, None) => "result null".to_string(),
                };
                match paired {
                    Some((method, since)) => format!(
                        "reply to {caller} for {method} after {:.1} ms: {what}",
                        since.elapsed().as_secs_f64() * 1e3
                    ),
                    None => {
                        let id = id.map(|i| format!(" id={i}")).unwrap_or_default();
                        format!("reply to {caller}{id}: {what}")
                    }
                }
            }
            (Some(Parsed::State { key }), Some(rec)) if rec.get("version").is_some() => format!(
                "state {key} = {} (v{} by {}){retained}",
                self.json(&rec["value"]),
                rec["version"],
                rec["source"].as_str().unwrap_or("?")
            ),
            (Some(Parsed::PluginStatus { id }), Some(s)) => format!(
                "plugin {id} {} (session {}){retained}",
                s["state"].as_str().unwrap_or("?"),
                s["session"]
            ),
            _ => format!("{}{retained} {}", m.topic, body()),
        }
    }
}

pub async fn subscribe(args: SubArgs) -> Result<(), Failure> {
    let mut conn = args.conn.clone();
    if conn.client_id == "cli" {
        // Keep `hcore sub` from taking over a concurrent `hcore call`'s connection.
        conn.client_id = format!("cli-sub-{}", std::process::id());
    }
    let client = connect(&conn).await?;
    let root = client.topics().root().to_string();
    let filters = if args.filters.is_empty() {
        vec![format!("{root}/#")]
    } else {
        args.filters
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    for f in &filters {
        let mut sub = client.subscribe(f).await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if tx.send(m).await.is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);
    let mut printer = Printer {
        topics: client.topics().clone(),
        pretty: args.pretty,
        pairs: Pairs::default(),
    };
    let mut seen = 0;
    while let Some(m) = rx.recv().await {
        if args.raw {
            println!("{} {}", m.topic, String::from_utf8_lossy(&m.payload));
        } else {
            let time = chrono::Local::now().format("%H:%M:%S%.3f");
            println!("{time} {}", printer.line(&m));
        }
        seen += 1;
        if args.count.is_some_and(|c| seen >= c) {
            break;
        }
    }
    client.shutdown().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str, payload: &str) -> IncomingEvent {
        IncomingEvent {
            topic: topic.into(),
            payload: payload.to_string().into(),
            retain: false,
            envelope: serde_json::from_str(payload)
                .ok()
                .filter(|_| topic.starts_with("hc/event/")),
        }
    }

    fn printer(pretty: bool) -> Printer {
        Printer {
            topics: Topics::default(),
            pretty,
            pairs: Pairs::default(),
        }
    }

    #[test]
    fn replies_are_paired_with_their_calls() {
        let mut p = printer(false);
        let call = p.line(&message(
            "hc/call/app/lamp/toggle",
            r#"{"id":"c1","params":{"room":"hall","on":true}}"#,
        ));
        assert_eq!(
            call,
            r#"call lamp.toggle from app id=c1 {"room":"hall","on":true}"#
        );
        let reply = p.line(&message("hc/reply/app", r#"{"id":"c1","result":"ok"}"#));
        assert!(
            reply.starts_with("reply to app for lamp.toggle after "),
            "{reply}"
        );
        assert!(reply.ends_with(r#"ms: result "ok""#), "{reply}");
        let unknown = p.line(&message(
            "hc/reply/app",
            r#"{"id":"c9","error":{"code":"timeout","message":"late"}}"#,
        ));
        assert_eq!(unknown, "reply to app id=c9: error timeout: late");
    }

    #[test]
    fn keys_keep_their_order_and_pretty_spans_lines() {
        let mut p = printer(false);
        let line = p.line(&message(
            "zigbee2mqtt/lamp",
            r#"{"state":"ON","brightness":3,"a":1}"#,
        ));
        assert_eq!(
            line,
            r#"zigbee2mqtt/lamp {"state":"ON","brightness":3,"a":1}"#
        );
        let mut p = printer(true);
        let line = p.line(&message("zigbee2mqtt/lamp", r#"{"z":1,"a":2}"#));
        assert_eq!(
            line,
            "zigbee2mqtt/lamp \n  {\n    \"z\": 1,\n    \"a\": 2\n  }"
        );
    }

    #[test]
    fn pairs_are_bounded() {
        let mut pairs = Pairs::default();
        for i in 0..MAX_PAIRS + 10 {
            pairs.call("c", i.to_string(), "m.x".into());
        }
        assert_eq!(pairs.calls.len(), MAX_PAIRS);
        assert!(pairs.reply("c", "0").is_none());
        assert!(pairs.reply("c", &(MAX_PAIRS + 9).to_string()).is_some());
    }
}
