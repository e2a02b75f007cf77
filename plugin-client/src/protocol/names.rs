//! Rules for ids, service and method names, and keys (see PROTOCOL.md).

use std::fmt;

/// Why a name or key is not valid, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError(pub String);

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NameError {}

/// The kernel's identity (and client id): the caller of every command the hub passes on
/// to a plugin host.
pub const KERNEL_ID: &str = "kernel";

fn err<T>(what: &str, why: &str) -> Result<T, NameError> {
    Err(NameError(format!("{what}: {why}")))
}

/// A client id used as a topic level: 1-128 bytes, no `/ + #`, no leading `$`, no NUL.
pub fn validate_id(id: &str) -> Result<(), NameError> {
    if id.is_empty() || id.len() > 128 {
        return err("id", "must be 1-128 bytes");
    }
    if id.contains(['/', '+', '#', '\0']) || id.starts_with('$') {
        return err(
            id,
            "an id may not contain '/', '+', '#' or NUL, nor start with '$'",
        );
    }
    Ok(())
}

/// A service or method name: 1-64 characters of `A-Z a-z 0-9 _ -`.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > 64 {
        return err("name", "service and method names are 1-64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return err(name, "service and method names use only A-Z a-z 0-9 _ -");
    }
    Ok(())
}

/// Topic levels used as a name: 1-256 bytes of non-empty `/`-separated levels, no
/// wildcards or NUL, not starting with `$`.
fn validate_levels(what: &str, s: &str) -> Result<(), NameError> {
    if s.is_empty() || s.len() > 256 {
        return err(what, "must be 1-256 bytes");
    }
    if s.contains(['+', '#', '\0']) {
        return err(s, &format!("{what} may not contain '+', '#' or NUL"));
    }
    if s.starts_with('$') {
        return err(s, &format!("{what} may not start with '$'"));
    }
    if s.split('/').any(str::is_empty) {
        return err(s, &format!("{what} may not have empty levels"));
    }
    Ok(())
}

/// An event name (the topic levels after `<root>/event/<source>/`).
pub fn validate_event_name(name: &str) -> Result<(), NameError> {
    validate_levels("event names", name)
}

/// A state key: 1-256 bytes of non-empty `/`-separated levels, no wildcards or NUL, not
/// starting with `$`, last level not `set`.
pub fn validate_state_key(key: &str) -> Result<(), NameError> {
    validate_levels("state keys", key)?;
    if key.rsplit('/').next() == Some("set") {
        return err(
            key,
            "the last level of a state key may not be 'set' (that is the command topic)",
        );
    }
    Ok(())
}

/// A storage key: 1-256 bytes of UTF-8 without NUL.
pub fn validate_storage_key(key: &str) -> Result<(), NameError> {
    if key.is_empty() || key.len() > 256 {
        return err("key", "storage keys are 1-256 bytes");
    }
    if key.contains('\0') {
        return err("key", "storage keys may not contain NUL");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys() {
        assert!(validate_id("kitchen-pi").is_ok());
        assert!(validate_id("a/b").is_err());
        assert!(validate_id("$x").is_err());
        assert!(validate_name("state").is_ok());
        assert!(validate_name("st.ate").is_err());
        assert!(validate_state_key("living_room/lamp").is_ok());
        for bad in ["", "a//b", "/a", "a/", "a/+", "a/#", "$SYS/x", "lamp/set"] {
            assert!(validate_state_key(bad).is_err(), "{bad}");
        }
        assert!(validate_state_key("set/lamp").is_ok());
        assert!(validate_storage_key("any key / with + chars").is_ok());
        assert!(validate_storage_key("").is_err());
    }
}
