//! The service registry (which client provides which method) and the plugin registry
//! (every plugin seen: its liveness, session, manifest and, for in-process plugins, its
//! lifecycle).

use std::collections::{BTreeMap, BTreeSet};

use hcore_client::protocol::commands::{HostedPlugin, HostedReport, PluginInfo, Services};
use hcore_client::protocol::{Manifest, MethodName, PluginStatus, RpcError};
use hcore_client::ErrorCode;

/// `state_commands` filters read from one manifest; more are ignored.
const MAX_STATE_COMMANDS: usize = 64;

/// Plugins one host's report may list; more are ignored.
const MAX_HOSTED: usize = 256;

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
    /// Why the plugin failed (in-process), or what of its manifest was refused.
    pub error: Option<String>,
    /// The plugin host that runs it, and what the host last said about it.
    pub hosted: Option<(String, HostedPlugin)>,
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
            hosted: None,
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
    methods: BTreeMap<MethodName, BTreeSet<String>>,
    plugins: BTreeMap<String, PluginEntry>,
}

/// A kernel service's methods cannot be provided by anyone else.
fn check_providable(method: &MethodName) -> Result<(), RpcError> {
    if method.is_kernel() {
        return Err(RpcError::new(
            ErrorCode::Forbidden,
            format!("{} is a kernel service", method.service()),
        ));
    }
    Ok(())
}

