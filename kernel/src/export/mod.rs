//! `hcore export`: the users store and policy written in an external broker's own
//! formats, with logins for the kernel and the in-process plugins (`users::Logins`), so
//! that an external broker enforces the same identities.

mod filters;
pub mod mosquitto;

use std::path::Path;

use crate::users::{Logins, Role, Users};
use crate::{KernelError, KERNEL_ID};

use mosquitto::Account;

/// Every account an external broker needs: the users, the kernel, and each in-process
/// plugin in `plugins` (their passwords made once and kept in the data directory).
pub fn accounts(data_dir: &Path, plugins: &[String]) -> Result<Vec<Account>, KernelError> {
    let users = Users::open(data_dir);
    let mut accounts = Vec::new();
    let own: Vec<&str> = std::iter::once(KERNEL_ID)
        .chain(plugins.iter().map(String::as_str))
        .collect();
    for (name, hash, role) in users.hashes()? {
        if own.contains(&name.as_str()) {
            return Err(KernelError::Config(format!(
                "user {name} has the name of the kernel or an in-process plugin: rename it"
            )));
        }
        accounts.push(Account { name, hash, role });
    }
    let logins = Logins::open(data_dir).ensure(&own)?;
    for name in own {
        let role = if name == KERNEL_ID {
            Role::Admin
        } else {
            Role::Plugin
        };
        accounts.push(Account::with_password(name, &logins[name], role));
    }
    Ok(accounts)
}

/// Writes mosquitto's files into `dir`: `passwd`, `acl` and `mosquitto.conf`.
pub fn mosquitto_files(
    data_dir: &Path,
    plugins: &[String],
    root: &str,
    dir: &Path,
) -> Result<(), KernelError> {
    let accounts = accounts(data_dir, plugins)?;
    let policy = Users::open(data_dir).policy();
    let files = mosquitto::export(&accounts, &policy, root, KERNEL_ID, &dir.to_string_lossy());
    let io = |e: std::io::Error, what: &Path| {
        KernelError::Config(format!("cannot write {}: {e}", what.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io(e, dir))?;
    for (name, text) in [
        ("passwd", &files.passwd),
        ("acl", &files.acl),
        ("mosquitto.conf", &files.conf),
    ] {
        let path = dir.join(name);
        // Owner and group may read (0640): mosquitto reads its password file as its own
        // user, so give the files to its group (`chgrp mosquitto`).
        crate::users::write_with_mode(&path, text, 0o640).map_err(|e| io(e, &path))?;
    }
    Ok(())
}
