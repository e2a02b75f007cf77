//! The service registry (which client provides which method) and the plugin registry
//! (every plugin seen: its liveness, session, manifest and, for in-process plugins, its
//! lifecycle).

mod replicas;

use std::collections::{BTreeMap, BTreeSet};

use hcore_client::protocol::commands::{HostedPlugin, HostedReport, PluginInfo, Services};
use hcore_client::protocol::{Manifest, MethodName, PluginStatus, RpcError};
use hcore_client::ErrorCode;

use replicas::{ReplicaChange, Replicas};

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
    /// Its connections (its own and its replicas') and which are online.
    replicas: Replicas,
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
            replicas: Replicas::default(),
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
    /// One replica went offline; the plugin stays online through the others.
    ReplicaOffline,
    /// A connection came back with a new session while the old one still counted as
    /// online (lost without its will): calls handed to the old one are lost.
    Reconnected,
    /// Older than the connection's current session (a late or repeated will).
    Stale,
    /// A replica beyond the bound on connections per identity: ignored.
    NoRoom,
    Unchanged,
}

#[derive(Default)]
pub(crate) struct Registry {
    methods: BTreeMap<MethodName, BTreeSet<String>>,
    plugins: BTreeMap<String, PluginEntry>,
    /// Where the next call handed out starts among a method's providers.
    next_provider: usize,
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

    /// Applies the status of connection `client` of plugin `id` (`client` = `id` for
    /// the plugin's own connection); registers or unregisters the plugin's services.
    pub fn on_status(&mut self, id: &str, client: &str, status: &PluginStatus) -> StatusChange {
        let entry = self.plugin(id, Kind::Remote);
        let online = status.is_online();
        let replaced = online && entry.replicas.replaces_live(client, status.session);
        match entry.replicas.update(client, online, status.session) {
            ReplicaChange::Applied => {}
            ReplicaChange::Stale => return StatusChange::Stale,
            ReplicaChange::NoRoom => return StatusChange::NoRoom,
        }
        let was = entry.online;
        entry.online = entry.replicas.any_online();
        entry.session = entry.replicas.newest_session();
        if entry.kind == Kind::Remote {
            entry.state = if entry.online { "online" } else { "offline" }.into();
        }
        match (was, entry.online) {
            (_, true) => {
                self.register_manifest(id);
                match (was, online) {
                    (false, _) => StatusChange::Online,
                    (true, false) => StatusChange::ReplicaOffline,
                    (true, true) if replaced => StatusChange::Reconnected,
                    (true, true) => StatusChange::Unchanged,
                }
            }
            (true, false) => {
                self.unregister(id, None);
                StatusChange::Offline
            }
            (false, false) => StatusChange::Unchanged,
        }
    }

    /// One online connection of a provider of `method`, in turn: (identity, client id).
    /// A provider known only through `registry.register` (no status) is its own
    /// connection.
    pub fn pick(&mut self, method: &str) -> Option<(String, String)> {
        let providers: Vec<String> = self.methods.get(method)?.iter().cloned().collect();
        let start = self.next_provider;
        self.next_provider = self.next_provider.wrapping_add(1);
        let provider = providers.get(start % providers.len().max(1))?.clone();
        let client = match self.plugins.get_mut(&provider) {
            Some(p) if p.replicas.any_online() => p.replicas.next_online()?,
            _ => provider.clone(),
        };
        Some((provider, client))
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
mod tests;
