//! A second hash of each user's password, in bcrypt (`name:$2b$...` lines in
//! `<data_dir>/passwd.bcrypt`), made whenever `hcore users` sets a password: nats-server
//! reads no other hashed format, and hcore never keeps a password itself. Users whose
//! password was set before this file existed have no line; `hcore export nats` names them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// bcrypt cost: nats-server checks it on every CONNECT with a password (about 60 ms on a
/// Raspberry Pi 4 core at 10).
const COST: u32 = 10;

pub(crate) struct BcryptFile {
    path: PathBuf,
}

impl BcryptFile {
    pub fn beside(passwd: &Path) -> BcryptFile {
        BcryptFile {
            path: passwd.with_file_name("passwd.bcrypt"),
        }
    }

    /// name -> bcrypt hash (an absent file: none).
    pub fn read(&self) -> Result<BTreeMap<String, String>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(format!("cannot read {}: {e}", self.path.display())),
        };
        Ok(text
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .map(|(n, h)| (n.to_string(), h.to_string()))
            .collect())
    }

    /// Sets (`Some`) or removes (`None`) the hash of `name`'s password.
    pub fn set(&self, name: &str, password: Option<&str>) -> Result<(), String> {
        let mut all = self.read()?;
        match password {
            Some(p) => {
                let hash = bcrypt::hash(p, COST).map_err(|e| format!("bcrypt: {e}"))?;
                all.insert(name.to_string(), hash);
            }
            None => {
                all.remove(name);
            }
        }
        let text: String = all.iter().map(|(n, h)| format!("{n}:{h}\n")).collect();
        let tmp = self.path.with_extension("new");
        super::write_with_mode(&tmp, &text, 0o600)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}

/// A bcrypt hash of a password hcore knows (the kernel's and in-process plugins' logins).
pub(crate) fn hash(password: &str) -> String {
    bcrypt::hash(password, COST).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_follow_the_users_passwords() {
        let dir = std::env::temp_dir().join(format!("hcore-bcrypt-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = BcryptFile::beside(&dir.join("passwd"));
        f.set("lamp", Some("pw")).unwrap();
        let all = f.read().unwrap();
        assert!(all["lamp"].starts_with("$2b$10$"));
        assert!(bcrypt::verify("pw", &all["lamp"]).unwrap());
        f.set("lamp", None).unwrap();
        assert!(f.read().unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