impl Registry {
    /// Registers `provider` for each method; all or nothing.
    pub fn register(&mut self, provider: &str, methods: &[MethodName]) -> Result<(), RpcError> {
        for m in methods {
            check_providable(m)?;
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
    pub fn unregister(
        &mut self,
        provider: &str,
        methods: Option<&[MethodName]>,
    ) -> Vec<MethodName> {
        let mut removed = Vec::new();
        self.methods.retain(|m, providers| {
            let wanted = methods.is_none_or(|ms| ms.contains(m));
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

    pub fn services(&self) -> Services {
        let mut out = Services::default();
        for (m, providers) in &self.methods {
            out.services
                .entry(m.service().to_string())
                .or_default()
                .insert(m.method().to_string(), providers.iter().cloned().collect());
        }
        out
    }

    pub fn plugin(&mut self, id: &str, kind: Kind) -> &mut PluginEntry {
        self.plugins
            .entry(id.to_string())
            .or_insert_with(|| PluginEntry::new(kind))
    }

    /// Registers what an online plugin's manifest lists. Names that are not methods, and
    /// kernel services, are skipped; the plugin's entry says which and why.
    fn register_manifest(&mut self, id: &str) {
        let listed = self.plugin(id, Kind::Remote).manifest.services.clone();
        let mut refused = Vec::new();
        for name in &listed {
            let outcome = MethodName::new(name)
                .map_err(|e| RpcError::bad_request(e.to_string()))
                .and_then(|m| self.register(id, std::slice::from_ref(&m)));
            if let Err(e) = outcome {
                refused.push(format!("{name}: {}", e.message));
            }
        }
        let entry = self.plugin(id, Kind::Remote);
        if refused.is_empty() {
            if entry.kind == Kind::Remote {
                entry.error = None;
            }
        } else {
            let why = format!("manifest services not registered: {}", refused.join("; "));
            tracing::warn!(plugin = id, "{why}");
            entry.error = Some(why);
        }
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
            self.register_manifest(id);
            if was {
                StatusChange::Unchanged
            } else {
                StatusChange::Online
            }
        } else {
            if status.session < entry.session {
                return StatusChange::Stale;
            }
            if !entry.online {
                return StatusChange::Unchanged;
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
            self.register_manifest(id);
        }
    }

    /// Applies a plugin host's report: the plugins it lists are its; plugins it listed
    /// before and no longer does are not (and are forgotten if only the report made
    /// them known). In-process plugins, the host itself and plugins another online host
    /// runs cannot be claimed; a report older than the host's session is ignored.
    pub fn on_hosted(&mut self, host: &str, report: HostedReport) {
        if report.session < self.plugins.get(host).map_or(0, |h| h.session) {
            return;
        }
        for entry in self.plugins.values_mut() {
            if entry.hosted.as_ref().is_some_and(|(h, _)| h == host) {
                entry.hosted = None;
            }
        }
        for p in report.plugins.into_iter().take(MAX_HOSTED) {
            let taken = self
                .host_of(&p.id)
                .is_some_and(|(other, online)| other != host && online);
            if p.id == host || taken {
                tracing::warn!(
                    host,
                    plugin = p.id,
                    "host report claims a plugin it cannot run; ignored"
                );
                continue;
            }
            let entry = self.plugin(&p.id, Kind::Remote);
            if entry.kind == Kind::Remote {
                entry.hosted = Some((host.to_string(), p));
            }
        }
        // Entries only a report made (never online, no manifest) go with the report.
        self.plugins.retain(|_, e| {
            e.hosted.is_some()
                || e.kind == Kind::InProcess
                || e.session > 0
                || e.online
                || e.manifest != Manifest::default()
        });
    }

    /// The online plugin that handles `<root>/state/<key>/set` itself (its manifest's
    /// `state_commands`), if any.
    pub fn state_command_owner(&self, key: &str) -> Option<&str> {
        self.plugins.iter().find_map(|(id, p)| {
            let claims = p.online
                && p.manifest
                    .state_commands
                    .iter()
                    .take(MAX_STATE_COMMANDS)
                    .any(|f| hcore_client::protocol::filter_matches(f, key));
            claims.then_some(id.as_str())
        })
    }

    /// The host that runs `id`, and whether that host is online.
    pub fn host_of(&self, id: &str) -> Option<(String, bool)> {
        let (host, _) = self.plugins.get(id)?.hosted.as_ref()?;
        let online = self.plugins.get(host).is_some_and(|h| h.online);
        Some((host.clone(), online))
    }

    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.plugins
            .iter()
            .map(|(id, p)| self.info(id, p))
            .collect()
    }

    fn info(&self, id: &str, p: &PluginEntry) -> PluginInfo {
        let mut info = PluginInfo {
            id: id.to_string(),
            state: p.state.clone(),
            online: p.online,
            session: p.session,
            kind: match p.kind {
                Kind::Remote => "remote",
                Kind::InProcess => "in-process",
            }
            .into(),
            version: p.manifest.version.clone(),
            services: p.manifest.services.clone(),
            events: p.manifest.events.clone(),
            restarts: p.restarts,
            error: p.error.clone(),
            host: None,
            retry_at: None,
        };
        if let Some((host, hosted)) = &p.hosted {
            let host_online = self.plugins.get(host).is_some_and(|h| h.online);
            info.kind = "hosted".into();
            info.state = if host_online {
                hosted.state.clone()
            } else {
                "host offline".into()
            };
            info.restarts = hosted.restarts;
            info.error = hosted.error.clone().or(info.error);
            info.retry_at = hosted.retry_at.filter(|_| host_online);
            info.host = Some(host.clone());
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> MethodName {
        MethodName::new(s).unwrap()
    }

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

    fn hosted(id: &str, state: &str) -> HostedPlugin {
        HostedPlugin {
            id: id.into(),
            state: state.into(),
            pid: Some(7),
            restarts: 1,
            error: None,
            retry_at: None,
        }
    }

    #[test]
    fn a_host_report_claims_its_plugins_until_it_drops_them() {
        let mut r = Registry::default();
        r.on_status("pi", &PluginStatus::online(10));
        r.plugin("builtin", Kind::InProcess).kind = Kind::InProcess;
        let report = |session, plugins| HostedReport { session, plugins };
        r.on_hosted(
            "pi",
            report(
                10,
                vec![
                    hosted("weather", "running"),
                    hosted("pi", "running"),
                    hosted("builtin", "x"),
                ],
            ),
        );
        assert_eq!(r.host_of("weather"), Some(("pi".into(), true)));
        assert_eq!(r.host_of("pi"), None, "a host cannot host itself");
        assert_eq!(
            r.host_of("builtin"),
            None,
            "in-process plugins stay the kernel's"
        );
        let info = r.plugins().into_iter().find(|p| p.id == "weather").unwrap();
        assert_eq!(
            (info.kind.as_str(), info.state.as_str()),
            ("hosted", "running")
        );
        assert_eq!(info.host.as_deref(), Some("pi"));

        // Older than the host's session: ignored.
        r.on_hosted("pi", report(9, vec![]));
        assert!(r.host_of("weather").is_some());
        // The host goes offline: its plugins' state is unknown.
        r.on_status("pi", &PluginStatus::offline(10));
        assert_eq!(r.host_of("weather"), Some(("pi".into(), false)));
        let info = r.plugins().into_iter().find(|p| p.id == "weather").unwrap();
        assert_eq!(info.state, "host offline");
        // A new report without it: no longer hosted, and forgotten (it never connected).
        r.on_hosted("pi", report(11, vec![]));
        assert_eq!(r.host_of("weather"), None);
        assert!(r.plugins().iter().all(|p| p.id != "weather"));
    }

    #[test]
    fn an_online_plugin_owns_the_state_commands_its_manifest_names() {
        let mut r = Registry::default();
        r.on_manifest(
            "devices",
            Manifest {
                state_commands: vec!["devices/+".into()],
                ..Default::default()
            },
        );
        assert_eq!(
            r.state_command_owner("devices/lamp"),
            None,
            "not online yet"
        );
        r.on_status("devices", &PluginStatus::online(1));
        assert_eq!(r.state_command_owner("devices/lamp"), Some("devices"));
        assert_eq!(r.state_command_owner("devices/lamp/extra"), None);
        assert_eq!(r.state_command_owner("thermostat/target"), None);
        r.on_status("devices", &PluginStatus::offline(1));
        assert_eq!(r.state_command_owner("devices/lamp"), None);
    }

    #[test]
    fn a_host_cannot_claim_what_another_online_host_runs() {
        let mut r = Registry::default();
        r.on_status("pi-a", &PluginStatus::online(1));
        r.on_status("pi-b", &PluginStatus::online(1));
        r.on_hosted(
            "pi-a",
            HostedReport {
                session: 1,
                plugins: vec![hosted("lamp", "running")],
            },
        );
        r.on_hosted(
            "pi-b",
            HostedReport {
                session: 1,
                plugins: vec![hosted("lamp", "running")],
            },
        );
        assert_eq!(r.host_of("lamp"), Some(("pi-a".into(), true)));
        // Once pi-a is gone, pi-b may run it.
        r.on_status("pi-a", &PluginStatus::offline(1));
        r.on_hosted(
            "pi-b",
            HostedReport {
                session: 1,
                plugins: vec![hosted("lamp", "running")],
            },
        );
        assert_eq!(r.host_of("lamp"), Some(("pi-b".into(), true)));
    }

    #[test]
    fn kernel_services_cannot_be_registered() {
        let mut r = Registry::default();
        let e = r.register("p", &[m("state.get")]).unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
    }

    #[test]
    fn a_manifest_registers_what_it_can_and_says_what_it_could_not() {
        let mut r = Registry::default();
        r.on_manifest(
            "p",
            Manifest {
                services: vec!["lamp.on".into(), "state.set".into(), "no dot".into()],
                ..Default::default()
            },
        );
        r.on_status("p", &PluginStatus::online(1));
        assert!(r.is_provided("lamp.on"));
        assert!(!r.is_provided("state.set"));
        let info = &r.plugins()[0];
        let error = info.error.as_deref().unwrap();
        assert!(
            error.contains("state.set") && error.contains("no dot"),
            "{error}"
        );
    }
}
