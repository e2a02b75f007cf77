//! The passwords the kernel and its in-process plugins log in with on an external broker
//! (`<data_dir>/broker-logins`, `name password` lines, readable by the owner only).
//!
//! On the embedded broker they need none (they are in-process). On an external broker each
//! connects as its own user, so the broker's ACL can tell them apart: `hcore export`
//! makes these passwords (once; later exports keep them) and puts their hashes into the
//! password file it writes for the broker.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{generate_password, write_private};
use crate::KernelError;

/// The logins of one data directory.
pub struct Logins {
    path: PathBuf,
}

impl Logins {
    pub fn open(dir: &Path) -> Logins {
        Logins {
            path: dir.join("broker-logins"),
        }
    }

    fn error(&self, message: String) -> KernelError {
        KernelError::Users {
            path: self.path.clone(),
            message,
        }
    }

    /// Every login, by name (none if the file does not exist).
    pub fn read(&self) -> Result<BTreeMap<String, String>, KernelError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(self.error(format!("cannot read it: {e}"))),
        };
        let mut logins = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, password) = line
                .split_once(' ')
                .ok_or_else(|| self.error(format!("line {}: expected \"name password\"", n + 1)))?;
            logins.insert(name.to_string(), password.to_string());
        }
        Ok(logins)
    }

    /// The password of `name`, if it has a login.
    pub fn password(&self, name: &str) -> Result<Option<String>, KernelError> {
        Ok(self.read()?.remove(name))
    }

    /// Makes a login for every name that has none; returns them all.
    pub fn ensure(&self, names: &[&str]) -> Result<BTreeMap<String, String>, KernelError> {
        let mut logins = self.read()?;
        let before = logins.len();
        for name in names {
            logins
                .entry(name.to_string())
                .or_insert_with(generate_password);
        }
        if logins.len() != before {
            let mut text = String::from(
                "# Logins of the kernel and in-process plugins on an external broker.\n",
            );
            for (name, password) in &logins {
                text.push_str(&format!("{name} {password}\n"));
            }
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| self.error(format!("cannot create {}: {e}", dir.display())))?;
            }
            write_private(&self.path, &text)
                .map_err(|e| self.error(format!("cannot write it: {e}")))?;
        }
        Ok(logins)
    }
}
