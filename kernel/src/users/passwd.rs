//! Password hashes in mosquitto's password-file format, so that one file serves hcore and
//! mosquitto (`mosquitto_passwd` reads and writes the same lines):
//!
//! ```text
//! name:$7$<iterations>$<salt, base64>$<PBKDF2-HMAC-SHA512 of the password, base64>
//! ```
//!
//! New hashes use many more iterations than `mosquitto_passwd`'s default of 101 (the count
//! is part of the line, so mosquitto reads them too); hashes made by `mosquitto_passwd`
//! are accepted as they are.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::Sha512;

/// Iterations for new hashes: about 10 ms on a Raspberry Pi 4 core. Verified hashes are
/// remembered (`Users`), so a reconnecting client does not pay it again.
pub(crate) const ITERATIONS: u32 = 10_000;

const SALT_LEN: usize = 12;
const HASH_LEN: usize = 64;

/// A parsed `$7$` hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hash {
    iterations: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl Hash {
    /// Hashes `password` with a fresh random salt.
    pub fn new(password: &str) -> Hash {
        let salt = uuid::Uuid::new_v4().as_bytes()[..SALT_LEN].to_vec();
        let hash = derive(password, &salt, ITERATIONS);
        Hash {
            iterations: ITERATIONS,
            salt,
            hash,
        }
    }

    /// Parses `$7$iterations$salt$hash`.
    pub fn parse(text: &str) -> Result<Hash, String> {
        let mut parts = text.split('$');
        let (Some(""), Some("7"), Some(iter), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err("not a $7$ (PBKDF2-SHA512) hash".into());
        };
        let iterations: u32 = iter
            .parse()
            .map_err(|_| format!("bad iteration count {iter:?}"))?;
        if iterations == 0 {
            return Err("iteration count 0".into());
        }
        let decode = |what, v: &str| STANDARD.decode(v).map_err(|e| format!("{what}: {e}"));
        let hash = Hash {
            iterations,
            salt: decode("salt", salt)?,
            hash: decode("hash", hash)?,
        };
        if hash.hash.len() != HASH_LEN {
            return Err(format!("hash of {} bytes, not {HASH_LEN}", hash.hash.len()));
        }
        Ok(hash)
    }

    /// Does `password` match? (Constant time in the comparison.)
    pub fn verify(&self, password: &str) -> bool {
        let got = derive(password, &self.salt, self.iterations);
        got.len() == self.hash.len()
            && got
                .iter()
                .zip(&self.hash)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl std::fmt::Display for Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$7${}${}${}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(&self.hash)
        )
    }
}

fn derive(password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; HASH_LEN];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), salt, iterations, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_round_trip_and_verify() {
        let h = Hash::new("secret");
        let parsed = Hash::parse(&h.to_string()).unwrap();
        assert_eq!(parsed, h);
        assert!(parsed.verify("secret"));
        assert!(!parsed.verify("Secret"));
        assert!(Hash::parse("$6$abc$def").is_err());
        assert!(Hash::parse("$7$0$AAAA$AAAA").is_err());
    }

    #[test]
    fn a_hash_made_by_mosquitto_passwd_verifies() {
        // `mosquitto_passwd -c -b pw alice secret` (mosquitto 2.0.11).
        let line = "$7$101$Dc0MFheDvY+rqfBw$hhlkkn3aOnzaeIRX+XmGWIKU1nQVilKDz/KFisRC/PxLTDnk1pouiI3cScZowM3xB6rya/r8ofrPApd1SVFbOQ==";
        let h = Hash::parse(line).unwrap();
        assert!(h.verify("secret"));
        assert!(!h.verify("secret2"));
    }
}
