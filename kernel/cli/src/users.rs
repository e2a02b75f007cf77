//! `hcore users`: add, change, remove and list the users who may connect with a user name
//! and password. Passwords never appear on the command line: they are read from stdin
//! (`echo "$PW" | hcore users add pi-lamp`), or generated and printed once.

use std::io::{IsTerminal, Read};

use hcore_kernel::users::{generate_password, Role, Users};

use crate::cli::{ExportArgs, ExportCommand, UsersArgs, UsersCommand};

pub fn users(args: UsersArgs) -> Result<(), String> {
    let settings = crate::run::settings(args.config.as_deref(), args.data_dir)?;
    let store = Users::open(&settings.kernel.data_dir);
    let role = |r: &str| r.parse::<Role>();
    match args.command {
        UsersCommand::Add { name, role: r } => {
            let role = role(&r)?;
            let (password, generated) = password()?;
            store
                .add(&name, &password, role)
                .map_err(|e| e.to_string())?;
            announce(&name, role, generated.then_some(&password));
        }
        UsersCommand::Passwd { name, role: r } => {
            let role = r.as_deref().map(role).transpose()?;
            let (password, generated) = password()?;
            store
                .update(&name, Some(&password), role)
                .map_err(|e| e.to_string())?;
            let role = store.role(&name).unwrap_or(Role::Plugin);
            announce(&name, role, generated.then_some(&password));
        }
        UsersCommand::Remove { name } => {
            if !store.remove(&name).map_err(|e| e.to_string())? {
                return Err(format!("no user {name}"));
            }
            println!("removed {name}");
        }
        UsersCommand::List => {
            for (name, role) in store.list().map_err(|e| e.to_string())? {
                println!("{name}\t{role}");
            }
        }
    }
    Ok(())
}

/// `hcore export`: the users and policy for an external broker.
pub fn export(args: ExportArgs) -> Result<(), String> {
    let settings = crate::run::settings(args.config.as_deref(), args.data_dir)?;
    let (ExportCommand::Mosquitto { dir } | ExportCommand::Nats { dir }) = &args.command;
    let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (data, plugins, root) = (
        &settings.kernel.data_dir,
        &settings.plugins,
        &settings.kernel.root,
    );
    match args.command {
        ExportCommand::Mosquitto { .. } => {
            hcore_kernel::export::mosquitto_files(data, plugins, root, &dir)
                .map_err(|e| e.to_string())?;
            println!(
                "wrote {0}/passwd, {0}/acl and {0}/mosquitto.conf\n\
                 mosquitto reads them as its own user: chgrp mosquitto {0}/*; then mosquitto -c {0}/mosquitto.conf",
                dir.display()
            );
        }
        ExportCommand::Nats { .. } => {
            hcore_kernel::export::nats_files(data, plugins, root, &dir)
                .map_err(|e| e.to_string())?;
            println!(
                "wrote {0}/authorization.conf\n\
                 copy it next to every node's nats-server configuration, add the line \
                 `include \"authorization.conf\"` there (paths are relative to that file), \
                 then reload: nats-server --signal reload",
                dir.display()
            );
        }
    }
    Ok(())
}

/// The password from stdin (its first line), or a new random one when stdin is a
/// terminal; and whether it was generated.
fn password() -> Result<(String, bool), String> {
    if std::io::stdin().is_terminal() {
        return Ok((generate_password(), true));
    }
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    let line = text.lines().next().unwrap_or("").to_string();
    if line.is_empty() {
        return Err("no password on stdin".into());
    }
    Ok((line, false))
}

fn announce(name: &str, role: Role, generated: Option<&String>) {
    match generated {
        Some(p) => {
            println!("{name} ({role}) password: {p}\n(shown once: give it to the client now)")
        }
        None => println!("{name} ({role}) saved"),
    }
}
