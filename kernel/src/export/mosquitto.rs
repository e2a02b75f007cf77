//! `hcore export mosquitto`: the users and policy as mosquitto's password file, ACL file
//! and a configuration that uses them, so that mosquitto enforces on hcore's topics what
//! the embedded broker does (as far as an ACL file can; see `docs/SECURITY.md`).
//!
//! The ACL is keyed on the user name (`%u`), and the configuration sets
//! `use_username_as_clientid`, so a client id cannot be used to take over another user's
//! connection: on mosquitto every identity has one connection at a time.

use std::fmt::Write;

use super::filters::{outside_root, state_set_topics};
use crate::users::{Hash, PolicyFile, Resolved, Role};

/// One login to export: a name, its password hash and its role.
pub struct Account {
    pub name: String,
    pub hash: String,
    pub role: Role,
}

impl Account {
    /// An account whose password is known (the kernel's, an in-process plugin's).
    pub fn with_password(name: &str, password: &str, role: Role) -> Account {
        Account {
            name: name.to_string(),
            hash: Hash::new(password).to_string(),
            role,
        }
    }
}

/// The exported files.
pub struct Files {
    pub passwd: String,
    pub acl: String,
    pub conf: String,
}

/// The files for `accounts` under `policy`; `root` is the protocol root, `dir` where the
/// files will live (named in the configuration), `kernel` the kernel's user name.
pub fn export(
    accounts: &[Account],
    policy: &PolicyFile,
    root: &str,
    kernel: &str,
    dir: &str,
) -> Files {
    let mut passwd = String::new();
    for a in accounts {
        let _ = writeln!(passwd, "{}:{}", a.name, a.hash);
    }
    let mut acl = common(root);
    let _ = writeln!(acl, "\n# --- The kernel owns everything under the root ---\nuser {kernel}\ntopic readwrite {root}/#");
    for a in accounts.iter().filter(|a| a.name != kernel) {
        let _ = writeln!(acl, "\n# --- {} ({}) ---\nuser {}", a.name, a.role, a.name);
        match a.role {
            Role::Admin => acl.push_str("topic readwrite #\n"),
            role => {
                let grants = policy.resolve(&a.name, Some(role));
                acl.push_str(&user_lines(root, &a.name, role, &grants));
            }
        }
    }
    let conf = format!(
        "# mosquitto configuration written by `hcore export mosquitto`.\n\
         per_listener_settings false\n\
         listener 1883\n\
         set_tcp_nodelay true\n\
         allow_anonymous false\n\
         password_file {dir}/passwd\n\
         acl_file {dir}/acl\n\
         # The client id is the user name: nobody takes over another user's connection.\n\
         use_username_as_clientid true\n\
         max_queued_messages 1000\n"
    );
    Files { passwd, acl, conf }
}

/// What every user may do: read the public protocol topics, speak as itself, read its
/// own calls and replies.
fn common(root: &str) -> String {
    format!(
        "# mosquitto ACL written by `hcore export mosquitto` from the users and policy.toml.\n\
         # Patterns apply to every user; %u is the user name, which is the identity.\n\
         pattern read {root}/event/#\n\
         pattern read {root}/state/#\n\
         pattern read {root}/plugin/#\n\
         pattern read {root}/kernel/#\n\
         pattern read {root}/call/%u/#\n\
         # Calls to provided methods come only from the kernel, which hands each to one\n\
         # connection of a provider (no one else may publish there).\n\
         pattern read {root}/deliver/%u/#\n\
         pattern read {root}/reply/%u\n\
         pattern read {root}/reply/%u/#\n\
         pattern write {root}/call/%u/#\n"
    )
}

/// The lines of one user who is not an administrator.
fn user_lines(root: &str, name: &str, role: Role, g: &Resolved) -> String {
    let mut out = String::new();
    if role == Role::Plugin {
        let _ = writeln!(out, "topic write {root}/event/{name}/#");
        let _ = writeln!(out, "topic write {root}/plugin/{name}/#");
    }
    if !g.provide.is_empty() {
        // mosquitto cannot tie a reply to the call it answers: a provider may publish
        // any reply (the embedded broker checks each one).
        let _ = writeln!(out, "topic write {root}/reply/#");
    }
    for key in &g.state {
        for topic in state_set_topics(root, key) {
            let _ = writeln!(out, "topic write {topic}");
        }
    }
    for f in outside_root(root, &g.publish) {
        let _ = writeln!(out, "topic write {f}");
    }
    for f in outside_root(root, &g.subscribe) {
        let _ = writeln!(out, "topic read {f}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_gets_its_grants_and_nothing_more() {
        let accounts = [
            Account::with_password("kernel", "k", Role::Admin),
            Account::with_password("lamp", "l", Role::Plugin),
            Account::with_password("eye", "e", Role::Observer),
        ];
        let f = export(&accounts, &PolicyFile::default(), "hc", "kernel", "/etc/m");
        assert_eq!(f.passwd.lines().count(), 3);
        assert!(f.passwd.lines().all(|l| l.contains(":$7$")));
        let lamp = &f.acl[f.acl.find("user lamp").unwrap()..f.acl.find("# --- eye").unwrap()];
        assert!(
            !lamp.contains("topic read hc/call"),
            "calls come from the kernel: {lamp}"
        );
        assert!(f.acl.contains("pattern read hc/deliver/%u/#\n"));
        assert!(lamp.contains("topic write hc/state/lamp/+/set\n"));
        assert!(lamp.contains("topic write hc/plugin/lamp/#\n"));
        assert!(!lamp.contains("topic write #") && !lamp.contains("topic read #"));
        assert!(lamp.contains("topic write zigbee2mqtt/#\n"), "{lamp}");
        let eye = &f.acl[f.acl.find("user eye").unwrap()..];
        assert!(!eye.contains("topic write"), "{eye}");
        assert!(f.conf.contains("use_username_as_clientid true"));
        assert!(f.conf.contains("acl_file /etc/m/acl"));
    }
}
