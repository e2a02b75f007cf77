//! The service registry (which client provides which method) and the plugin registry
//! (every plugin seen: its liveness, session, manifest and, for in-process plugins, its
//! lifecycle).

use std::collections::{BTreeMap, BTreeSet};

use hcore_client::protocol::{validate_name, Manifest, PluginStatus, RpcError, KERNEL_SERVICES};
use hcore_client::ErrorCode;
use serde_json::{json, Value};

/// How a plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Remote,
    InProcess,
}

#[derive(Debug, Clone)]
pub(crate) struct PluginEntry {
    pub kind: Kind,
    /// `online`/`offline` for remote plugins; the lifecycle state for in-process ones.
    pub state: String,
    pub online: bool,
    pub session: u64,
    pub manifest: Manifest,
    pub restarts: u32,
    pub error: Option<String>,
}

impl PluginEntry {
    fn new(kind: Kind) -> PluginEntry {
        PluginEntry {
            kind,
            state: "offline".into(),
            online: false,
            session: 0,
            manifest: Manifest::default(),
            restarts: 0,
            error: None,
        }
    }
}

/// What a status message meant.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StatusChange {
    Online,
    Offline,
    /// An `offline` older than the current session (a late or repeated will).
    Stale,
    Unchanged,
}

#[derive(Default)]
pub(crate) struct Registry {
    methods: BTreeMap<String, BTreeSet<String>>,
    plugins: BTreeMap<String, PluginEntry>,
}

/// Checks `service.method` and that the service is not the kernel's.
fn check_method(method: &str) -> Result<(), RpcError> {
    let Some((service, name)) = method.split_once('.') else {
        return Err(RpcError::bad_request(format!(
            "{method}: methods are named service.method"
        )));
    };
    validate_name(service)
        .and_then(|()| validate_name(name))
        .map_err(|e| RpcError::bad_request(e.to_string()))?;
    if KERNEL_SERVICES.contains(&service) {
        return Err(RpcError::new(
            ErrorCode::Forbidden,
            format!("{service} is a kernel service"),
        ));
    }
    Ok(())
}

impl Registry {
    /// Registers `provider` for each method; all or nothing.
    pub fn register(&mut self, provider: &str, methods: &[String]) -> Result<(), RpcError> {
        for m in methods {
            check_method(m)?;
        }
        for m in methods {
            self.methods
                .entry(m.clone())
                .or_default()
                .insert(provider.to_string());
        }
        Ok(())
    }

    /// Unregisters `provider` from the given methods (or all of them); returns which.
    pub fn unregister(&mut self, provider: &str, methods: Option<&[String]>) -> Vec<String> {
        let mut removed = Vec::new();
        self.methods.retain(|m, providers| {
            let wanted = methods.is_none_or(|ms| ms.iter().any(|x| x == m));
            if wanted && providers.remove(provider) {
                removed.push(m.clone());
            }
            !providers.is_empty()
        });
        removed
    }

    /// Does anyone provide `method`?
    pub fn is_provided(&self, method: &str) -> bool {
        self.methods.get(method).is_some_and(|p| !p.is_empty())
    }

    /// Is `provider` registered for `method`?
    pub fn provides(&self, method: &str, provider: &str) -> bool {
        self.methods
            .get(method)
            .is_some_and(|p| p.contains(provider))
    }

    /// `{"<service>": {"<method>": [providers]}}`.
    pub fn services_json(&self) -> Value {
        let mut out = serde_json::Map::new();
        for (m, providers) in &self.methods {
            if let Some((service, name)) = m.split_once('.') {
                let entry = out
                    .entry(service.to_string())
                    .or_insert_with(|| Value::Object(Default::default()));
                entry[name] = json!(providers);
            }
        }
        Value::Object(out)
    }

    pub fn plugin(&mut self, id: &str, kind: Kind) -> &mut PluginEntry {
        self.plugins
            .entry(id.to_string())
            .or_insert_with(|| PluginEntry::new(kind))
    }

    /// Applies a status message; registers or unregisters the plugin's services.
    pub fn on_status(&mut self, id: &str, status: &PluginStatus) -> StatusChange {
        let entry = self.plugin(id, Kind::Remote);
        if status.is_online() {
            if status.session < entry.session {
                return StatusChange::Stale;
            }
            let was = entry.online;
            entry.online = true;
            entry.session = status.session;
            if entry.kind == Kind::Remote {
                entry.state = "online".into();
            }
            let services = entry.manifest.services.clone();
            if let Err(e) = self.register(id, &services) {
                tracing::warn!(plugin = id, error = %e, "manifest lists services that cannot be registered");
            }
            if was {
                StatusChange::Unchanged
            } else {
                StatusChange::Online
            }
        } else {
            if status.session < entry.session || !entry.online {
                return if status.session < entry.session {
                    StatusChange::Stale
                } else {
                    StatusChange::Unchanged
                };
            }
            entry.online = false;
            entry.session = status.session;
            if entry.kind == Kind::Remote {
                entry.state = "offline".into();
            }
            self.unregister(id, None);
            StatusChange::Offline
        }
    }

    /// Stores a manifest; an online plugin's services are registered at once.
    pub fn on_manifest(&mut self, id: &str, manifest: Manifest) {
        let entry = self.plugin(id, Kind::Remote);
        entry.manifest = manifest;
        if entry.online {
            let services = entry.manifest.services.clone();
            if let Err(e) = self.register(id, &services) {
                tracing::warn!(plugin = id, error = %e, "manifest lists services that cannot be registered");
            }
        }
    }

    pub fn plugins_json(&self) -> Value {
        let list: Vec<Value> = self
            .plugins
            .iter()
            .map(|(id, p)| {
                json!({
                    "id": id,
                    "state": p.state,
                    "online": p.online,
                    "session": p.session,
                    "kind": match p.kind { Kind::Remote => "remote", Kind::InProcess => "in-process" },
                    "version": p.manifest.version,
                    "services": p.manifest.services,
                    "events": p.manifest.events,
                    "restarts": p.restarts,
                    "error": p.error,
                })
            })
            .collect();
        json!({ "plugins": list })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_offline_is_ignored() {
        let mut r = Registry::default();
        r.on_manifest(
            "p",
            Manifest {
                services: vec!["svc.m".into()],
                ..Default::default()
            },
        );
        assert_eq!(
            r.on_status("p", &PluginStatus::online(5)),
            StatusChange::Online
        );
        assert!(r.is_provided("svc.m"));
        assert_eq!(
            r.on_status("p", &PluginStatus::offline(4)),
            StatusChange::Stale
        );
        assert!(r.is_provided("svc.m"));
        assert_eq!(
            r.on_status("p", &PluginStatus::offline(5)),
            StatusChange::Offline
        );
        assert!(!r.is_provided("svc.m"));
    }

    #[test]
    fn kernel_services_cannot_be_registered() {
        let mut r = Registry::default();
        let e = r.register("p", &["state.get".into()]).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert!(r.register("p", &["bad name.x".into()]).is_err());
    }
}
