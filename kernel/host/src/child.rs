//! One run of a plugin's program: spawned in a process group of its own (so a stop
//! reaches whatever it started), told to exit with SIGTERM if the host dies, its stdout
//! and stderr read line by line into the plugin's ring (lines cut at `MAX_LINE_BYTES`, so
//! a program that never writes a newline cannot grow the host's memory), stopped with
//! SIGTERM and, after the stop timeout, SIGKILL.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hcore_client::protocol::commands::{LogRing, MAX_LINE_BYTES};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// What to run and with what.
pub struct Spec<'a> {
    pub id: &'a str,
    pub command: &'a str,
    pub args: &'a [String],
    pub cwd: Option<&'a std::path::Path>,
    pub env: Vec<(String, String)>,
}

/// A running plugin process.
pub struct Running {
    child: Child,
    pub pid: u32,
}

pub type Ring = Arc<Mutex<LogRing>>;

/// Starts the program; its output goes to `ring` (and to the host's log).
pub fn spawn(spec: &Spec<'_>, ring: &Ring) -> std::io::Result<Running> {
    let mut cmd = Command::new(spec.command);
    cmd.args(spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = spec.cwd {
        cmd.current_dir(dir);
    }
    // SAFETY: only an async-signal-safe syscall (prctl) runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or_default();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, "stdout", spec.id.to_string(), ring.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, "stderr", spec.id.to_string(), ring.clone()));
    }
    Ok(Running { child, pid })
}

impl Running {
    /// Waits until the program exits.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// SIGTERM to the process group, then SIGKILL after `timeout`; returns how it ended.
    pub async fn stop(&mut self, timeout: Duration) -> std::io::Result<ExitStatus> {
        self.signal(Signal::SIGTERM);
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!(
                    pid = self.pid,
                    "did not exit {timeout:?} after SIGTERM; sending SIGKILL"
                );
                self.signal(Signal::SIGKILL);
                self.child.wait().await
            }
        }
    }

    fn signal(&self, signal: Signal) {
        if let Err(e) = killpg(Pid::from_raw(self.pid as i32), signal) {
            tracing::debug!(pid = self.pid, %signal, "killpg: {e}");
        }
    }
}

/// "exited with code 3" / "killed by SIGKILL".
pub fn describe(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        _ => "ended".into(),
    }
}

/// Reads lines from one of the program's pipes into the ring until it closes.
async fn pump(pipe: impl AsyncRead + Unpin, stream: &'static str, id: String, ring: Ring) {
    let mut reader = BufReader::new(pipe);
    let mut line: Vec<u8> = Vec::new();
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let (part, newline) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], Some(i + 1)),
            None => (chunk, None),
        };
        let room = (MAX_LINE_BYTES + 4).saturating_sub(line.len());
        line.extend_from_slice(&part[..part.len().min(room)]);
        let used = newline.unwrap_or(chunk.len());
        reader.consume(used);
        if newline.is_some() {
            emit(&id, stream, &line, &ring);
            line.clear();
        }
    }
    if !line.is_empty() {
        emit(&id, stream, &line, &ring);
    }
}

fn emit(id: &str, stream: &str, line: &[u8], ring: &Ring) {
    let text = String::from_utf8_lossy(line);
    tracing::info!(plugin = id, stream, "{}", text.trim_end());
    ring.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(stream, &text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> Ring {
        Arc::new(Mutex::new(LogRing::new(10)))
    }

    fn spec<'a>(args: &'a [String]) -> Spec<'a> {
        Spec {
            id: "t",
            command: "sh",
            args,
            cwd: None,
            env: vec![("GREETING".into(), "hi".into())],
        }
    }

    #[tokio::test]
    async fn output_is_kept_and_the_exit_described() {
        let r = ring();
        let args = vec!["-c".into(), "echo $GREETING; echo oops >&2; exit 3".into()];
        let mut run = spawn(&spec(&args), &r).unwrap();
        let status = run.wait().await.unwrap();
        assert_eq!(describe(&status), "exited with code 3");
        // The pipes close with the process; give the readers a moment to finish.
        for _ in 0..100 {
            if r.lock().unwrap().tail("t", None).lines.len() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ring = r.lock().unwrap();
        assert_eq!(ring.last_of("stdout", 5), ["hi"]);
        assert_eq!(ring.last_of("stderr", 5), ["oops"]);
    }

    #[tokio::test]
    async fn a_program_that_ignores_sigterm_is_killed() {
        let r = ring();
        let args = vec![
            "-c".into(),
            "trap '' TERM; echo ready; while :; do sleep 0.05; done".into(),
        ];
        let mut run = spawn(&spec(&args), &r).unwrap();
        while r.lock().unwrap().last_of("stdout", 1).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let status = run.stop(Duration::from_millis(200)).await.unwrap();
        assert_eq!(describe(&status), "killed by SIGKILL");
    }

    #[tokio::test]
    async fn endless_lines_are_cut() {
        let r = ring();
        let args = vec![
            "-c".into(),
            "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo after".into(),
        ];
        let mut run = spawn(&spec(&args), &r).unwrap();
        run.wait().await.unwrap();
        for _ in 0..200 {
            if r.lock().unwrap().last_of("stdout", 1) == ["after"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let ring = r.lock().unwrap();
        let lines = ring.last_of("stdout", 5);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].len() <= MAX_LINE_BYTES + 4, "{}", lines[0].len());
        assert_eq!(lines[1], "after");
    }
}
