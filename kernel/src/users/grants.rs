//! What each identity may do within its role: the services it may provide, the state keys
//! it may write, and the topics outside the root (a device's raw topics) it may publish
//! and read. Read from `<data_dir>/policy.toml`, re-read when it changes.
//!
//! ```toml
//! [role.device]                      # replaces a role's defaults, field by field
//! publish = ["zigbee2mqtt/#", "tele/#"]
//!
//! [user.zigbee]                      # one identity; fields it leaves out come from its role
//! provide = ["zigbee.*"]             # methods: "svc.*", "svc.method" or "*"
//! state = ["devices/#"]              # state keys, as MQTT filters
//! publish = ["zigbee2mqtt/#"]        # topics outside the root
//! subscribe = ["zigbee2mqtt/#"]
//! ```
//!
//! `%u` in a pattern is the identity. Administrators (and the kernel) may do everything;
//! these grants do not apply to them.

use std::collections::HashMap;

use hcore_broker::topic::matches;
use serde::Deserialize;

use super::Role;

/// The grants of one identity (or the defaults of one role), `%u` not yet substituted.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Methods it may provide (register and take calls for).
    pub provide: Option<Vec<String>>,
    /// State keys it may write (`state.set`/`state.delete`, `<root>/state/<key>/set`).
    pub state: Option<Vec<String>>,
    /// Topics outside the root it may publish.
    pub publish: Option<Vec<String>>,
    /// Topics outside the root it may read.
    pub subscribe: Option<Vec<String>>,
}

/// The topics device integrations use: Zigbee2MQTT, Home Assistant discovery, Tasmota,
/// Shelly, ESPHome.
pub const DEVICE_TOPICS: &[&str] = &[
    "zigbee2mqtt/#",
    "homeassistant/#",
    "tele/#",
    "stat/#",
    "cmnd/#",
    "tasmota/#",
    "shellies/#",
    "esphome/#",
];

fn list(items: &[&str]) -> Option<Vec<String>> {
    Some(items.iter().map(|s| s.to_string()).collect())
}

/// The built-in defaults of a role (`None`: anonymous network clients).
pub fn builtin(role: Option<Role>) -> Grants {
    match role {
        Some(Role::Admin) => Grants {
            provide: list(&["*"]),
            state: list(&["#"]),
            publish: list(&["#"]),
            subscribe: list(&["#"]),
        },
        Some(Role::Plugin) => Grants {
            provide: list(&["%u.*"]),
            state: list(&["%u/#"]),
            publish: list(&["#"]),
            subscribe: list(&["#"]),
        },
        Some(Role::Device) => Grants {
            provide: list(&[]),
            state: list(&[]),
            publish: list(DEVICE_TOPICS),
            subscribe: list(DEVICE_TOPICS),
        },
        Some(Role::Observer) | None => Grants {
            provide: list(&[]),
            state: list(&[]),
            publish: list(&[]),
            subscribe: list(&["#"]),
        },
    }
}

/// The policy file's contents.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    #[serde(default)]
    pub role: HashMap<String, Grants>,
    #[serde(default)]
    pub user: HashMap<String, Grants>,
}

impl PolicyFile {
    /// Parses and checks the file (role names must be roles).
    pub fn parse(text: &str) -> Result<PolicyFile, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for name in file.role.keys() {
            name.parse::<Role>()?;
        }
        Ok(file)
    }

    /// What `identity` with `role` may do: its own entry, then its role's, then built-in.
    pub fn resolve(&self, identity: &str, role: Option<Role>) -> Resolved {
        let builtin = builtin(role);
        let by_role = role.and_then(|r| self.role.get(r.as_str()));
        let by_user = self.user.get(identity);
        let pick = |f: fn(&Grants) -> &Option<Vec<String>>| -> Vec<String> {
            by_user
                .and_then(|g| f(g).clone())
                .or_else(|| by_role.and_then(|g| f(g).clone()))
                .or_else(|| f(&builtin).clone())
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.replace("%u", identity))
                .collect()
        };
        Resolved {
            provide: pick(|g| &g.provide),
            state: pick(|g| &g.state),
            publish: pick(|g| &g.publish),
            subscribe: pick(|g| &g.subscribe),
        }
    }
}

/// One identity's grants with `%u` substituted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub provide: Vec<String>,
    pub state: Vec<String>,
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

impl Resolved {
    /// May it provide `method` (`service.method`)?
    pub fn may_provide(&self, method: &str) -> bool {
        let service = method.split('.').next().unwrap_or(method);
        self.provide
            .iter()
            .any(|p| p == "*" || p == method || p.strip_suffix(".*").is_some_and(|s| s == service))
    }

    /// May it provide some method of `service`?
    pub fn may_provide_service(&self, service: &str) -> bool {
        self.provide
            .iter()
            .any(|p| p == "*" || p.split('.').next() == Some(service))
    }

    /// May it write state key `key`?
    pub fn may_write_state(&self, key: &str) -> bool {
        self.state.iter().any(|f| matches(f, key))
    }

    /// May it publish to `topic` (outside the root)?
    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|f| matches(f, topic))
    }

    /// May it read `topic` (outside the root)?
    pub fn may_read(&self, topic: &str) -> bool {
        self.subscribe.iter().any(|f| matches(f, topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_provides_its_own_services_and_writes_its_own_keys() {
        let g = PolicyFile::default().resolve("lights", Some(Role::Plugin));
        assert!(g.may_provide("lights.toggle") && !g.may_provide("locks.open"));
        assert!(g.may_provide_service("lights") && !g.may_provide_service("locks"));
        assert!(g.may_write_state("lights/kitchen") && !g.may_write_state("locks/front"));
        assert!(g.may_publish("zigbee2mqtt/lamp/set"));
    }

    #[test]
    fn user_entries_override_their_role_field_by_field() {
        let file = PolicyFile::parse(
            r#"
            [role.device]
            publish = ["tele/#"]
            [user.bridge]
            provide = ["zigbee.*", "%u.*"]
            state = ["devices/#"]
            "#,
        )
        .unwrap();
        let bridge = file.resolve("bridge", Some(Role::Plugin));
        assert!(bridge.may_provide("zigbee.pair") && bridge.may_provide("bridge.x"));
        assert!(bridge.may_write_state("devices/lamp") && !bridge.may_write_state("bridge/x"));
        let plug = file.resolve("plug", Some(Role::Device));
        assert!(plug.may_publish("tele/plug/STATE") && !plug.may_publish("zigbee2mqtt/x"));
        assert!(
            plug.may_read("zigbee2mqtt/x"),
            "subscribe keeps the built-in default"
        );
        let observer = file.resolve("eye", Some(Role::Observer));
        assert!(!observer.may_publish("tele/x") && observer.may_read("tele/x"));
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        assert!(PolicyFile::parse("[role.wizard]\nprovide = []").is_err());
        assert!(PolicyFile::parse("[user.x]\nprovides = []").is_err());
    }
}
