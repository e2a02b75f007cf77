//! The policy file (`policy.toml`, format in `grants.rs`) as a running hub holds it: read
//! again when it changes, a broken edit refused while the last good policy stays, and
//! the grants resolved from it kept per identity and role, so that the per-message
//! checks never touch the filesystem.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::grants::{PolicyFile, Resolved};
use super::{stamp, Role, Stamp};

/// One identity's resolved grants, per role it was seen with.
type ByRole = Vec<(Option<Role>, Arc<Resolved>)>;

/// Most identities whose grants are kept resolved at once (cleared when full).
const MAX_RESOLVED: usize = 4096;

#[derive(Default)]
struct State {
    stamp: Option<Option<Stamp>>,
    file: PolicyFile,
    /// identity -> (role, grants); cleared when the file changes.
    resolved: HashMap<String, ByRole>,
}

pub(super) struct PolicyStore {
    path: PathBuf,
    state: Mutex<State>,
}

impl PolicyStore {
    pub fn new(path: PathBuf) -> PolicyStore {
        PolicyStore {
            path,
            state: Mutex::new(State::default()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the file; what is wrong with it, if anything (a missing file is no policy).
    pub fn check(&self) -> Result<(), String> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => PolicyFile::parse(&text).map(|_| ()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot read it: {e}")),
        }
    }

    /// Reads the file again if it changed.
    pub fn refresh(&self) {
        let mut state = self.lock();
        let now = stamp(&self.path);
        if state.stamp == Some(now) {
            return;
        }
        state.stamp = Some(now);
        let path = self.path.display();
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                tracing::error!(%path, "policy not read, the previous one stays: {e}");
                return;
            }
        };
        match PolicyFile::parse(&text) {
            Ok(file) => {
                if state.file != file {
                    tracing::info!(%path, "policy loaded");
                }
                state.file = file;
                state.resolved.clear();
            }
            Err(e) => tracing::error!(%path, "policy refused, the previous one stays: {e}"),
        }
    }

    /// What `identity` with `role` may do, from the file as last read.
    pub fn grants(&self, identity: &str, role: Option<Role>) -> Arc<Resolved> {
        let mut state = self.lock();
        let known = state.resolved.get(identity);
        if let Some((_, g)) = known.and_then(|k| k.iter().find(|(r, _)| *r == role)) {
            return g.clone();
        }
        let g = Arc::new(state.file.resolve(identity, role));
        if state.resolved.len() >= MAX_RESOLVED {
            state.resolved.clear();
        }
        let entry = state.resolved.entry(identity.to_string()).or_default();
        entry.push((role, g.clone()));
        g
    }

    /// The file as last read.
    pub fn file(&self) -> PolicyFile {
        self.lock().file.clone()
    }
}
