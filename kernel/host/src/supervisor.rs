//! One supervisor task per plugin: starts its program, notices when it exits, restarts it
//! according to its policy after a backoff, and carries out start, stop and restart
//! commands from the hub. What it is doing is kept in the plugin's `HostedPlugin` view,
//! and every change is signalled so that the host's report follows.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hcore_client::protocol::commands::{HostedPlugin, LogRing};
use hcore_client::protocol::now_ms;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument;

use crate::backoff::{Backoff, Restart};
use crate::child::{self, Ring, Running, Spec};

/// Lines of stderr quoted in a failure.
const STDERR_QUOTED: usize = 5;

type Ack = oneshot::Sender<Result<String, String>>;

enum Cmd {
    Start(Ack),
    Stop(Ack),
    Restart(Ack),
}

/// How to run one plugin.
pub struct Program {
    pub id: String,
    pub command: String,
    pub args: Vec<String>,
    pub cwd: Option<std::path::PathBuf>,
    pub env: Vec<(String, String)>,
    pub restart: Restart,
    pub autostart: bool,
    pub stop_timeout: Duration,
    pub backoff: Backoff,
    pub log_lines: usize,
}

/// Handle to a plugin's supervisor.
#[derive(Clone)]
pub struct Supervised {
    pub id: String,
    cmds: mpsc::Sender<Cmd>,
    pub ring: Ring,
    view: Arc<Mutex<HostedPlugin>>,
}

impl Supervised {
    /// Starts the supervisor (and, if `autostart`, the program). `changed` is bumped on
    /// every change of state.
    pub fn start(program: Program, changed: watch::Sender<()>) -> Supervised {
        let view = Arc::new(Mutex::new(HostedPlugin {
            id: program.id.clone(),
            state: "stopped".into(),
            pid: None,
            restarts: 0,
            error: None,
            retry_at: None,
        }));
        let ring: Ring = Arc::new(Mutex::new(LogRing::new(program.log_lines)));
        let (cmds, rx) = mpsc::channel(16);
        let span = tracing::info_span!("plugin", id = %program.id);
        let task = Task {
            program,
            ring: ring.clone(),
            view: view.clone(),
            changed,
            running: None,
            retry_at: None,
        };
        let id = task.program.id.clone();
        tokio::spawn(task.run(rx).instrument(span));
        Supervised {
            id,
            cmds,
            ring,
            view,
        }
    }

    pub fn view(&self) -> HostedPlugin {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub async fn start_program(&self) -> Result<String, String> {
        self.command(Cmd::Start).await
    }

    pub async fn stop_program(&self) -> Result<String, String> {
        self.command(Cmd::Stop).await
    }

    pub async fn restart_program(&self) -> Result<String, String> {
        self.command(Cmd::Restart).await
    }

    async fn command(&self, make: fn(Ack) -> Cmd) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(make(tx))
            .await
            .map_err(|_| "the plugin's supervisor has stopped".to_string())?;
        rx.await
            .map_err(|_| "the plugin's supervisor has stopped".to_string())?
    }
}

struct Task {
    program: Program,
    ring: Ring,
    view: Arc<Mutex<HostedPlugin>>,
    changed: watch::Sender<()>,
    running: Option<(Running, Instant)>,
    retry_at: Option<tokio::time::Instant>,
}

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        if self.program.autostart {
            let _ = self.launch();
        }
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => {
                        self.halt().await;
                        return;
                    }
                },
                status = wait(&mut self.running) => self.on_exit(status),
                _ = sleep_until(self.retry_at) => {
                    self.retry_at = None;
                    self.update(|v| v.restarts += 1);
                    let _ = self.launch();
                }
            }
        }
    }

    async fn on_command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Start(ack) => {
                self.program.backoff.reset();
                let _ = ack.send(self.launch());
            }
            Cmd::Stop(ack) => {
                self.halt().await;
                let _ = ack.send(Ok("stopped".into()));
            }
            Cmd::Restart(ack) => {
                self.halt().await;
                self.program.backoff.reset();
                let _ = ack.send(self.launch());
            }
        }
    }

    /// Starts the program unless it runs.
    fn launch(&mut self) -> Result<String, String> {
        self.retry_at = None;
        if self.running.is_some() {
            return Ok("running".into());
        }
        let p = &self.program;
        let spec = Spec {
            id: &p.id,
            command: &p.command,
            args: &p.args,
            cwd: p.cwd.as_deref(),
            env: p.env.clone(),
        };
        match child::spawn(&spec, &self.ring) {
            Ok(run) => {
                tracing::info!(pid = run.pid, "started {}", p.command);
                let pid = run.pid;
                self.running = Some((run, Instant::now()));
                self.update(|v| {
                    v.state = "running".into();
                    v.pid = Some(pid);
                    v.retry_at = None;
                });
                Ok("running".into())
            }
            Err(e) => {
                let why = format!("cannot start {}: {e}", p.command);
                tracing::warn!("{why}");
                self.update(|v| {
                    v.state = "failed".into();
                    v.pid = None;
                    v.error = Some(why.clone());
                });
                Err(why)
            }
        }
    }

    /// Stops the program (if it runs) and any pending restart.
    async fn halt(&mut self) {
        self.retry_at = None;
        if let Some((mut run, _)) = self.running.take() {
            self.update(|v| v.state = "stopping".into());
            let ended = run.stop(self.program.stop_timeout).await;
            match ended {
                Ok(status) => tracing::info!("stopped ({})", child::describe(&status)),
                Err(e) => tracing::warn!("stopped; its exit status is unknown: {e}"),
            }
        }
        self.update(|v| {
            v.state = "stopped".into();
            v.pid = None;
            v.retry_at = None;
        });
    }

    fn on_exit(&mut self, status: std::io::Result<std::process::ExitStatus>) {
        let Some((_, since)) = self.running.take() else {
            return;
        };
        let (success, how) = match &status {
            Ok(s) => (s.success(), child::describe(s)),
            Err(e) => (false, format!("lost track of it: {e}")),
        };
        let stderr = self
            .ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_of("stderr", STDERR_QUOTED);
        let why = if stderr.is_empty() {
            how
        } else {
            format!("{how}; stderr: {}", stderr.join(" | "))
        };
        let restart = self.program.restart.restarts_after(success);
        let wait = restart.then(|| self.program.backoff.next(since.elapsed()));
        match wait {
            Some(wait) => {
                tracing::warn!("{why}; restarting in {wait:?}");
                self.retry_at = Some(tokio::time::Instant::now() + wait);
                let at = now_ms() + wait.as_millis() as u64;
                self.update(|v| {
                    v.state = "backoff".into();
                    v.retry_at = Some(at);
                });
            }
            None if success => tracing::info!("{why}"),
            None => tracing::warn!("{why}; not restarted (restart policy)"),
        }
        let state = match (wait.is_some(), success) {
            (true, _) => "backoff",
            (false, true) => "stopped",
            (false, false) => "failed",
        };
        self.update(|v| {
            v.state = state.into();
            v.pid = None;
            v.error = (!success || wait.is_some()).then(|| why.clone());
        });
    }

    fn update(&self, f: impl FnOnce(&mut HostedPlugin)) {
        f(&mut self.view.lock().unwrap_or_else(|e| e.into_inner()));
        let _ = self.changed.send(());
    }
}

async fn wait(
    running: &mut Option<(Running, Instant)>,
) -> std::io::Result<std::process::ExitStatus> {
    match running {
        Some((run, _)) => run.wait().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
