//! The plugin manager for in-process plugins (the seed's PluginManager): each plugin runs
//! in its own task under a supervisor. A fresh instance is made by the plugin's factory
//! for every start; on_load, on_start, run, on_stop and on_unload run in a task of their
//! own, so an error or panic marks only that plugin `failed` (with the reason) while the
//! kernel and every other plugin keep running. A failed plugin is restarted after a capped
//! exponential backoff (1 s, 2 s, 4 s ... `plugin_restart_max_ms`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hcore_client::{ClientOptions, Plugin};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::calls::{Calls, Kind};
use crate::config::KernelConfig;
use crate::connection::Connection;

/// Makes a new instance of a plugin.
pub type PluginFactory = Arc<dyn Fn() -> Box<dyn Plugin> + Send + Sync>;

/// A plugin that ran this long without failing starts over at the shortest backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

type Ack = oneshot::Sender<Result<String, String>>;

enum Cmd {
    Start(Ack),
    Stop(Ack),
}

struct Slot {
    cmds: mpsc::UnboundedSender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

struct Inner {
    connection: Connection,
    calls: Arc<Calls>,
    stop_timeout: Duration,
    restart_max: Duration,
    slots: Mutex<HashMap<String, Slot>>,
}

/// Handle to the in-process plugins.
#[derive(Clone)]
pub struct PluginManager {
    inner: Arc<Inner>,
}

impl PluginManager {
    pub(crate) fn new(
        connection: Connection,
        calls: Arc<Calls>,
        config: &KernelConfig,
    ) -> PluginManager {
        PluginManager {
            inner: Arc::new(Inner {
                connection,
                calls,
                stop_timeout: Duration::from_millis(config.plugin_stop_timeout_ms),
                restart_max: Duration::from_millis(config.plugin_restart_max_ms),
                slots: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Loads a plugin under `id` and, if `start`, starts it.
    pub fn load(&self, id: &str, factory: PluginFactory, start: bool) {
        if let Some(policy) = self.inner.connection.policy() {
            policy.reserve(id);
        }
        {
            let mut reg = self.inner.calls.registry();
            let entry = reg.plugin(id, Kind::InProcess);
            entry.kind = Kind::InProcess;
            entry.hosted = None;
            entry.state = "loaded".into();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // Everything the plugin's supervisor and instances log carries the plugin's id.
        let span = tracing::info_span!("plugin", id = %id);
        let task = tokio::spawn(
            supervise(self.inner.clone(), id.to_string(), factory, rx, start).instrument(span),
        );
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), Slot { cmds: tx, task });
    }

    pub fn has(&self, id: &str) -> bool {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(id)
    }

    /// Ids of the loaded plugins.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Starts a plugin; resolves when it runs (or failed to start).
    pub async fn start(&self, id: &str) -> Result<String, String> {
        self.command(id, Cmd::Start).await
    }

    /// Stops a plugin; resolves when it has stopped (at most the stop timeout).
    pub async fn stop(&self, id: &str) -> Result<String, String> {
        self.command(id, Cmd::Stop).await
    }

    async fn command(&self, id: &str, make: fn(Ack) -> Cmd) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        {
            let slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = slots.get(id).ok_or_else(|| format!("no plugin {id}"))?;
            slot.cmds
                .send(make(tx))
                .map_err(|_| format!("plugin {id} is unloaded"))?;
        }
        rx.await.map_err(|_| format!("plugin {id} is unloaded"))?
    }

    /// Stops every plugin at once (each within the stop timeout) and unloads them.
    pub async fn shutdown(&self) {
        let stops: Vec<_> = self
            .ids()
            .into_iter()
            .map(|id| {
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.stop(&id).await {
                        tracing::warn!(plugin = %id, error = %e, "plugin did not stop cleanly");
                    }
                })
            })
            .collect();
        for s in stops {
            let _ = s.await;
        }
        let slots: Vec<Slot> = self
            .inner
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for slot in slots {
            drop(slot.cmds);
            let _ = slot.task.await;
        }
    }
}

fn set_state(inner: &Inner, id: &str, state: &str, error: Option<String>, failed: bool) {
    let mut reg = inner.calls.registry();
    let entry = reg.plugin(id, Kind::InProcess);
    entry.state = state.to_string();
    if failed {
        entry.restarts += 1;
    }
    if error.is_some() || state == "running" {
        entry.error = error;
    }
}

async fn supervise(
    inner: Arc<Inner>,
    id: String,
    factory: PluginFactory,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    mut want: bool,
) {
    let mut failures = 0u32;
    let mut waiting: Vec<Ack> = Vec::new();
    loop {
        if !want {
            match cmds.recv().await {
                Some(Cmd::Start(ack)) => {
                    want = true;
                    waiting.push(ack);
                }
                Some(Cmd::Stop(ack)) => {
                    let _ = ack.send(Ok("stopped".into()));
                }
                None => break,
            }
            continue;
        }
        set_state(&inner, &id, "starting", None, false);
        tracing::info!(plugin = %id, "starting in-process plugin");
        let (stop_tx, stop_rx) = oneshot::channel();
        let (started_tx, mut started_rx) = oneshot::channel();
        let mut run = tokio::spawn(
            run_instance(
                factory(),
                inner.connection.clone(),
                id.clone(),
                stop_rx,
                started_tx,
            )
            .in_current_span(),
        );
        let started_at = Instant::now();
        let mut stop_tx = Some(stop_tx);
        let failure: Option<String> = loop {
            tokio::select! {
                ok = &mut started_rx, if !started_rx.is_terminated() => {
                    if ok.is_ok() {
                        set_state(&inner, &id, "running", None, false);
                        tracing::info!(plugin = %id, "in-process plugin running");
                        for ack in waiting.drain(..) {
                            let _ = ack.send(Ok("running".into()));
                        }
                    }
                }
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Start(ack)) => {
                        if started_rx.is_terminated() {
                            let _ = ack.send(Ok("running".into()));
                        } else {
                            waiting.push(ack);
                        }
                    }
                    stop => {
                        set_state(&inner, &id, "stopping", None, false);
                        if let Some(tx) = stop_tx.take() {
                            let _ = tx.send(());
                        }
                        let outcome = tokio::time::timeout(inner.stop_timeout, &mut run).await;
                        if outcome.is_err() {
                            tracing::warn!(plugin = %id, "plugin did not stop in time; aborted");
                            run.abort();
                        }
                        set_state(&inner, &id, "stopped", None, false);
                        want = false;
                        for ack in waiting.drain(..) {
                            let _ = ack.send(Err("stopped before it started".into()));
                        }
                        match stop {
                            Some(Cmd::Stop(ack)) => {
                                let _ = ack.send(Ok("stopped".into()));
                            }
                            _ => return,
                        }
                        break None;
                    }
                },
                result = &mut run => {
                    break match result {
                        Ok(Ok(())) => {
                            set_state(&inner, &id, "stopped", None, false);
                            want = false;
                            None
                        }
                        Ok(Err(e)) => Some(e),
                        Err(e) if e.is_panic() => Some(format!("panicked: {}", panic_message(e))),
                        Err(e) => Some(e.to_string()),
                    };
                }
            }
        };
        let Some(reason) = failure else {
            continue;
        };
        failures = if started_at.elapsed() > STABLE_AFTER {
            1
        } else {
            failures + 1
        };
        tracing::error!(plugin = %id, reason = %reason, failures, "in-process plugin failed");
        set_state(&inner, &id, "failed", Some(reason.clone()), true);
        for ack in waiting.drain(..) {
            let _ = ack.send(Err(reason.clone()));
        }
        let backoff = Duration::from_millis(1000u64.saturating_mul(1 << (failures - 1).min(16)))
            .min(inner.restart_max);
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Start(ack)) => waiting.push(ack),
                Some(Cmd::Stop(ack)) => {
                    want = false;
                    set_state(&inner, &id, "stopped", Some(reason), false);
                    let _ = ack.send(Ok("stopped".into()));
                }
                None => return,
            },
        }
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

/// One life of a plugin instance: load, connect, start, run until stopped, stop, unload.
async fn run_instance(
    mut plugin: Box<dyn Plugin>,
    connection: Connection,
    id: String,
    stop: oneshot::Receiver<()>,
    started: oneshot::Sender<()>,
) -> Result<(), String> {
    plugin
        .on_load()
        .await
        .map_err(|e| format!("on_load: {e}"))?;
    let options = ClientOptions::new(id).manifest(plugin.manifest());
    let client = connection
        .client(options)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    if let Err(e) = plugin.on_start(&client).await {
        let _ = client.shutdown().await;
        return Err(format!("on_start: {e}"));
    }
    let _ = started.send(());
    let result = tokio::select! {
        r = plugin.run(&client) => r.map_err(|e| format!("run: {e}")),
        _ = stop => Ok(()),
    };
    let stopped = plugin
        .on_stop(&client)
        .await
        .map_err(|e| format!("on_stop: {e}"));
    let _ = client.shutdown().await;
    let unloaded = plugin
        .on_unload()
        .await
        .map_err(|e| format!("on_unload: {e}"));
    result.and(stopped).and(unloaded)
}
