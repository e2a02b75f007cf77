//! Who may connect with a user name, and with which role: the users store.
//!
//! Two files in the data directory, both plain text and editable by hand:
//! `passwd` holds `name:hash` lines in mosquitto's format (`passwd.rs`; the same file can
//! be given to mosquitto's `password_file`), and `roles` holds `name role` lines (a user
//! without one is a `plugin`). `hcore users` edits them; a running kernel reads them again
//! when they change, so a new user or password works without a restart.
//!
//! A third file, `policy.toml` (`grants.rs`), says what each identity may do within its
//! role; it is re-read when it changes too, and a broken one is refused with the reason
//! while the last good one stays in force.
//!
//! A password checked once is remembered (as a salted SHA-256, not the password), so a
//! client that reconnects does not pay the slow hash again; the memory is cleared when
//! the files change.

mod bcrypt;
mod grants;
mod logins;
mod passwd;
mod policy;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

pub(crate) use bcrypt::hash as bcrypt_hash;
use bcrypt::BcryptFile;
pub use grants::{Grants, PolicyFile, Resolved, DEVICE_TOPICS};
pub use logins::Logins;
pub(crate) use passwd::Hash;
use policy::PolicyStore;

use crate::KernelError;

/// What a user may do (the policy per role is the kernel policy's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Admin,
    Plugin,
    Device,
    Observer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Plugin => "plugin",
            Role::Device => "device",
            Role::Observer => "observer",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "plugin" => Ok(Role::Plugin),
            "device" => Ok(Role::Device),
            "observer" => Ok(Role::Observer),
            other => Err(format!(
                "unknown role {other:?} (admin, plugin, device, observer)"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a user name and password were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    UnknownUser,
    WrongPassword,
}

#[derive(Debug, Clone)]
struct Entry {
    hash: Hash,
    role: Role,
}

#[derive(Default)]
struct Loaded {
    /// What the two files looked like when they were read.
    stamp: Option<(Option<Stamp>, Option<Stamp>)>,
    entries: BTreeMap<String, Entry>,
    /// name -> SHA-256 of (hash line, password) for passwords already checked.
    verified: HashMap<String, [u8; 32]>,
}

/// Names no user may have: they belong to the kernel.
const RESERVED_NAMES: &[&str] = &["kernel"];

/// The users store of one data directory.
pub struct Users {
    passwd: PathBuf,
    roles: PathBuf,
    loaded: Mutex<Loaded>,
    policy: PolicyStore,
}

/// Modification time, size and (on Unix) inode: file times are only as fine as the
/// kernel's clock tick, but `hcore users` replaces the file (a new inode) at every change.
type Stamp = (SystemTime, u64, u64);

fn stamp(p: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(p).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((m.modified().ok()?, m.len(), ino))
}

fn remembered(hash_line: &str, password: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(hash_line.as_bytes());
    h.update([0]);
    h.update(password.as_bytes());
    h.finalize().into()
}

impl Users {
    /// The store in `dir` (its files need not exist: then there are no users).
    pub fn open(dir: &Path) -> Users {
        Users {
            passwd: dir.join("passwd"),
            roles: dir.join("roles"),
            loaded: Mutex::new(Loaded::default()),
            policy: PolicyStore::new(dir.join("policy.toml")),
        }
    }

    /// Where the policy file is.
    pub fn policy_path(&self) -> &Path {
        self.policy.path()
    }

    /// Reads the policy file; an error says what is wrong with it (for `hcore run`, which
    /// refuses to start with a broken policy).
    pub fn check_policy(&self) -> Result<(), KernelError> {
        self.policy.check().map_err(|message| KernelError::Users {
            path: self.policy.path().to_path_buf(),
            message,
        })
    }

    /// Reads the files again if they changed: users, roles and policy. The kernel calls
    /// it once a second, so changes reach connected clients too.
    pub fn refresh(&self) {
        if let Err(e) = self.current() {
            tracing::debug!(error = %e, "users cannot be read");
        }
        self.policy.refresh();
    }

    /// What `identity` with `role` may do (`None`: an anonymous network client), from the
    /// files as last read: cheap enough for every message.
    pub fn grants(&self, identity: &str, role: Option<Role>) -> Arc<Resolved> {
        self.policy.grants(identity, role)
    }

    fn error(&self, message: impl Into<String>) -> KernelError {
        KernelError::Users {
            path: self.passwd.clone(),
            message: message.into(),
        }
    }

    /// The users, read again if a file changed since last time.
    fn current(&self) -> Result<MutexGuard<'_, Loaded>, KernelError> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let stamp = (stamp(&self.passwd), stamp(&self.roles));
        if loaded.stamp != Some(stamp) {
            loaded.entries = self.read()?;
            loaded.verified.clear();
            loaded.stamp = Some(stamp);
        }
        Ok(loaded)
    }

    fn read(&self) -> Result<BTreeMap<String, Entry>, KernelError> {
        let text = |p: &Path| match std::fs::read_to_string(p) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(self.error(format!("cannot read {}: {e}", p.display()))),
        };
        let mut roles = HashMap::new();
        for (n, line) in text(&self.roles)?.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, role) = line.split_once(char::is_whitespace).ok_or_else(|| {
                self.error(format!("roles line {}: expected \"name role\"", n + 1))
            })?;
            let role: Role = role
                .trim()
                .parse()
                .map_err(|e| self.error(format!("roles line {}: {e}", n + 1)))?;
            roles.insert(name.to_string(), role);
        }
        let mut entries = BTreeMap::new();
        for (n, line) in text(&self.passwd)?.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, hash) = line
                .split_once(':')
                .ok_or_else(|| self.error(format!("line {}: expected \"name:hash\"", n + 1)))?;
            let hash = Hash::parse(hash).map_err(|e| self.error(format!("line {}: {e}", n + 1)))?;
            let role = roles.get(name).copied().unwrap_or(Role::Plugin);
            entries.insert(name.to_string(), Entry { hash, role });
        }
        Ok(entries)
    }

    fn write(&self, entries: &BTreeMap<String, Entry>) -> Result<(), KernelError> {
        if let Some(dir) = self.passwd.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| self.error(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut passwd = String::new();
        let mut roles = String::new();
        for (name, e) in entries {
            passwd.push_str(&format!("{name}:{}\n", e.hash));
            roles.push_str(&format!("{name} {}\n", e.role));
        }
        for (path, text) in [(&self.passwd, passwd), (&self.roles, roles)] {
            // Written aside and renamed: a reader never sees half a file.
            let tmp = path.with_extension("new");
            write_private(&tmp, &text)
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| self.error(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(())
    }

    /// Checks a user name and password; the user's role if they match.
    pub fn authenticate(&self, name: &str, password: &str) -> Result<Role, Refused> {
        let mut loaded = match self.current() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "users cannot be read; refusing user names");
                return Err(Refused::UnknownUser);
            }
        };
        let Some(entry) = loaded.entries.get(name).cloned() else {
            return Err(Refused::UnknownUser);
        };
        let key = remembered(&entry.hash.to_string(), password);
        if loaded.verified.get(name) == Some(&key) {
            return Ok(entry.role);
        }
        if !entry.hash.verify(password) {
            return Err(Refused::WrongPassword);
        }
        loaded.verified.insert(name.to_string(), key);
        Ok(entry.role)
    }

    /// The role of a user (None: no such user), from the files as they are now.
    pub fn role(&self, name: &str) -> Option<Role> {
        self.current().ok()?.entries.get(name).map(|e| e.role)
    }

    /// The role of a user as last read (every CONNECT with a user name reads the files
    /// again if they changed): for the per-message policy, which must not touch the
    /// filesystem on every call.
    pub fn known_role(&self, name: &str) -> Option<Role> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        loaded.entries.get(name).map(|e| e.role)
    }

    /// Every user with its password hash (in mosquitto's format) and role, by name.
    pub fn hashes(&self) -> Result<Vec<(String, String, Role)>, KernelError> {
        Ok(self
            .current()?
            .entries
            .iter()
            .map(|(n, e)| (n.clone(), e.hash.to_string(), e.role))
            .collect())
    }

    /// The policy file as last read (`refresh` reads it again if it changed).
    pub fn policy(&self) -> PolicyFile {
        self.refresh();
        self.policy.file()
    }

    /// Every user and role, by name.
    pub fn list(&self) -> Result<Vec<(String, Role)>, KernelError> {
        Ok(self
            .current()?
            .entries
            .iter()
            .map(|(n, e)| (n.clone(), e.role))
            .collect())
    }

    /// Adds a user; refused if the name is taken or not a valid client id.
    pub fn add(&self, name: &str, password: &str, role: Role) -> Result<(), KernelError> {
        hcore_client::protocol::validate_id(name).map_err(|e| self.error(e.to_string()))?;
        if RESERVED_NAMES.contains(&name) {
            return Err(self.error(format!("{name} is reserved for the kernel")));
        }
        if password.is_empty() {
            return Err(self.error("an empty password"));
        }
        let mut entries = self.current()?.entries.clone();
        if entries.contains_key(name) {
            return Err(self.error(format!(
                "{name} exists (hcore users passwd changes its password)"
            )));
        }
        entries.insert(
            name.to_string(),
            Entry {
                hash: Hash::new(password),
                role,
            },
        );
        self.write(&entries)?;
        self.bcrypt()
            .set(name, Some(password))
            .map_err(|e| self.error(e))
    }

    fn bcrypt(&self) -> BcryptFile {
        BcryptFile::beside(&self.passwd)
    }

    /// Every user's bcrypt hash (for nats-server); users without one are missing.
    pub fn bcrypt_hashes(&self) -> Result<BTreeMap<String, String>, KernelError> {
        self.bcrypt().read().map_err(|e| self.error(e))
    }

    /// Changes a user's password (and role, if given).
    pub fn update(
        &self,
        name: &str,
        password: Option<&str>,
        role: Option<Role>,
    ) -> Result<(), KernelError> {
        let mut entries = self.current()?.entries.clone();
        let entry = entries
            .get_mut(name)
            .ok_or_else(|| self.error(format!("no user {name}")))?;
        if let Some(p) = password {
            if p.is_empty() {
                return Err(self.error("an empty password"));
            }
            entry.hash = Hash::new(p);
        }
        if let Some(r) = role {
            entry.role = r;
        }
        self.write(&entries)?;
        match password {
            Some(p) => self.bcrypt().set(name, Some(p)).map_err(|e| self.error(e)),
            None => Ok(()),
        }
    }

    /// Removes a user; false if there was none.
    pub fn remove(&self, name: &str) -> Result<bool, KernelError> {
        let mut entries = self.current()?.entries.clone();
        if entries.remove(name).is_none() {
            return Ok(false);
        }
        self.write(&entries)?;
        self.bcrypt().set(name, None).map_err(|e| self.error(e))?;
        Ok(true)
    }
}

