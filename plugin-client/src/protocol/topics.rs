//! Topic names under the configurable root, built and parsed in one place.

use super::method::MethodName;

/// The default root of every kernel topic.
pub const DEFAULT_ROOT: &str = "hc";

/// Builds and parses the protocol's topics for one root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    root: String,
}

/// A topic under the root, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    KernelStatus,
    PluginStatus {
        id: &'a str,
    },
    /// The status of one replica (a connection whose client id is not the identity).
    ReplicaStatus {
        id: &'a str,
        client: &'a str,
    },
    PluginManifest {
        id: &'a str,
    },
    /// A plugin host's report on the plugins it runs.
    PluginHosted {
        id: &'a str,
    },
    Event {
        source: &'a str,
        name: &'a str,
    },
    Call {
        caller: &'a str,
        service: &'a str,
        method: &'a str,
    },
    Reply {
        caller: &'a str,
    },
    /// A call the kernel handed to one connection (`client`) of `provider`.
    Delivery {
        provider: &'a str,
        client: &'a str,
        caller: &'a str,
        service: &'a str,
        method: &'a str,
    },
    State {
        key: &'a str,
    },
    StateSet {
        key: &'a str,
    },
}

impl Default for Topics {
    fn default() -> Self {
        Topics::new(DEFAULT_ROOT)
    }
}

