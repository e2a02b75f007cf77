//! `hcore export nats`: the users and policy as a nats-server `authorization` block, to
//! be included by every node of a NATS cluster, so that the cluster enforces on hcore's
//! topics what the embedded broker does (as far as subject permissions can).
//!
//! nats-server sees an MQTT topic as a subject (`/` becomes `.`, `+` is `*`, `#` is `>`
//! and also the level above it), so each grant is written in subjects. A user may
//! subscribe `$MQTT.sub.>`: nats-server delivers QoS 1 subscriptions there. The same
//! user name on every node means the same rights wherever a plugin connects.

use std::fmt::Write;

use super::filters::{outside_root, state_set_topics};
use crate::users::{PolicyFile, Resolved, Role};

/// One login to export: a name, its bcrypt hash and its role.
pub struct Account {
    pub name: String,
    pub bcrypt: String,
    pub role: Role,
}

/// The `authorization { users = [...] }` block for `accounts` under `policy`; `root` is
/// the protocol root, `kernel` the kernel's user name.
pub fn export(accounts: &[Account], policy: &PolicyFile, root: &str, kernel: &str) -> String {
    let mut out = String::from(
        "# nats-server authorization written by `hcore export nats` from the users and\n\
         # policy.toml: include it in every node's configuration.\n\
         authorization {\n  users = [\n",
    );
    for a in accounts {
        let (publish, subscribe) = match a.role {
            _ if a.name == kernel => (vec![">".to_string()], vec![">".to_string()]),
            Role::Admin => (vec![">".to_string()], vec![">".to_string()]),
            role => {
                let grants = policy.resolve(&a.name, Some(role));
                (
                    publish(root, &a.name, role, &grants),
                    subscribe(root, &a.name, &grants),
                )
            }
        };
        let _ = writeln!(
            out,
            "    # {name} ({role})\n    {{ user: {name:?}, password: {hash:?},\n      \
             allowed_connection_types: [\"MQTT\"],\n      \
             permissions: {{ publish: {{ allow: {publish} }}, subscribe: {{ allow: {subscribe} }} }} }}",
            name = a.name,
            role = a.role,
            hash = a.bcrypt,
            publish = list(&publish),
            subscribe = list(&subscribe),
        );
    }
    out.push_str("  ]\n}\n");
    out
}

/// What a user who is not an administrator may publish.
fn publish(root: &str, name: &str, role: Role, g: &Resolved) -> Vec<String> {
    let mut topics = vec![format!("{root}/call/{name}/#")];
    if role == Role::Plugin {
        topics.push(format!("{root}/event/{name}/#"));
        topics.push(format!("{root}/plugin/{name}/#"));
    }
    if !g.provide.is_empty() {
        // Subjects cannot tie a reply to the call it answers: a provider may publish any
        // reply (the embedded broker checks each one).
        topics.push(format!("{root}/reply/#"));
    }
    topics.extend(g.state.iter().flat_map(|k| state_set_topics(root, k)));
    topics.extend(outside_root(root, &g.publish));
    subjects(&topics)
}

/// What a user who is not an administrator may subscribe: the public protocol topics,
/// its own calls, deliveries and replies, and its device grants.
fn subscribe(root: &str, name: &str, g: &Resolved) -> Vec<String> {
    let mut topics: Vec<String> = ["event", "state", "plugin", "kernel"]
        .iter()
        .map(|t| format!("{root}/{t}/#"))
        .collect();
    for own in ["call", "deliver", "reply"] {
        topics.push(format!("{root}/{own}/{name}/#"));
    }
    topics.extend(outside_root(root, &g.subscribe));
    let mut out = subjects(&topics);
    out.push("$MQTT.sub.>".to_string());
    out
}

/// MQTT topic filters as NATS subjects: `a/+/b` is `a.*.b`; `a/#` is `a.>` and `a`
/// (MQTT's `#` also matches the level above it). A `.` in a level is `//`, an empty
/// level `/`, as nats-server writes them.
fn subjects(filters: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    for f in filters {
        let levels: Vec<String> = f
            .split('/')
            .map(|l| match l {
                "" => "/".to_string(),
                "+" => "*".to_string(),
                "#" => ">".to_string(),
                l => l.replace('.', "//"),
            })
            .collect();
        if levels.last().is_some_and(|l| l == ">") && levels.len() > 1 {
            add(levels[..levels.len() - 1].join("."));
        }
        add(levels.join("."));
    }
    out
}

/// A list in nats-server's configuration syntax (quoted: `$` and `>` are literal).
fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, role: Role) -> Account {
        Account {
            name: name.into(),
            bcrypt: "$2b$10$x".into(),
            role,
        }
    }

    #[test]
    fn filters_become_subjects() {
        let f = |s: &[&str]| subjects(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            f(&["hc/event/lamp/#"]),
            ["hc.event.lamp", "hc.event.lamp.>"]
        );
        assert_eq!(f(&["tele/+/STATE"]), ["tele.*.STATE"]);
        assert_eq!(f(&["#"]), [">"]);
        assert_eq!(f(&["a.b/c"]), ["a//b.c"]);
    }

    #[test]
    fn a_plugin_gets_its_grants_and_nothing_more() {
        let accounts = [
            account("kernel", Role::Admin),
            account("lamp", Role::Plugin),
            account("eye", Role::Observer),
        ];
        let text = export(&accounts, &PolicyFile::default(), "hc", "kernel");
        let lamp = &text[text.find("# lamp").unwrap()..text.find("# eye").unwrap()];
        let (publish, subscribe) = lamp.split_once("subscribe").unwrap();
        assert!(publish.contains("\"hc.event.lamp.>\""), "{publish}");
        assert!(publish.contains("\"hc.state.lamp.*.set\""), "{publish}");
        assert!(publish.contains("\"zigbee2mqtt.>\""), "{publish}");
        assert!(!publish.contains("\">\""), "{publish}");
        assert!(
            !publish.contains("hc.deliver"),
            "calls come from the kernel"
        );
        assert!(subscribe.contains("\"hc.deliver.lamp.>\""), "{subscribe}");
        assert!(subscribe.contains("\"$MQTT.sub.>\""), "{subscribe}");
        assert!(!subscribe.contains("hc.reply.>") && !subscribe.contains("\">\""));
        assert!(lamp.contains("password: \"$2b$10$x\""));
        let eye = &text[text.find("# eye").unwrap()..];
        let (publish, _) = eye.split_once("subscribe").unwrap();
        assert!(
            publish.contains("[\"hc.call.eye\", \"hc.call.eye.>\"]"),
            "{eye}"
        );
        let kernel = &text[text.find("# kernel").unwrap()..text.find("# lamp").unwrap()];
        assert!(kernel.contains("allow: [\">\"]"), "{kernel}");
    }
}