/// A new random password (122 random bits, 32 hex digits).
pub fn generate_password() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Writes a file only its owner can read (it holds password hashes).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    write_with_mode(path, text, 0o600)
}

/// Writes a file created with Unix permissions `mode`.
pub(crate) fn write_with_mode(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)?.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("hcore-users-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn add_authenticate_update_remove() {
        let d = dir();
        let users = Users::open(&d);
        users.add("pi-lamp", "secret", Role::Plugin).unwrap();
        users.add("me", "pw", Role::Admin).unwrap();
        assert!(users.add("me", "again", Role::Admin).is_err());
        assert!(users.add("bad/id#", "pw", Role::Admin).is_err());
        assert_eq!(users.authenticate("pi-lamp", "secret"), Ok(Role::Plugin));
        assert_eq!(users.authenticate("pi-lamp", "secret"), Ok(Role::Plugin));
        assert_eq!(
            users.authenticate("pi-lamp", "wrong"),
            Err(Refused::WrongPassword)
        );
        assert_eq!(users.authenticate("nobody", "x"), Err(Refused::UnknownUser));
        // Another store on the same files (the CLI) changes them; this one notices.
        let cli = Users::open(&d);
        cli.update("pi-lamp", Some("new"), Some(Role::Device))
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            users.authenticate("pi-lamp", "secret"),
            Err(Refused::WrongPassword)
        );
        assert_eq!(users.authenticate("pi-lamp", "new"), Ok(Role::Device));
        assert!(cli.remove("me").unwrap());
        assert!(!cli.remove("me").unwrap());
        let names: Vec<String> = users.list().unwrap().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["pi-lamp"]);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn a_mosquitto_passwd_file_is_read_and_bad_lines_are_named() {
        let d = dir();
        std::fs::write(
            d.join("passwd"),
            "alice:$7$101$Dc0MFheDvY+rqfBw$hhlkkn3aOnzaeIRX+XmGWIKU1nQVilKDz/KFisRC/PxLTDnk1pouiI3cScZowM3xB6rya/r8ofrPApd1SVFbOQ==\n",
        )
        .unwrap();
        let users = Users::open(&d);
        assert_eq!(users.authenticate("alice", "secret"), Ok(Role::Plugin));
        std::fs::write(d.join("roles"), "alice boss\n").unwrap();
        let e = Users::open(&d).list().unwrap_err().to_string();
        assert!(
            e.contains("roles line 1") && e.contains("unknown role"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(d);
    }
}