impl Topics {
    pub fn new(root: &str) -> Topics {
        Topics {
            root: root.trim_end_matches('/').to_string(),
        }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn kernel_status(&self) -> String {
        format!("{}/kernel/status", self.root)
    }

    pub fn plugin_status(&self, id: &str) -> String {
        format!("{}/plugin/{id}/status", self.root)
    }

    /// The status topic of a replica: connection `client` of identity `id`.
    pub fn replica_status(&self, id: &str, client: &str) -> String {
        format!("{}/plugin/{id}/replica/{client}", self.root)
    }

    /// The status topic of a connection: the identity's own when the client id is the
    /// identity, its replica topic otherwise.
    pub fn connection_status(&self, id: &str, client: &str) -> String {
        match id == client {
            true => self.plugin_status(id),
            false => self.replica_status(id, client),
        }
    }

    pub fn plugin_manifest(&self, id: &str) -> String {
        format!("{}/plugin/{id}/manifest", self.root)
    }

    /// Where a plugin host reports the plugins it runs (retained).
    pub fn plugin_hosted(&self, id: &str) -> String {
        format!("{}/plugin/{id}/hosted", self.root)
    }

    pub fn event(&self, source: &str, name: &str) -> String {
        format!("{}/event/{source}/{name}", self.root)
    }

    pub fn call(&self, caller: &str, method: &MethodName) -> String {
        format!(
            "{}/call/{caller}/{}/{}",
            self.root,
            method.service(),
            method.method()
        )
    }

    pub fn reply(&self, caller: &str) -> String {
        format!("{}/reply/{caller}", self.root)
    }

    pub fn state(&self, key: &str) -> String {
        format!("{}/state/{key}", self.root)
    }

    pub fn state_set(&self, key: &str) -> String {
        format!("{}/state/{key}/set", self.root)
    }

    pub fn state_changed(&self, key: &str) -> String {
        format!("{}/event/kernel/state_changed/{key}", self.root)
    }

    /// The shared subscription a provider of `service.method` subscribes to.
    pub fn provider_filter(&self, method: &MethodName) -> String {
        format!(
            "$share/{method}/{}/call/+/{}/{}",
            self.root,
            method.service(),
            method.method()
        )
    }

    /// Where the kernel hands a call of `caller` to connection `client` of `provider`.
    pub fn delivery(
        &self,
        provider: &str,
        client: &str,
        caller: &str,
        service: &str,
        method: &str,
    ) -> String {
        format!(
            "{}/deliver/{provider}/{client}/{caller}/{service}/{method}",
            self.root
        )
    }

    /// Every call handed to connection `client` of `provider`.
    pub fn delivery_filter(&self, provider: &str, client: &str) -> String {
        format!("{}/deliver/{provider}/{client}/#", self.root)
    }

    /// Is `topic` the reply space of `caller` (its reply topic or below it)?
    pub fn is_reply_space(&self, caller: &str, topic: &str) -> bool {
        let base = self.reply(caller);
        topic == base
            || (topic.starts_with(&base) && topic.as_bytes().get(base.len()) == Some(&b'/'))
    }

    /// Parses a topic under the root; `None` for anything else.
    pub fn parse<'a>(&self, topic: &'a str) -> Option<Parsed<'a>> {
        let rest = topic.strip_prefix(self.root.as_str())?.strip_prefix('/')?;
        let (kind, rest) = rest.split_once('/').unwrap_or((rest, ""));
        match kind {
            "kernel" if rest == "status" => Some(Parsed::KernelStatus),
            "plugin" => {
                let (id, what) = rest.split_once('/')?;
                if let Some(client) = what.strip_prefix("replica/") {
                    return (!client.is_empty() && !client.contains('/'))
                        .then_some(Parsed::ReplicaStatus { id, client });
                }
                match what {
                    "status" => Some(Parsed::PluginStatus { id }),
                    "manifest" => Some(Parsed::PluginManifest { id }),
                    "hosted" => Some(Parsed::PluginHosted { id }),
                    _ => None,
                }
            }
            "event" => {
                let (source, name) = rest.split_once('/')?;
                Some(Parsed::Event { source, name })
            }
            "call" => {
                let mut parts = rest.splitn(3, '/');
                let caller = parts.next()?;
                let service = parts.next()?;
                let method = parts.next()?;
                Some(Parsed::Call {
                    caller,
                    service,
                    method,
                })
            }
            "deliver" => {
                let mut parts = rest.splitn(5, '/');
                let provider = parts.next()?;
                let client = parts.next()?;
                let caller = parts.next()?;
                let service = parts.next()?;
                let method = parts.next()?;
                Some(Parsed::Delivery {
                    provider,
                    client,
                    caller,
                    service,
                    method,
                })
            }
            "reply" => {
                let caller = rest.split('/').next()?;
                (!caller.is_empty()).then_some(Parsed::Reply { caller })
            }
            "state" if !rest.is_empty() => match rest.strip_suffix("/set") {
                Some(key) => Some(Parsed::StateSet { key }),
                None => Some(Parsed::State { key: rest }),
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_parses_every_topic() {
        let t = Topics::new("hc");
        assert_eq!(t.parse(&t.kernel_status()), Some(Parsed::KernelStatus));
        assert_eq!(
            t.parse(&t.plugin_status("p")),
            Some(Parsed::PluginStatus { id: "p" })
        );
        assert_eq!(
            t.parse(&t.plugin_manifest("p")),
            Some(Parsed::PluginManifest { id: "p" })
        );
        assert_eq!(
            t.parse(&t.plugin_hosted("pi")),
            Some(Parsed::PluginHosted { id: "pi" })
        );
        assert_eq!(
            t.parse(&t.event("p", "a/b")),
            Some(Parsed::Event {
                source: "p",
                name: "a/b"
            })
        );
        assert_eq!(
            t.parse(&t.call("c", &MethodName::new("state.get").unwrap())),
            Some(Parsed::Call {
                caller: "c",
                service: "state",
                method: "get"
            })
        );
        assert_eq!(t.parse("hc/reply/c/x"), Some(Parsed::Reply { caller: "c" }));
        assert_eq!(t.parse(&t.state("a/b")), Some(Parsed::State { key: "a/b" }));
        assert_eq!(
            t.parse(&t.state_set("a/b")),
            Some(Parsed::StateSet { key: "a/b" })
        );
        assert_eq!(
            t.parse(&t.replica_status("p", "p-2")),
            Some(Parsed::ReplicaStatus {
                id: "p",
                client: "p-2"
            })
        );
        assert_eq!(t.connection_status("p", "p"), t.plugin_status("p"));
        assert_eq!(
            t.parse(&t.delivery("p", "p-2", "c", "svc", "m")),
            Some(Parsed::Delivery {
                provider: "p",
                client: "p-2",
                caller: "c",
                service: "svc",
                method: "m"
            })
        );
        assert_eq!(t.parse("hc/deliver/p/p-2/c/svc"), None);
        assert_eq!(t.parse("other/state/x"), None);
        assert_eq!(t.parse("hcx/state/x"), None);
        assert_eq!(t.parse("hc/call/c/state"), None);
    }

    #[test]
    fn reply_space() {
        let t = Topics::default();
        assert!(t.is_reply_space("c", "hc/reply/c"));
        assert!(t.is_reply_space("c", "hc/reply/c/x"));
        assert!(!t.is_reply_space("c", "hc/reply/cx"));
        assert!(!t.is_reply_space("c", "hc/reply/d"));
    }
}
