//! `hcore export`: the users store and policy written in an external broker's own
//! formats, with logins for the kernel and the in-process plugins (`users::Logins`), so
//! that an external broker enforces the same identities.

mod filters;
pub mod mosquitto;
pub mod nats;

use std::path::Path;

use crate::users::{bcrypt_hash, Logins, Role, Users};
use crate::{KernelError, KERNEL_ID};

/// One login an external broker needs.
struct Login {
    name: String,
    role: Role,
    secret: Secret,
}

enum Secret {
    /// A user's: only its hash (mosquitto's format) is kept.
    Stored(String),
    /// The kernel's or an in-process plugin's: hcore made the password.
    Known(String),
}

/// Every login an external broker needs: the users, the kernel, and each in-process
/// plugin in `plugins` (their passwords made once and kept in the data directory).
fn logins(data_dir: &Path, plugins: &[String]) -> Result<Vec<Login>, KernelError> {
    let users = Users::open(data_dir);
    let mut out = Vec::new();
    let own: Vec<&str> = std::iter::once(KERNEL_ID)
        .chain(plugins.iter().map(String::as_str))
        .collect();
    for (name, hash, role) in users.hashes()? {
        if own.contains(&name.as_str()) {
            return Err(KernelError::Config(format!(
                "user {name} has the name of the kernel or an in-process plugin: rename it"
            )));
        }
        let secret = Secret::Stored(hash);
        out.push(Login { name, role, secret });
    }
    let passwords = Logins::open(data_dir).ensure(&own)?;
    for name in own {
        let role = match name == KERNEL_ID {
            true => Role::Admin,
            false => Role::Plugin,
        };
        let secret = Secret::Known(passwords[name].clone());
        out.push(Login {
            name: name.to_string(),
            role,
            secret,
        });
    }
    Ok(out)
}

/// Writes `files` (name, text) into `dir`, readable by owner and group (0640): a broker
/// reads its password file as its own user, so give the files to its group.
fn write_files(dir: &Path, files: &[(&str, &str)]) -> Result<(), KernelError> {
    let io = |e: std::io::Error, what: &Path| {
        KernelError::Config(format!("cannot write {}: {e}", what.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io(e, dir))?;
    for (name, text) in files {
        let path = dir.join(name);
        crate::users::write_with_mode(&path, text, 0o640).map_err(|e| io(e, &path))?;
    }
    Ok(())
}

/// Writes nats-server's `authorization.conf` into `dir`. Every user needs a bcrypt hash,
/// which `hcore users` makes whenever it sets a password: users whose password was set by
/// an older hcore are named, to be given a new one.
pub fn nats_files(
    data_dir: &Path,
    plugins: &[String],
    root: &str,
    dir: &Path,
) -> Result<(), KernelError> {
    let users = Users::open(data_dir);
    let bcrypt = users.bcrypt_hashes()?;
    let mut accounts = Vec::new();
    let mut missing = Vec::new();
    for login in logins(data_dir, plugins)? {
        let hash = match &login.secret {
            Secret::Known(password) => Some(bcrypt_hash(password)),
            Secret::Stored(_) => bcrypt.get(&login.name).cloned(),
        };
        match hash {
            Some(bcrypt) => accounts.push(nats::Account {
                name: login.name,
                bcrypt,
                role: login.role,
            }),
            None => missing.push(login.name),
        }
    }
    if !missing.is_empty() {
        return Err(KernelError::Config(format!(
            "no bcrypt hash (which nats-server needs) for {}: set their passwords again \
             with `hcore users passwd NAME`",
            missing.join(", ")
        )));
    }
    let text = nats::export(&accounts, &users.policy(), root, KERNEL_ID);
    write_files(dir, &[("authorization.conf", &text)])
}

/// Writes mosquitto's files into `dir`: `passwd`, `acl` and `mosquitto.conf`.
pub fn mosquitto_files(
    data_dir: &Path,
    plugins: &[String],
    root: &str,
    dir: &Path,
) -> Result<(), KernelError> {
    let accounts: Vec<mosquitto::Account> = logins(data_dir, plugins)?
        .into_iter()
        .map(|l| match l.secret {
            Secret::Stored(hash) => mosquitto::Account {
                name: l.name,
                hash,
                role: l.role,
            },
            Secret::Known(password) => {
                mosquitto::Account::with_password(&l.name, &password, l.role)
            }
        })
        .collect();
    let policy = Users::open(data_dir).policy();
    let files = mosquitto::export(&accounts, &policy, root, KERNEL_ID, &dir.to_string_lossy());
    write_files(
        dir,
        &[
            ("passwd", &files.passwd),
            ("acl", &files.acl),
            ("mosquitto.conf", &files.conf),
        ],
    )
}
